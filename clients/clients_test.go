package clients

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"piivault/internal/apperr"
	"piivault/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestKeyLifecycle(t *testing.T) {
	env := testenv.Shared(t)
	ctx := context.Background()
	r := NewRegistry(env.Redis)

	key, err := r.Add(ctx, "shop")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(key, KeyPrefix))
	require.GreaterOrEqual(t, len(key)-len(KeyPrefix), 43, "256 bits of entropy")

	name, err := r.Authenticate(ctx, key)
	require.NoError(t, err)
	require.Equal(t, "shop", name)

	// Redis holds the key's hash only.
	for _, k := range env.Redis.Keys(ctx, "*").Val() {
		dump := env.Redis.HGetAll(ctx, k).Val()
		for f, v := range dump {
			require.NotContains(t, f+v, key[len(KeyPrefix):], "key %s", k)
		}
	}

	_, err = r.Add(ctx, "shop")
	require.True(t, apperr.Is(err, apperr.Conflict), "%v", err)
	still, err := r.Authenticate(ctx, key)
	require.NoError(t, err, "a refused add leaves the first key alone")
	require.Equal(t, "shop", still)

	other, err := r.Add(ctx, "outlet")
	require.NoError(t, err)
	require.NotEqual(t, key, other)
	names, err := r.List(ctx)
	require.NoError(t, err)
	require.Equal(t, []Client{{Name: "outlet", Origins: []string{}}, {Name: "shop", Origins: []string{}}}, names)

	require.NoError(t, r.Revoke(ctx, "shop"))
	_, err = r.Authenticate(ctx, key)
	require.Equal(t, ErrBadKey, err, "a revoked key fails on the next request")
	_, err = r.Authenticate(ctx, other)
	require.NoError(t, err, "revoking one client leaves the others")
	require.True(t, apperr.Is(r.Revoke(ctx, "shop"), apperr.NotFound))
}

func TestBadKeysGetOneAnswer(t *testing.T) {
	env := testenv.Shared(t)
	r := NewRegistry(env.Redis)
	valid, err := r.Add(context.Background(), "shop")
	require.NoError(t, err)
	for _, key := range []string{
		"",
		"pvk_",
		"pvk_unknown",
		valid[len(KeyPrefix):],               // no prefix
		strings.ToUpper(valid),               // wrong case
		valid + "x",                          // longer
		KeyPrefix + strings.Repeat("a", 200), // over the length cap
		"Bearer " + valid,                    // a header value pasted whole
	} {
		_, err := r.Authenticate(context.Background(), key)
		require.Equal(t, ErrBadKey, err, "%q", key)
	}
}

func TestAddRefusesBadNames(t *testing.T) {
	env := testenv.Shared(t)
	r := NewRegistry(env.Redis)
	for _, name := range []string{"", "Shop", "-shop", "shop name", "shop/1", strings.Repeat("a", 64), "shöp"} {
		_, err := r.Add(context.Background(), name)
		require.True(t, apperr.Is(err, apperr.Validation), "%q: %v", name, err)
	}
	names, err := r.List(context.Background())
	require.NoError(t, err)
	require.Empty(t, names)
}

func TestPublishableKeysServeOnlyTheirOrigins(t *testing.T) {
	env := testenv.Shared(t)
	ctx := context.Background()
	r := NewRegistry(env.Redis)
	tests := []struct {
		name    string
		origins []string
		ok      bool
	}{
		{"path", []string{"https://shop.example/checkout"}, false},
		{"no scheme", []string{"shop.example"}, false},
		{"credentials", []string{"https://a:b@shop.example"}, false},
		{"fine", []string{"https://shop.example", "http://127.0.0.1:8090"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := r.AddWithOrigins(ctx, "web-"+strings.ReplaceAll(tt.name, " ", "-"), tt.origins)
			if !tt.ok {
				require.True(t, apperr.Is(err, apperr.Validation), "%v", err)
				return
			}
			require.NoError(t, err)
			require.True(t, strings.HasPrefix(k.PublishableKey, PublishableKeyPrefix))
			name, err := r.AuthenticatePublishable(ctx, k.PublishableKey, "https://shop.example")
			require.NoError(t, err)
			require.Equal(t, "web-fine", name)
			_, err = r.AuthenticatePublishable(ctx, k.PublishableKey, "https://evil.example")
			require.Equal(t, ErrBadPublishableKey, err)
			_, err = r.Authenticate(ctx, k.PublishableKey)
			require.Equal(t, ErrBadKey, err, "a publishable key is no API key")
			require.NoError(t, r.Revoke(ctx, "web-fine"))
			_, err = r.AuthenticatePublishable(ctx, k.PublishableKey, "https://shop.example")
			require.Equal(t, ErrBadPublishableKey, err)
		})
	}
}
