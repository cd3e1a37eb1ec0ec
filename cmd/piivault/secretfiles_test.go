package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"piivault/internal/testenv"
)

// writeSecret writes content to a new file and returns its path.
func writeSecret(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

// TestSecretFromFile: every secret variable reads NAME_FILE, trailing
// newlines trimmed, and the configuration holds the same value as with
// NAME itself.
func TestSecretFromFile(t *testing.T) {
	tests := []struct {
		name string
		got  func(*config) []string
	}{
		{"VAULT_TOKEN", func(c *config) []string { return []string{string(c.VaultToken)} }},
		{"PIIVAULT_VAULT_SECRET_ID", func(c *config) []string { return []string{string(c.SecretID)} }},
		{"STRIPE_WEBHOOK_SECRET", func(c *config) []string {
			var out []string
			for _, s := range c.StripeSecrets {
				out = append(out, string(s))
			}
			return out
		}},
		{"SHOPIFY_WEBHOOK_SECRET", func(c *config) []string { return []string{string(c.ShopifySecret)} }},
		{"EASYPOST_WEBHOOK_SECRET", func(c *config) []string { return []string{string(c.EasyPostSecret)} }},
		{"EASYPOST_API_KEY", func(c *config) []string { return []string{string(c.EasyPostAPIKey)} }},
		{"PIIVAULT_WEBHOOK_SECRET", func(c *config) []string { return []string{string(c.ShippingSecret)} }},
	}
	for _, tt := range tests {
		for _, content := range []string{"s3cr3t-value", "s3cr3t-value\n", "s3cr3t-value\r\n", "s3cr3t-value\n\n"} {
			t.Run(tt.name+"/"+strings.NewReplacer("\r", `\r`, "\n", `\n`).Replace(content), func(t *testing.T) {
				vars := map[string]string{"VAULT_TOKEN": "x", "PIIVAULT_VAULT_ROLE_ID": "role", "PIIVAULT_VAULT_SECRET_ID": "id"}
				delete(vars, tt.name)
				vars[tt.name+"_FILE"] = writeSecret(t, content)
				fromFile, err := loadConfig(envOf(vars))
				require.NoError(t, err)
				require.Equal(t, []string{"s3cr3t-value"}, tt.got(fromFile))

				delete(vars, tt.name+"_FILE")
				vars[tt.name] = "s3cr3t-value"
				direct, err := loadConfig(envOf(vars))
				require.NoError(t, err)
				require.Equal(t, direct, fromFile, "NAME_FILE is NAME, nothing else changes")
			})
		}
	}
}

// TestSecretFromFileKeepsAStripeRoll: a file holds the comma-separated
// pair of a secret roll as the variable would.
func TestSecretFromFileKeepsAStripeRoll(t *testing.T) {
	cfg, err := loadConfig(envOf(map[string]string{"VAULT_TOKEN": "x",
		"STRIPE_WEBHOOK_SECRET_FILE": writeSecret(t, "whsec_new, whsec_old\n")}))
	require.NoError(t, err)
	require.Equal(t, []secret{"whsec_new", "whsec_old"}, cfg.StripeSecrets)
}

func TestSecretFileRefusals(t *testing.T) {
	dir := t.TempDir()
	big := writeSecret(t, strings.Repeat("a", maxSecretFile+1))
	tests := []struct {
		name string
		env  map[string]string
		want string // the whole message
	}{
		{"both set", map[string]string{"VAULT_TOKEN": "x", "VAULT_TOKEN_FILE": writeSecret(t, "y")},
			"VAULT_TOKEN: set VAULT_TOKEN or VAULT_TOKEN_FILE, not both"},
		{"both set, file missing", map[string]string{"SHOPIFY_WEBHOOK_SECRET": "x", "SHOPIFY_WEBHOOK_SECRET_FILE": "/nonexistent"},
			"SHOPIFY_WEBHOOK_SECRET: set SHOPIFY_WEBHOOK_SECRET or SHOPIFY_WEBHOOK_SECRET_FILE, not both"},
		{"both set, inbound", map[string]string{"PIIVAULT_INBOUND_SECRET": "x", "PIIVAULT_INBOUND_SECRET_FILE": writeSecret(t, "y")},
			"PIIVAULT_INBOUND_SECRET: set PIIVAULT_INBOUND_SECRET or PIIVAULT_INBOUND_SECRET_FILE, not both"},
		{"missing file", map[string]string{"EASYPOST_API_KEY_FILE": filepath.Join(dir, "nope")},
			`EASYPOST_API_KEY_FILE: cannot read "` + filepath.Join(dir, "nope") + `": no such file or directory`},
		{"a directory", map[string]string{"PIIVAULT_WEBHOOK_SECRET_FILE": dir},
			`PIIVAULT_WEBHOOK_SECRET_FILE: cannot read "` + dir + `": is a directory`},
		{"empty file", map[string]string{"EASYPOST_WEBHOOK_SECRET_FILE": writeSecret(t, "\n")},
			"EASYPOST_WEBHOOK_SECRET_FILE: "},
		{"too big", map[string]string{"STRIPE_WEBHOOK_SECRET_FILE": big},
			`STRIPE_WEBHOOK_SECRET_FILE: "` + big + `" is larger than 64 KiB: not a secret`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadConfig(envOf(tt.env))
			require.Error(t, err)
			var ce *configError
			require.ErrorAs(t, err, &ce)
			require.True(t, strings.HasPrefix(err.Error(), tt.want), "%q", err.Error())
			require.NotContains(t, err.Error(), "\n")

			// And a command stops with it as its one line, before
			// connecting anywhere.
			var errOut bytes.Buffer
			status := exitStatus(context.Background(), []string{"staff", "list"}, nil, io.Discard, &errOut, envOf(tt.env))
			require.Equal(t, 1, status)
			require.Equal(t, "piivault: "+err.Error()+"\n", errOut.String())
		})
	}
}

// TestSecretFileNeverInTheError: a refusal names the file, never what it
// holds.
func TestSecretFileNeverInTheError(t *testing.T) {
	p := writeSecret(t, strings.Repeat("canary-secret ", 5000))
	_, err := loadConfig(envOf(map[string]string{"VAULT_TOKEN_FILE": p}))
	require.Error(t, err)
	require.NotContains(t, err.Error(), "canary")
}

// TestSecretFilesReachTheCommands: the operator's token and the service's
// AppRole secret id from files, against a real Vault and Redis.
func TestSecretFilesReachTheCommands(t *testing.T) {
	te := testenv.Shared(t)
	vars := map[string]string{
		"VAULT_ADDR":                    te.VaultAddr,
		"REDIS_URL":                     te.RedisURL,
		"VAULT_TOKEN_FILE":              writeSecret(t, te.RootToken+"\n"),
		"PIIVAULT_VAULT_ROLE_ID":        te.RoleID,
		"PIIVAULT_VAULT_SECRET_ID_FILE": writeSecret(t, te.SecretID+"\n"),
	}
	status, out, errOut := cli(t, envOf(vars), "staff", "list", "--json")
	require.Equal(t, 0, status, errOut)
	require.True(t, strings.HasPrefix(out, "["), out)

	// clients add acts as the service: the AppRole wins over the token.
	delete(vars, "VAULT_TOKEN_FILE")
	status, out, errOut = cli(t, envOf(vars), "clients", "add", "file-shop", "--json")
	require.Equal(t, 0, status, errOut)
	require.Regexp(t, `^\{"api_key":"pvk_[A-Za-z0-9_-]{43}","name":"file-shop"\}\n$`, out)
}
