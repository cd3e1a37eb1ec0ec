package vault_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"

	vaultapi "github.com/hashicorp/vault/api"
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

// Tokens carry their role's policy and nothing else: Vault's default
// policy is templated, so Vault parses it again on every request of a token
// that has it. Setup brings members added before this up to date, and the
// service still asks Vault what it may do (its start-up decrypt check).
func TestTokensCarryTheirRolePolicyAlone(t *testing.T) {
	env := testenv.Shared(t)
	ctx := context.Background()
	policiesOf := func(token string) []string {
		c, err := vaultapi.NewClient(&vaultapi.Config{Address: env.Stack.VaultAddr})
		require.NoError(t, err)
		c.SetToken(token)
		s, err := c.Auth().Token().LookupSelfWithContext(ctx)
		require.NoError(t, err)
		pols, err := s.TokenPolicies()
		require.NoError(t, err)
		return pols
	}
	require.Equal(t, []string{vault.ServicePolicy}, policiesOf(vault.TokenOf(env.Service)))
	can, err := env.Service.CanDecrypt(ctx)
	require.NoError(t, err)
	require.False(t, can)

	root, err := vaultapi.NewClient(&vaultapi.Config{Address: env.Stack.VaultAddr})
	require.NoError(t, err)
	root.SetToken(env.Stack.RootToken)
	user := "auth/" + vault.UserpassMount + "/users/old-member"
	_, err = root.Logical().WriteWithContext(ctx, user, map[string]any{
		"password": "An-Old-Password-0123456789", "token_policies": []string{vault.PolicyPrefix + "support"}})
	require.NoError(t, err)
	report, err := env.Root.Setup(ctx, vault.SetupOptions{BindCIDRs: []string{"127.0.0.0/8"}})
	require.NoError(t, err)
	require.Contains(t, strings.Join(report.Steps, "\n"), "staff tokens: 1 members'")
	u, err := root.Logical().ReadWithContext(ctx, user)
	require.NoError(t, err)
	require.Equal(t, true, u.Data["token_no_default_policy"])
	require.Equal(t, []any{vault.PolicyPrefix + "support"}, u.Data["token_policies"], "the role is kept")
	_, err = root.Logical().DeleteWithContext(ctx, user)
	require.NoError(t, err)
}

// Transit's answers are read item by item: one bad item fails only itself,
// and a refused call fails as a whole with the right code.
func TestTransitAnswersItemByItem(t *testing.T) {
	env := testenv.Shared(t)
	ctx := context.Background()
	enc, err := env.Service.Encrypt(ctx, []vault.Plaintext{
		{Plaintext: []byte("Jane Doe"), AssociatedData: []byte("order-1")},
		{Plaintext: []byte("John Roe"), AssociatedData: []byte("order-2")},
	})
	require.NoError(t, err)
	root := env.Root.Client()

	labels, err := root.DecryptBatch(ctx, env.RootToken, []vault.Ciphertext{
		{Ciphertext: enc[0].Value, AssociatedData: []byte("order-1")},
		{Ciphertext: enc[1].Value, AssociatedData: []byte("order-1")}, // bound to order-2
	})
	require.NoError(t, err)
	require.NoError(t, labels[0].Err)
	require.Equal(t, "Jane Doe", labels[0].Value)
	require.Equal(t, apperr.Gone, apperr.CodeOf(labels[1].Err))

	seals, err := env.Service.Seal(ctx, [][]byte{[]byte("entry-1"), []byte("entry-2")})
	require.NoError(t, err)
	valid, err := env.Service.VerifySeals(ctx, [][]byte{[]byte("entry-1"), []byte("entry-2"), []byte("entry-3")},
		[]string{seals[0].Value, seals[0].Value, "not a seal"})
	require.NoError(t, err)
	require.Equal(t, []bool{true, false, false}, valid)

	for _, tc := range []struct {
		name  string
		token string
		want  apperr.Code
	}{
		{"no token", "", apperr.Forbidden},
		{"the service's own token", vault.TokenOf(env.Service), apperr.Forbidden},
		{"a token Vault does not know", "hvs.not-a-token", apperr.Forbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := root.DecryptBatch(ctx, tc.token, []vault.Ciphertext{{Ciphertext: enc[0].Value, AssociatedData: []byte("order-1")}})
			require.Equal(t, tc.want, apperr.CodeOf(err), "%v", err)
			_, err = root.Decrypt(ctx, tc.token, enc[0].Value, []byte("order-1"))
			require.Equal(t, tc.want, apperr.CodeOf(err), "%v", err)
		})
	}
}

// A standby that does not forward requests redirects them to the active
// node (307): a transit call follows it with its body, not an empty one.
func TestTransitCallsFollowARedirectWithTheirBody(t *testing.T) {
	env := testenv.Shared(t)
	ctx := context.Background()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	standby := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, env.VaultAddr+r.URL.RequestURI(), http.StatusTemporaryRedirect)
	})}
	go func() { _ = standby.Serve(l) }()
	t.Cleanup(func() { _ = standby.Close() })

	c, err := vault.New(ctx, vault.Config{Addr: "http://" + l.Addr().String(), Token: env.RootToken}, testenv.Logger())
	require.NoError(t, err)
	enc, err := c.Encrypt(ctx, []vault.Plaintext{{Plaintext: []byte("Jane Doe"), AssociatedData: []byte("order-1")}})
	require.NoError(t, err)
	require.NoError(t, enc[0].Err)
	plain, err := c.Decrypt(ctx, env.RootToken, enc[0].Value, []byte("order-1"))
	require.NoError(t, err)
	require.Equal(t, "Jane Doe", string(plain))
}
