// Package clients owns the storefront API keys. A key is shown once, when
// it is made; Redis keeps only its SHA-256, so a copy of Redis cannot be
// used to call the API.
//
//	piivault:{clients}:names   hash  client name → sha256(key) hex
//	piivault:{clients}:keys    hash  sha256(key) hex → client name
//
// Both hashes share a hash tag so add and revoke are atomic on a Cluster too.
package clients

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"piivault/internal/apperr"
)

// KeyPrefix marks piivault storefront keys, so they are recognisable in a
// leaked-secret scan and distinguishable from Vault tokens.
const KeyPrefix = "pvk_"

const (
	namesKey = "piivault:{clients}:names"
	keysKey  = "piivault:{clients}:keys"
)

var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// Registry stores client keys in Redis.
type Registry struct {
	rdb     redis.UniversalClient
	timeout time.Duration
}

// NewRegistry builds a Registry.
func NewRegistry(rdb redis.UniversalClient) *Registry {
	return &Registry{rdb: rdb, timeout: 3 * time.Second}
}

func hash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// addScript adds a client unless the name is taken: 1 added, 0 taken.
var addScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
return 1
`)

// revokeScript removes a client and its key: 1 revoked, 0 unknown.
var revokeScript = redis.NewScript(`
local h = redis.call('HGET', KEYS[1], ARGV[1])
if not h then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], h)
return 1
`)

// Add makes a new client and returns its API key, the only time it exists
// outside the caller's hands. A taken name is Conflict.
func (r *Registry) Add(ctx context.Context, name string) (string, error) {
	if !namePattern.MatchString(name) {
		return "", apperr.New(apperr.Validation, "client name must be 1-63 of a-z 0-9 . _ - (starting with a letter or digit)")
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	key := KeyPrefix + base64.RawURLEncoding.EncodeToString(raw)
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	n, err := addScript.Run(ctx, r.rdb, []string{namesKey, keysKey}, name, hash(key)).Int()
	if err != nil {
		return "", apperr.Wrap(apperr.StoreUnavailable, err, "the store is unavailable")
	}
	if n == 0 {
		return "", apperr.New(apperr.Conflict, "client %q already exists; revoke it first", name)
	}
	return key, nil
}

// Revoke removes a client; its key fails on the next request.
func (r *Registry) Revoke(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	n, err := revokeScript.Run(ctx, r.rdb, []string{namesKey, keysKey}, name).Int()
	if err != nil {
		return apperr.Wrap(apperr.StoreUnavailable, err, "the store is unavailable")
	}
	if n == 0 {
		return apperr.New(apperr.NotFound, "no client %q", name)
	}
	return nil
}

// List returns the client names.
func (r *Registry) List(ctx context.Context) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	names, err := r.rdb.HKeys(ctx, namesKey).Result()
	if err != nil {
		return nil, apperr.Wrap(apperr.StoreUnavailable, err, "the store is unavailable")
	}
	sort.Strings(names)
	return names, nil
}

// ErrBadKey is the one answer to a missing, unknown or revoked key.
var ErrBadKey = apperr.New(apperr.Unauthorized, "invalid API key")

// Authenticate returns the name of the client owning key.
func (r *Registry) Authenticate(ctx context.Context, key string) (string, error) {
	if !strings.HasPrefix(key, KeyPrefix) || len(key) > 128 {
		return "", ErrBadKey
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	name, err := r.rdb.HGet(ctx, keysKey, hash(key)).Result()
	if errors.Is(err, redis.Nil) {
		return "", ErrBadKey
	}
	if err != nil {
		return "", apperr.Wrap(apperr.StoreUnavailable, err, "the store is unavailable")
	}
	return name, nil
}
