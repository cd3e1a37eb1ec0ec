package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"piivault/vault"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadConfigDefaults(t *testing.T) {
	cfg, err := loadConfig(envOf(map[string]string{"VAULT_TOKEN": "x"}))
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:8080", cfg.Listen)
	require.Equal(t, 720*time.Hour, cfg.Retention)
	require.Equal(t, time.Minute, cfg.SweepInterval)
	require.Equal(t, "transit", cfg.TransitMount)
	require.Equal(t, "order-pii", cfg.TransitKey)
}

func TestLoadConfigRejectsBadValuesNamingTheVariable(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		wants string
	}{
		{"retention above 30 days", map[string]string{"PIIVAULT_RETENTION": "721h"}, "PIIVAULT_RETENTION"},
		{"retention not a duration", map[string]string{"PIIVAULT_RETENTION": "30 days"}, "PIIVAULT_RETENTION"},
		{"retention zero", map[string]string{"PIIVAULT_RETENTION": "0s"}, "PIIVAULT_RETENTION"},
		{"sweep interval", map[string]string{"PIIVAULT_SWEEP_INTERVAL": "soon"}, "PIIVAULT_SWEEP_INTERVAL"},
		{"listen", map[string]string{"PIIVAULT_LISTEN": "8080"}, "PIIVAULT_LISTEN"},
		{"vault addr", map[string]string{"VAULT_ADDR": "vault:8200"}, "VAULT_ADDR"},
		{"redis url", map[string]string{"REDIS_URL": "localhost:6379"}, "REDIS_URL"},
		{"sentinel without master", map[string]string{"REDIS_URL": "redis+sentinel://127.0.0.1:26379"}, "REDIS_URL"},
		{"approle half", map[string]string{"PIIVAULT_VAULT_ROLE_ID": "r"}, "PIIVAULT_VAULT_ROLE_ID"},
		{"transit key", map[string]string{"PIIVAULT_TRANSIT_KEY": "a/b"}, "PIIVAULT_TRANSIT_KEY"},
		{"origins", map[string]string{"PIIVAULT_ALLOWED_ORIGINS": "shop.example.com"}, "PIIVAULT_ALLOWED_ORIGINS"},
		{"proxies", map[string]string{"PIIVAULT_TRUSTED_PROXIES": "10.0.0.0/33"}, "PIIVAULT_TRUSTED_PROXIES"},
		{"tls half", map[string]string{"PIIVAULT_TLS_CERT": "/x.pem"}, "PIIVAULT_TLS_CERT"},
		{"tls missing file", map[string]string{"PIIVAULT_TLS_CERT": "/nope.pem", "PIIVAULT_TLS_KEY": "/nope.key"}, "PIIVAULT_TLS_CERT"},
		{"alert url", map[string]string{"PIIVAULT_ALERT_URL": "ftp://x"}, "PIIVAULT_ALERT_URL"},
		{"reveal limit", map[string]string{"PIIVAULT_REVEAL_LIMIT": "-1"}, "PIIVAULT_REVEAL_LIMIT"},
		{"profiler on every interface", map[string]string{"PIIVAULT_DEBUG_LISTEN": "0.0.0.0:6060"}, "PIIVAULT_DEBUG_LISTEN"},
		{"profiler on a private address", map[string]string{"PIIVAULT_DEBUG_LISTEN": "10.0.0.5:6060"}, "PIIVAULT_DEBUG_LISTEN"},
		{"profiler without a port", map[string]string{"PIIVAULT_DEBUG_LISTEN": "127.0.0.1"}, "PIIVAULT_DEBUG_LISTEN"},
		{"console idle", map[string]string{"PIIVAULT_CONSOLE_IDLE": "5s"}, "PIIVAULT_CONSOLE_IDLE"},
		{"vault node list with a bad node", map[string]string{"VAULT_ADDR": "http://127.0.0.1:8200,vault-2:8200"}, "VAULT_ADDR"},
		{"vault node list empty", map[string]string{"VAULT_ADDR": ", ,"}, "VAULT_ADDR"},
		{"redis wait negative", map[string]string{"PIIVAULT_REDIS_WAIT": "-1"}, "PIIVAULT_REDIS_WAIT"},
		{"redis wait not a number", map[string]string{"PIIVAULT_REDIS_WAIT": "all"}, "PIIVAULT_REDIS_WAIT"},
		{"redis wait too many", map[string]string{"PIIVAULT_REDIS_WAIT": "17"}, "PIIVAULT_REDIS_WAIT"},
		{"public url without a scheme", map[string]string{"PIIVAULT_PUBLIC_URL": "vault.shop.example"}, "PIIVAULT_PUBLIC_URL"},
		{"public url relative", map[string]string{"PIIVAULT_PUBLIC_URL": "/console/"}, "PIIVAULT_PUBLIC_URL"},
		{"public url not http", map[string]string{"PIIVAULT_PUBLIC_URL": "ftp://vault.shop.example"}, "PIIVAULT_PUBLIC_URL"},
		{"public url opaque", map[string]string{"PIIVAULT_PUBLIC_URL": "https:vault.shop.example"}, "PIIVAULT_PUBLIC_URL"},
		{"public url without a host", map[string]string{"PIIVAULT_PUBLIC_URL": "https://"}, "PIIVAULT_PUBLIC_URL"},
		{"public url with only a port", map[string]string{"PIIVAULT_PUBLIC_URL": "https://:443"}, "PIIVAULT_PUBLIC_URL"},
		{"public url with a bad port", map[string]string{"PIIVAULT_PUBLIC_URL": "https://vault.shop.example:70000"}, "PIIVAULT_PUBLIC_URL"},
		{"public url with a path", map[string]string{"PIIVAULT_PUBLIC_URL": "https://vault.shop.example/console/"}, "PIIVAULT_PUBLIC_URL"},
		{"public url with a query", map[string]string{"PIIVAULT_PUBLIC_URL": "https://vault.shop.example/?a=1"}, "PIIVAULT_PUBLIC_URL"},
		{"public url with an empty query", map[string]string{"PIIVAULT_PUBLIC_URL": "https://vault.shop.example?"}, "PIIVAULT_PUBLIC_URL"},
		{"public url with a fragment", map[string]string{"PIIVAULT_PUBLIC_URL": "https://vault.shop.example/#top"}, "PIIVAULT_PUBLIC_URL"},
		{"public url with user info", map[string]string{"PIIVAULT_PUBLIC_URL": "https://admin:pw@vault.shop.example"}, "PIIVAULT_PUBLIC_URL"},
		{"ship from not json", map[string]string{"PIIVAULT_SHIP_FROM": "1 Dock Road, Portland"}, "PIIVAULT_SHIP_FROM"},
		{"ship from unknown field", map[string]string{"PIIVAULT_SHIP_FROM": `{"street1":"1 Dock Rd","city":"Portland","zip":"97201","country":"US","name":"W","postcode":"x"}`}, "PIIVAULT_SHIP_FROM"},
		{"ship from missing street", map[string]string{"PIIVAULT_SHIP_FROM": `{"name":"W","city":"Portland","zip":"97201","country":"US"}`}, "PIIVAULT_SHIP_FROM"},
		{"ship from without name or company", map[string]string{"PIIVAULT_SHIP_FROM": `{"street1":"1 Dock Rd","city":"Portland","zip":"97201","country":"US"}`}, "PIIVAULT_SHIP_FROM"},
		{"easypost url", map[string]string{"EASYPOST_API_URL": "api.easypost.com"}, "EASYPOST_API_URL"},
		{"easypost url in the clear", map[string]string{"EASYPOST_API_URL": "http://api.easypost.com/v2"}, "EASYPOST_API_URL"},
		{"smtp without from", map[string]string{"PIIVAULT_SMTP_URL": "smtp://u:p@mail.example:587"}, "PIIVAULT_MAIL_FROM"},
		{"from without smtp", map[string]string{"PIIVAULT_MAIL_FROM": "privacy@shop.example"}, "PIIVAULT_SMTP_URL"},
		{"smtp scheme", map[string]string{"PIIVAULT_SMTP_URL": "http://mail.example", "PIIVAULT_MAIL_FROM": "privacy@shop.example"}, "PIIVAULT_SMTP_URL"},
		{"mail from", map[string]string{"PIIVAULT_SMTP_URL": "smtp://127.0.0.1:1025", "PIIVAULT_MAIL_FROM": "not an address"}, "PIIVAULT_MAIL_FROM"},
		{"inbound words", map[string]string{"PIIVAULT_INBOUND_WORDS": "access=copy"}, "PIIVAULT_INBOUND_WORDS"},
		{"inbound address", map[string]string{"PIIVAULT_INBOUND_ADDRESS": "Privacy <privacy@shop.example>"}, "PIIVAULT_INBOUND_ADDRESS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadConfig(envOf(tt.env))
			require.Error(t, err)
			require.True(t, strings.HasPrefix(err.Error(), tt.wants+":"), "error %q should start with the variable", err)
			require.NotContains(t, err.Error(), "\n")
		})
	}
}

