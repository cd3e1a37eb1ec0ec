#!/bin/sh
# The compose stack's one-shot `setup` service (compose.yaml): what
# scripts/run.sh does for `make run`, for containers. DEMO ONLY: it trusts a
# dev-mode Vault's root token and makes demo staff and a demo storefront key.
#
# It runs once Vault and Redis are healthy, and before piivault serve, which
# reads what it leaves in $PIIVAULT_DEMO_DIR (a volume shared with piivault
# and the storefront, mode 0700, uid 65532):
#   secret_id                    the service AppRole's secret id (PIIVAULT_VAULT_SECRET_ID_FILE)
#   storefront_api_key           the demo storefront's API key
#   storefront_publishable_key   its publishable key for the browser checkout
#   demo-staff.txt               "name password otpauth-url", one demo staff member per role
#
# piivault has no _FILE form of PIIVAULT_VAULT_ROLE_ID, and a distroless
# image has no shell to read one, so compose.yaml names the role id itself
# (PIIVAULT_DEMO_ROLE_ID) and this script gives the AppRole that id. The
# secret id, the half that is a secret, is minted here and reaches piivault
# only as a file.
#
# Environment: VAULT_ADDR, VAULT_TOKEN (the operator's), REDIS_URL,
# PIIVAULT_DEMO_DIR, PIIVAULT_DEMO_ROLE_ID, STOREFRONT_ORIGINS (space
# separated) and optionally VAULT_AUDIT_FILE (a path on the Vault server).
# Running it again is harmless: setup is idempotent, and staff and keys that
# still work are kept.
set -eu

: "${VAULT_ADDR:?}" "${VAULT_TOKEN:?}" "${REDIS_URL:?}" "${STOREFRONT_ORIGINS:?}"
dir=${PIIVAULT_DEMO_DIR:?}
role_id=${PIIVAULT_DEMO_ROLE_ID:?}
umask 077

if ! : >"$dir/.probe" 2>/dev/null; then
  echo "setup: $dir is not writable by uid $(id -u); start over with: docker compose down -v && docker compose up" >&2
  exit 1
fi
rm -f "$dir/.probe"

# service runs piivault as the service (its AppRole), not as the operator.
service() (
  unset VAULT_TOKEN
  PIIVAULT_VAULT_ROLE_ID=$role_id PIIVAULT_VAULT_SECRET_ID_FILE=$dir/secret_id
  export PIIVAULT_VAULT_ROLE_ID PIIVAULT_VAULT_SECRET_ID_FILE
  exec piivault "$@"
)

# json_field NAME reads one string field of a one-line JSON object on stdin.
json_field() { sed -E 's/.*"'"$1"'":"([^"]*)".*/\1/' | sed 's/\\u0026/\&/g'; }

set --
if [ -n "${VAULT_AUDIT_FILE:-}" ]; then
  set -- --audit-file "$VAULT_AUDIT_FILE"
fi

echo "==> piivault setup (Vault $VAULT_ADDR)"
piivault setup "$@"

echo "==> AppRole role id: $role_id (named in compose.yaml); a new secret id for piivault"
vault write auth/approle/role/piivault/role-id role_id="$role_id" >/dev/null
piivault setup --approle-env "$@" >"$dir/approle.tmp" 2>"$dir/setup.log" || {
  cat "$dir/setup.log" >&2
  rm -f "$dir/approle.tmp" "$dir/setup.log"
  exit 1
}
rm -f "$dir/setup.log"
got=$(sed -n 's/^PIIVAULT_VAULT_ROLE_ID=//p' "$dir/approle.tmp")
if [ "$got" != "$role_id" ]; then
  rm -f "$dir/approle.tmp"
  echo "setup: the AppRole's role id is $got, not $role_id" >&2
  exit 1
fi
sed -n 's/^PIIVAULT_VAULT_SECRET_ID=//p' "$dir/approle.tmp" >"$dir/secret_id.tmp"
rm -f "$dir/approle.tmp"
[ -s "$dir/secret_id.tmp" ] || { echo "setup: no secret id" >&2; exit 1; }
mv "$dir/secret_id.tmp" "$dir/secret_id"

echo "==> demo staff, one per role (local use only)"
listed=$(piivault staff list)
kept=0
if [ -s "$dir/demo-staff.txt" ]; then
  kept=1
  for role in fulfillment support admin auditor; do
    printf '%s\n' "$listed" | grep -q "^demo-$role " || kept=0
  done
fi
if [ "$kept" = 1 ]; then
  echo "    kept: they are in Vault and in $dir/demo-staff.txt"
else
  : >"$dir/demo-staff.tmp"
  for role in fulfillment support admin auditor; do
    if printf '%s\n' "$listed" | grep -q "^demo-$role "; then
      piivault staff remove "demo-$role" >/dev/null
    fi
    out=$(piivault staff add "demo-$role" --role "$role" --json)
    pw=$(printf '%s\n' "$out" | json_field password)
    url=$(printf '%s\n' "$out" | json_field totp_url)
    echo "demo-$role $pw $url" >>"$dir/demo-staff.tmp"
    echo "    demo-$role"
  done
  mv "$dir/demo-staff.tmp" "$dir/demo-staff.txt"
fi

echo "==> demo storefront key (origins: $STOREFRONT_ORIGINS)"
if [ -s "$dir/storefront_api_key" ] && [ -s "$dir/storefront_publishable_key" ] &&
  service clients list | grep -q '^demo-shop '; then
  echo "    kept: demo-shop"
else
  service clients revoke demo-shop >/dev/null 2>&1 || true
  set --
  for o in $STOREFRONT_ORIGINS; do set -- "$@" --origin "$o"; done
  out=$(service clients add demo-shop "$@" --json)
  printf '%s\n' "$out" | json_field api_key >"$dir/storefront_api_key"
  printf '%s\n' "$out" | json_field publishable_key >"$dir/storefront_publishable_key"
  echo "    demo-shop"
fi

cat <<MSG
==> ready for piivault serve (AppRole $role_id, secret id in $dir/secret_id)
    Demo staff passwords and TOTP URLs (local use only):
      docker compose exec storefront cat $dir/demo-staff.txt
    A current TOTP code for one of them:
      docker compose exec storefront totp 'otpauth://...'
MSG
