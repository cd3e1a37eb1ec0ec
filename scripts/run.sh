#!/usr/bin/env bash
# make run: Vault (dev mode) + Redis (AOF on) + piivault, all on loopback,
# with demo staff (one per role) and a demo storefront key. Ctrl-C stops all three.
# SEED=N also stores N fake orders with the development tool bin/piivault-bench.
set -euo pipefail
cd "$(dirname "$0")/.."

VAULT_BIN=${PIIVAULT_VAULT_BIN:-vault}
VAULT_PORT=${VAULT_PORT:-8200}
REDIS_PORT=${REDIS_PORT:-6390}
LISTEN=${PIIVAULT_LISTEN:-127.0.0.1:8080}
RUN=.run
# Dev Vault keeps its keys in memory: data from an earlier run could not be
# decrypted any more, so every run starts with an empty Redis.
rm -rf "$RUN/redis"
mkdir -p "$RUN/redis"
chmod 700 "$RUN"

pids=()
cleanup() {
  trap - INT TERM EXIT
  echo; echo "==> stopping piivault, Vault and Redis"
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

wait_for() { # name, command...
  local name=$1; shift
  for _ in $(seq 1 100); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "$name did not come up; see $RUN/*.log" >&2; exit 1
}

ROOT_TOKEN=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
echo "==> Vault (dev, in memory) on 127.0.0.1:$VAULT_PORT"
"$VAULT_BIN" server -dev -dev-listen-address="127.0.0.1:$VAULT_PORT" -dev-root-token-id="$ROOT_TOKEN" \
  -dev-no-store-token >"$RUN/vault.log" 2>&1 &
pids+=($!)
export VAULT_ADDR="http://127.0.0.1:$VAULT_PORT"
wait_for Vault curl -sf "$VAULT_ADDR/v1/sys/health"

if [ -z "${REDIS_URL:-}" ]; then
  echo "==> Redis on 127.0.0.1:$REDIS_PORT (AOF on, data in $RUN/redis)"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --appendonly yes --dir "$PWD/$RUN/redis" \
    --save "" >"$RUN/redis.log" 2>&1 &
  pids+=($!)
  export REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
  wait_for Redis redis-cli -p "$REDIS_PORT" ping
fi

echo "==> piivault setup"
# Vault's own audit device writes to .run/: it names the person behind every decrypt.
VAULT_TOKEN=$ROOT_TOKEN bin/piivault setup --approle-env --bind-cidrs 127.0.0.0/8 --audit-file "$PWD/$RUN/vault-audit.log" \
  >"$RUN/approle.env" 2>"$RUN/setup.log"
sed 's/^/    /' "$RUN/setup.log"
set -a; . "$RUN/approle.env"; set +a

echo "==> demo staff and storefront key (local use only)"
: >"$RUN/demo-staff.txt"
for role in fulfillment support admin auditor; do
  out=$(VAULT_TOKEN=$ROOT_TOKEN bin/piivault staff add "demo-$role" --role "$role" --json)
  pw=$(sed -E 's/.*"password":"([^"]*)".*/\1/' <<<"$out")
  url=$(sed -E 's/.*"totp_url":"([^"]*)".*/\1/' <<<"$out" | sed 's/\\u0026/\&/g')
  echo "demo-$role $pw $url" >>"$RUN/demo-staff.txt"
done
SHOP_LISTEN=${STOREFRONT_LISTEN:-127.0.0.1:8090}
shop=$(bin/piivault clients add demo-shop --origin "http://$SHOP_LISTEN" --json)
API_KEY=$(sed -E 's/.*"api_key":"([^"]*)".*/\1/' <<<"$shop")
PK=$(sed -E 's/.*"publishable_key":"([^"]*)".*/\1/' <<<"$shop")
chmod 600 "$RUN"/*.txt "$RUN"/*.env

export PIIVAULT_LISTEN=$LISTEN PIIVAULT_WEBHOOK_SECRET=${PIIVAULT_WEBHOOK_SECRET:-demo-shipping-secret}
export PIIVAULT_PUBLIC_URL=${PIIVAULT_PUBLIC_URL:-http://$LISTEN}

# Email: a real local mail server with a web inbox (mailpit, loopback only),
# unless PIIVAULT_SMTP_URL names another one.
MAILPIT_BIN=${PIIVAULT_MAILPIT_BIN:-mailpit}
MAIL_UI=${MAIL_UI:-127.0.0.1:8025}
MAIL_SMTP=${MAIL_SMTP:-127.0.0.1:1025}
if [ -z "${PIIVAULT_SMTP_URL:-}" ]; then
  echo "==> mailpit (local mail server): inbox http://$MAIL_UI, SMTP $MAIL_SMTP"
  "$MAILPIT_BIN" --listen "$MAIL_UI" --smtp "$MAIL_SMTP" --smtp-auth-accept-any --smtp-auth-allow-insecure --disable-version-check \
    >"$RUN/mailpit.log" 2>&1 &
  pids+=($!)
  wait_for mailpit curl -sf "http://$MAIL_UI/livez"
  export PIIVAULT_SMTP_URL="smtp://$MAIL_SMTP"
  MAIL_NOTE="Local inbox (every email piivault sends): http://$MAIL_UI"
else
  MAIL_NOTE="Email goes through PIIVAULT_SMTP_URL"
fi
export PIIVAULT_MAIL_FROM=${PIIVAULT_MAIL_FROM:-"Demo Shop privacy <privacy@shop.example>"}
export PIIVAULT_INBOUND_SECRET=${PIIVAULT_INBOUND_SECRET:-demo-inbound-secret}
export PIIVAULT_INBOUND_ADDRESS=${PIIVAULT_INBOUND_ADDRESS:-privacy@shop.example}

# Labels through EasyPost: a real EasyPost test key when one is set, else a
# stand-in on loopback speaking EasyPost's API (blank labels, no carrier).
export PIIVAULT_SHIP_FROM=${PIIVAULT_SHIP_FROM:-'{"company":"Demo Shop Warehouse","street1":"417 Montgomery St","street2":"Floor 5","city":"San Francisco","state":"CA","zip":"94104","country":"US","phone":"4155550100"}'}
export EASYPOST_WEBHOOK_SECRET=${EASYPOST_WEBHOOK_SECRET:-demo-easypost-secret}
if [ -z "${EASYPOST_API_KEY:-}" ]; then
  export EASYPOST_API_KEY=EZTK_demo_standin_key
  rm -f "$RUN/easypost.url"
  bin/easypost-standin -listen 127.0.0.1:0 -port-file "$RUN/easypost.url" \
    -webhook-url "http://$LISTEN/v1/webhooks/easypost" >"$RUN/easypost.log" 2>&1 &
  pids+=($!)
  wait_for "EasyPost stand-in" test -s "$RUN/easypost.url"
  export EASYPOST_API_URL=$(cat "$RUN/easypost.url")
  EASYPOST_NOTE="EasyPost stand-in: $EASYPOST_API_URL  (local, blank labels; set EASYPOST_API_KEY=EZTK… for EasyPost's test mode)"
  EASYPOST_DEMO=${EASYPOST_API_URL%/v2/}
else
  EASYPOST_NOTE="EasyPost: ${EASYPOST_API_URL:-https://api.easypost.com/v2} with your key (point an EasyPost webhook at this piivault's public URL for tracker events)"
  EASYPOST_DEMO=""
fi
echo "==> $EASYPOST_NOTE"
echo "==> piivault serve on $LISTEN (logs: $RUN/piivault.log)"
bin/piivault serve >"$RUN/piivault.log" 2>&1 &
pids+=($!)
wait_for piivault curl -sf "http://$LISTEN/readyz"

echo "==> demo storefront on $SHOP_LISTEN (logs: $RUN/storefront.log)"
PIIVAULT_URL="http://$LISTEN" STOREFRONT_API_KEY=$API_KEY STOREFRONT_PUBLISHABLE_KEY=$PK STOREFRONT_LISTEN=$SHOP_LISTEN \
  bin/storefront >"$RUN/storefront.log" 2>&1 &
pids+=($!)
wait_for storefront curl -sf "http://$SHOP_LISTEN/"

if [ "${SEED:-0}" -gt 0 ]; then
  echo "==> $SEED fake orders (bin/piivault-bench seed, as the demo shop)"
  PIIVAULT_URL="http://$LISTEN" PIIVAULT_API_KEY=$API_KEY bin/piivault-bench seed --fake "$SEED" | sed 's/^/    /'
fi

read -r _ FPW FURL < <(grep '^demo-fulfillment ' "$RUN/demo-staff.txt")
DEMO_SHIP=""
if [ -n "$EASYPOST_DEMO" ]; then
  DEMO_SHIP="  # the carrier scans the parcel: EasyPost's signed tracker.updated (in_transit) purges that order
  curl -s -X POST $EASYPOST_DEMO/_demo/ship/SHIPMENT_ID   # the shipment_id of the answer above"
fi
cat <<MSG

piivault is up: http://$LISTEN  (Vault $VAULT_ADDR, Redis $REDIS_URL)
Demo accounts (passwords and TOTP URLs, local use only): $RUN/demo-staff.txt
Staff console:    http://$LISTEN/console/   (codes: go run ./scripts/totp 'otpauth://…' from that file)
Demo storefront:  http://$SHOP_LISTEN/      (cart → checkout: the address goes from the browser to piivault)

Try it:
  API_KEY=$API_KEY

  # the storefront stores an order's shipping PII
  curl -s -X POST http://$LISTEN/v1/orders -H "Authorization: Bearer \$API_KEY" -H 'Content-Type: application/json' \\
    -d '{"order_id":"ord_1001","payment_ref":"pi_demo_1","shipping":{"name":"Jane Doe","email":"jane@example.com","phone":"+15550100","address":{"line1":"1 Main St","line2":"","city":"Springfield","state":"IL","postal_code":"62701","country":"US"}}}'
  curl -s http://$LISTEN/v1/orders/ord_1001 -H "Authorization: Bearer \$API_KEY"

  # fulfillment logs in (password + TOTP) and reveals the address
  TOKEN=\$(curl -s -X POST http://$LISTEN/v1/auth/login -H 'Content-Type: application/json' \\
    -d "{\"username\":\"demo-fulfillment\",\"password\":\"$FPW\",\"totp\":\"\$(go run ./scripts/totp '$FURL')\"}" | sed -E 's/.*"token":"([^"]*)".*/\1/')
  curl -s "http://$LISTEN/v1/orders/ord_1001/shipping?reason=label" -H "Authorization: Bearer \$TOKEN"

  # the parcel ships: the PII is destroyed, the reference stays
  curl -s -X POST http://$LISTEN/v1/orders/ord_1001/shipped -H "Authorization: Bearer \$TOKEN"
  curl -s -i "http://$LISTEN/v1/orders/ord_1001/shipping?reason=label" -H "Authorization: Bearer \$TOKEN"

Fake orders (development tool, never shipped; or SEED=100 make run):
  PIIVAULT_URL=http://$LISTEN PIIVAULT_API_KEY=\$API_KEY bin/piivault-bench seed --fake 100

Labels without reading an address (fulfillment): console queue → tick orders → "Buy labels"; or, for an order
  stored as above with "order_id":"ord_1002",
  curl -s -X POST http://$LISTEN/v1/fulfillment/shipments -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' \\
    -d '{"order_ids":["ord_1002"],"parcel":{"length":9,"width":6,"height":3,"weight":16},"service":"cheapest","reason":"label"}'
$EASYPOST_NOTE
$DEMO_SHIP
Customers: http://$LISTEN/privacy/  (enter jane@example.com after storing ord_1002 above; the code arrives in the inbox)
$MAIL_NOTE
Emailed requests: point Postmark's inbound webhook at http://x:$PIIVAULT_INBOUND_SECRET@<public host>/v1/inbound/postmark
  (or SendGrid Inbound Parse, "send raw", at /v1/inbound/sendgrid); without a DKIM signature from the sender's
  domain a request waits in the console's Deletions page for support.

Metrics: http://$LISTEN/metrics   Ready: http://$LISTEN/readyz   Vault's audit log: $RUN/vault-audit.log
Operator: bin/piivault blocks list | lockdown status | report retention | audit verify  (with $RUN/approle.env and REDIS_URL=$REDIS_URL)
Press Ctrl-C to stop piivault, Vault, Redis, mailpit and the EasyPost stand-in.
MSG
wait -n "${pids[@]}"