// TestPublicURLIsReadAsAnOrigin: PIIVAULT_PUBLIC_URL is kept as a browser
// writes an Origin header, and only https makes piivault HTTPS-only.
func TestPublicURLIsReadAsAnOrigin(t *testing.T) {
	tests := []struct {
		name      string
		value     string
		origin    string
		httpsOnly bool
	}{
		{"unset", "", "", false},
		{"https", "https://vault.shop.example", "https://vault.shop.example", true},
		{"trailing slash", "https://vault.shop.example/", "https://vault.shop.example", true},
		{"case and default port", "HTTPS://Vault.Shop.Example:443/", "https://vault.shop.example", true},
		{"other port", "https://vault.shop.example:8443", "https://vault.shop.example:8443", true},
		{"ipv6 host", "https://[2001:db8::1]:8443", "https://[2001:db8::1]:8443", true},
		{"http changes nothing", "http://vault.internal:80", "http://vault.internal", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := loadConfig(envOf(map[string]string{"VAULT_TOKEN": "x", "PIIVAULT_PUBLIC_URL": tt.value}))
			require.NoError(t, err)
			require.Equal(t, tt.origin, cfg.PublicURL)
			require.Equal(t, tt.httpsOnly, cfg.httpsOnly())
			if tt.httpsOnly {
				require.Equal(t, tt.origin, cfg.publicHTTPS())
			} else {
				require.Empty(t, cfg.publicHTTPS())
			}
		})
	}
}

