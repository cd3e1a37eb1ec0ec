package vault_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"piivault/internal/apperr"
	"piivault/internal/testenv"
	"piivault/vault"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestSetupIsIdempotent(t *testing.T) {
	env := testenv.Shared(t) // already set up once by the environment
	ctx := context.Background()
	for run := 0; run < 2; run++ {
		report, err := env.Root.Setup(ctx, vault.SetupOptions{BindCIDRs: []string{"127.0.0.0/8"}})
		require.NoError(t, err, "run %d", run)
		for _, step := range report.Steps {
			require.NotContains(t, step, "created", "run %d re-created something: %s", run, step)
		}
	}
	info, err := env.Service.Key().ReadKey(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, info.LatestVersion)
}

func TestServiceIdentityEncryptsButCannotDecrypt(t *testing.T) {
	env := testenv.Shared(t)
	ctx := context.Background()
	ad := []byte("order-1")
	res, err := env.Service.Encrypt(ctx, []vault.Plaintext{{Plaintext: []byte("Jane Doe"), AssociatedData: ad}})
	require.NoError(t, err)
	require.NoError(t, res[0].Err)
	require.True(t, strings.HasPrefix(res[0].Value, "vault:v1:"))

	_, err = env.Service.Decrypt(ctx, vault.TokenOf(env.Service), res[0].Value, ad)
	require.Error(t, err)
	require.Equal(t, apperr.Forbidden, apperr.CodeOf(err), "the service's AppRole must get 403 on decrypt: %v", err)

	// The root token can decrypt, but only with the same associated data.
	pt, err := env.Root.Client().Decrypt(ctx, env.RootToken, res[0].Value, ad)
	require.NoError(t, err)
	require.Equal(t, "Jane Doe", string(pt))
	_, err = env.Root.Client().Decrypt(ctx, env.RootToken, res[0].Value, []byte("order-2"))
	require.Equal(t, apperr.Gone, apperr.CodeOf(err), "ciphertext bound to another order must not decrypt")
}

func TestHMACIsDeterministic(t *testing.T) {
	env := testenv.Shared(t)
	res, err := env.Service.HMAC(context.Background(), [][]byte{[]byte("a@example.com"), []byte("a@example.com"), []byte("b@example.com")})
	require.NoError(t, err)
	require.Equal(t, res[0].Value, res[1].Value)
	require.NotEqual(t, res[0].Value, res[2].Value)
}

func TestVaultDownIsUnavailable(t *testing.T) {
	env := testenv.Start(t)
	env.StopVault(t)
	_, err := env.Service.Encrypt(context.Background(), []vault.Plaintext{{Plaintext: []byte("x"), AssociatedData: []byte("o")}})
	require.Equal(t, apperr.VaultUnavailable, apperr.CodeOf(err))
	require.Equal(t, apperr.VaultUnavailable, apperr.CodeOf(env.Service.Ready(context.Background())))
}

func TestRoleFromPolicies(t *testing.T) {
	tests := []struct {
		name     string
		policies []string
		want     string
	}{
		{"fulfillment", []string{"default", "piivault-fulfillment"}, "fulfillment"},
		{"auditor", []string{"piivault-auditor"}, "auditor"},
		{"service is no role", []string{"piivault-service"}, ""},
		{"bare role name is not a policy of ours", []string{"admin"}, ""},
		{"none", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, vault.RoleFromPolicies(tt.policies))
		})
	}
}