func TestServeRefusesBadConfigWithOneLine(t *testing.T) {
	var out, errOut bytes.Buffer
	err := realMain(context.Background(), []string{"serve"}, nil, &out, &errOut,
		envOf(map[string]string{"PIIVAULT_RETENTION": "1000h", "VAULT_TOKEN": "x"}))
	require.Error(t, err)
	require.Contains(t, err.Error(), "PIIVAULT_RETENTION")
	require.Empty(t, out.String())
}

func TestSecretsNeverPrint(t *testing.T) {
	cfg, err := loadConfig(envOf(map[string]string{"VAULT_TOKEN": "hvs.supersecret", "SHOPIFY_WEBHOOK_SECRET": "shpss_x"}))
	require.NoError(t, err)
	var buf bytes.Buffer
	_, _ = buf.WriteString(strings.Join([]string{cfg.VaultToken.String(), cfg.ShopifySecret.String()}, " "))
	require.NotContains(t, buf.String(), "supersecret")
	require.NotContains(t, buf.String(), "shpss_x")
}

func TestErrorsPrintOnOneLine(t *testing.T) {
	err := fmt.Errorf("staff add: %w", errors.New("Error making API request.\n\nURL: PUT http://127.0.0.1:8200/v1/x\nCode: 400. Errors:\n\n* bad"))
	line := oneLine(err)
	require.NotContains(t, line, "\n")
	require.Equal(t, "piivault: staff add: Error making API request. URL: PUT http://127.0.0.1:8200/v1/x Code: 400. Errors: * bad", line)
}

func TestParseTakesFlagsAroundTheName(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    string
		json    bool
		wantErr string
	}{
		{"name first", []string{"alice", "--json"}, "alice", true, ""},
		{"flags first", []string{"--json", "alice"}, "alice", true, ""},
		{"flags on both sides", []string{"--role", "x", "alice", "--json"}, "alice", true, ""},
		{"leftover argument", []string{"alice", "bob"}, "", false, "unexpected argument"},
		{"no name", []string{"--json"}, "", true, "missing NAME"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			asJSON := fs.Bool("json", false, "")
			fs.String("role", "", "")
			name, err := parse(fs, tt.args, true)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, name)
			require.Equal(t, tt.json, *asJSON)
		})
	}
}

func TestRedisURLSchemes(t *testing.T) {
	tests := []struct {
		url     string
		cluster []string // seed addresses when a Cluster is expected
		tls     bool
	}{
		{url: "redis://127.0.0.1:6379/0"},
		{url: "rediss://127.0.0.1:6380/0", tls: true},
		{url: "redis+cluster://127.0.0.1:7000?addr=127.0.0.1:7001&addr=127.0.0.1:7002",
			cluster: []string{"127.0.0.1:7000", "127.0.0.1:7001", "127.0.0.1:7002"}},
		{url: "rediss+cluster://127.0.0.1:7000?addr=127.0.0.1:7001",
			cluster: []string{"127.0.0.1:7000", "127.0.0.1:7001"}, tls: true},
	}
	for _, tt := range tests {
		cfg, err := loadConfig(envOf(map[string]string{"VAULT_TOKEN": "x", "REDIS_URL": tt.url}))
		require.NoError(t, err, tt.url)
		if tt.cluster == nil {
			require.Nil(t, cfg.redisCluster, tt.url)
			require.Equal(t, tt.tls, cfg.redisOpts.TLSConfig != nil, tt.url)
			continue
		}
		require.NotNil(t, cfg.redisCluster, tt.url)
		require.Equal(t, tt.cluster, cfg.redisCluster.Addrs, tt.url)
		require.Equal(t, tt.tls, cfg.redisCluster.TLSConfig != nil, tt.url)
	}
	_, err := loadConfig(envOf(map[string]string{"VAULT_TOKEN": "x", "REDIS_URL": "rediss+cluster://127.0.0.1:7000?bogus=1"}))
	require.ErrorContains(t, err, "REDIS_URL")
	require.ErrorContains(t, err, "rediss+cluster://")
}

func TestRedisSentinelURL(t *testing.T) {
	cfg, err := loadConfig(envOf(map[string]string{"VAULT_TOKEN": "x",
		"REDIS_URL": "redis+sentinel://:s3cret@127.0.0.1:26379/2?master=piivault&addr=127.0.0.1:26380&addr=127.0.0.1:26381"}))
	require.NoError(t, err)
	require.NotNil(t, cfg.redisFailover)
	require.Equal(t, "piivault", cfg.redisFailover.MasterName)
	require.Equal(t, []string{"127.0.0.1:26379", "127.0.0.1:26380", "127.0.0.1:26381"}, cfg.redisFailover.SentinelAddrs)
	require.Equal(t, 2, cfg.redisFailover.DB)
	require.Equal(t, "s3cret", cfg.redisFailover.Password, "the URL's password is the Redis password, for the Sentinels too")
}

// TestDeployExamplesAreValidConfiguration loads the environment of the
// systemd example and the Kubernetes ConfigMap through the real
// configuration parser, with the secrets they leave out filled in.
func TestDeployExamplesAreValidConfiguration(t *testing.T) {
	secrets := map[string]string{"PIIVAULT_VAULT_ROLE_ID": "role", "PIIVAULT_VAULT_SECRET_ID": "secret"}
	withSecrets := func(vars map[string]string) map[string]string {
		for k, v := range secrets {
			if vars[k] == "" {
				vars[k] = v
			}
		}
		return vars
	}
	raw, err := os.ReadFile("../../deploy/systemd/piivault.env.example")
	require.NoError(t, err)
	vars := map[string]string{}
	for _, line := range strings.Split(string(raw), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			vars[k] = v
		}
	}
	cfg, err := loadConfig(envOf(withSecrets(vars)))
	require.NoError(t, err, "piivault.env.example")
	require.Equal(t, 1, cfg.RedisWait)
	require.NotNil(t, cfg.redisFailover)
	require.True(t, cfg.httpsOnly(), "TLS ends at the proxy in front: PIIVAULT_PUBLIC_URL must be https")

	raw, err = os.ReadFile("../../deploy/kubernetes/configmap.yaml")
	require.NoError(t, err)
	var cm struct {
		Data map[string]string `json:"data"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &cm))
	cfg, err = loadConfig(envOf(withSecrets(cm.Data)))
	require.NoError(t, err, "configmap.yaml")
	require.Equal(t, 1, cfg.RedisWait)
	require.True(t, cfg.httpsOnly(), "TLS ends at the ingress: PIIVAULT_PUBLIC_URL must be https")
	addrs, err := vault.SplitAddrs(cfg.VaultAddr)
	require.NoError(t, err)
	require.Len(t, addrs, 3)
}

// TestWholeConfigNeverPrintsASecret sets every secret variable to a canary
// and renders the whole configuration every way it could reach a log or an
// error (configRenderings): no canary may appear, in clear or in hex. Every
// secret field must hold a canary, so a secret added later without one here
// fails this test instead of going unchecked.
func TestWholeConfigNeverPrintsASecret(t *testing.T) {
	vars := map[string]string{
		"VAULT_TOKEN":              "canary-vault-token",
		"PIIVAULT_VAULT_ROLE_ID":   "role",
		"PIIVAULT_VAULT_SECRET_ID": "canary-secret-id",
		"STRIPE_WEBHOOK_SECRET":    "canary-stripe-1,canary-stripe-2",
		"SHOPIFY_WEBHOOK_SECRET":   "canary-shopify",
		"EASYPOST_WEBHOOK_SECRET":  "canary-easypost-webhook",
		"EASYPOST_API_KEY":         "canary-easypost-key",
		"PIIVAULT_WEBHOOK_SECRET":  "canary-shipping",
		"PIIVAULT_INBOUND_SECRET":  "canary-inbound",
		"REDIS_URL":                "redis://:canary-redis-password@127.0.0.1:6379/0",
		"PIIVAULT_SMTP_URL":        "smtp://mailer:canary-smtp-password@smtp.example.com:587",
		"PIIVAULT_MAIL_FROM":       "privacy@shop.example",
	}
	leaks := []string{"canary-redis-password", "canary-smtp-password"}
	for _, v := range vars {
		for _, c := range strings.Split(v, ",") {
			if strings.HasPrefix(c, "canary-") {
				leaks = append(leaks, c)
			}
		}
	}
	cfg, err := loadConfig(envOf(vars))
	require.NoError(t, err)
	secrets := 0
	for field, values := range configSecrets(cfg) {
		for _, s := range values {
			require.Contains(t, s, "canary-", "config.%s is a secret this test does not set", field)
			secrets++
		}
	}
	require.GreaterOrEqual(t, secrets, 8, "the secrets of the config were found")

	for how, text := range configRenderings(t, cfg) {
		t.Run(how, func(t *testing.T) {
			require.True(t, strings.Contains(text, "[REDACTED]") || strings.Contains(text, fmt.Sprintf("%x", "[REDACTED]")),
				"secrets are shown as redacted, not dropped silently: %s", text)
			for _, c := range leaks {
				require.NotContains(t, text, c)
				require.NotContains(t, text, fmt.Sprintf("%x", c))
			}
		})
	}
}
