// Package clients owns the storefront API keys. A key is shown once, when
// it is made; Redis keeps only its SHA-256, so a copy of Redis cannot be
// used to call the API.
//
//	piivault:{clients}:names    hash  client name → sha256(key) hex
//	piivault:{clients}:keys     hash  sha256(key) hex → client name
//	piivault:{clients}:pknames  hash  client name → sha256(publishable key) hex
//	piivault:{clients}:pks      hash  sha256(publishable key) hex → client name
//	piivault:{clients}:origins  hash  client name → JSON list of the origins its publishable key serves
//
// A publishable key (pk_…) is not a secret: it sits in the storefront's
// page. It is good only for the browser checkout route, only from its own
// origins, and only with a checkout session the secret key opened.
//
// Both hashes share a hash tag so add and revoke are atomic on a Cluster too.
package clients

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"piivault/internal/apperr"
)

// KeyPrefix marks piivault storefront keys, so they are recognisable in a
// leaked-secret scan and distinguishable from Vault tokens.
const KeyPrefix = "pvk_"

// PublishableKeyPrefix marks publishable keys.
const PublishableKeyPrefix = "pk_"

const (
	namesKey   = "piivault:{clients}:names"
	keysKey    = "piivault:{clients}:keys"
	pkNamesKey = "piivault:{clients}:pknames"
	pksKey     = "piivault:{clients}:pks"
	originsKey = "piivault:{clients}:origins"
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
// ARGV: name, key hash, publishable key hash ("" for none), origins JSON.
var addScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
  redis.call('HSET', KEYS[4], ARGV[3], ARGV[1])
  redis.call('HSET', KEYS[5], ARGV[1], ARGV[4])
end
return 1
`)

// revokeScript removes a client and both its keys: 1 revoked, 0 unknown.
var revokeScript = redis.NewScript(`
local h = redis.call('HGET', KEYS[1], ARGV[1])
if not h then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], h)
local pk = redis.call('HGET', KEYS[3], ARGV[1])
if pk then
  redis.call('HDEL', KEYS[3], ARGV[1])
  redis.call('HDEL', KEYS[4], pk)
  redis.call('HDEL', KEYS[5], ARGV[1])
end
return 1
`)

var allKeys = []string{namesKey, keysKey, pkNamesKey, pksKey, originsKey}

// Keys are what Add hands out, once.
type Keys struct {
	APIKey         string
	PublishableKey string // "" unless origins were given
}

// Add makes a new client and returns its API key, the only time it exists
// outside the caller's hands. A taken name is Conflict.
func (r *Registry) Add(ctx context.Context, name string) (string, error) {
	k, err := r.AddWithOrigins(ctx, name, nil)
	return k.APIKey, err
}

// AddWithOrigins makes a new client; with origins (https://shop.example,
// scheme and host only) it also mints a publishable key usable only from
// them, for the browser checkout.
func (r *Registry) AddWithOrigins(ctx context.Context, name string, origins []string) (Keys, error) {
	if !namePattern.MatchString(name) {
		return Keys{}, apperr.New(apperr.Validation, "client name must be 1-63 of a-z 0-9 . _ - (starting with a letter or digit)")
	}
	for _, o := range origins {
		if !ValidOrigin(o) {
			return Keys{}, apperr.New(apperr.Validation, "origin %q must be a scheme and host like https://shop.example (no path)", o)
		}
	}
	k := Keys{APIKey: KeyPrefix + randomKey(32)}
	pkHash, originsJSON := "", "[]"
	if len(origins) > 0 {
		k.PublishableKey = PublishableKeyPrefix + randomKey(24)
		pkHash = hash(k.PublishableKey)
		b, _ := json.Marshal(origins)
		originsJSON = string(b)
	}
	args := []any{name, hash(k.APIKey), pkHash, originsJSON}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	n, err := addScript.Run(ctx, r.rdb, allKeys, args...).Int()
	if err != nil {
		return Keys{}, apperr.Wrap(apperr.StoreUnavailable, err, "the store is unavailable")
	}
	if n == 0 {
		return Keys{}, apperr.New(apperr.Conflict, "client %q already exists; revoke it first", name)
	}
	return k, nil
}

func randomKey(n int) string {
	raw := make([]byte, n)
	_, _ = rand.Read(raw)
	return base64.RawURLEncoding.EncodeToString(raw)
}

// ValidOrigin reports whether o is a web origin: http(s), a host, an
// optional port, nothing else.
func ValidOrigin(o string) bool {
	u, err := url.Parse(o)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" && u.Path == "" &&
		u.RawQuery == "" && u.Fragment == "" && u.User == nil && o == u.Scheme+"://"+u.Host
}

// Revoke removes a client; its key fails on the next request.
func (r *Registry) Revoke(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	n, err := revokeScript.Run(ctx, r.rdb, allKeys, name).Int()
	if err != nil {
		return apperr.Wrap(apperr.StoreUnavailable, err, "the store is unavailable")
	}
	if n == 0 {
		return apperr.New(apperr.NotFound, "no client %q", name)
	}
	return nil
}

// Client is one storefront client as `clients list` shows it.
type Client struct {
	Name    string   `json:"name"`
	Origins []string `json:"origins"`
}

// List returns the clients with the origins of their publishable keys.
func (r *Registry) List(ctx context.Context) ([]Client, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	pipe := r.rdb.Pipeline()
	names := pipe.HKeys(ctx, namesKey)
	origins := pipe.HGetAll(ctx, originsKey)
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, apperr.Wrap(apperr.StoreUnavailable, err, "the store is unavailable")
	}
	out := make([]Client, 0, len(names.Val()))
	for _, n := range names.Val() {
		c := Client{Name: n, Origins: []string{}}
		_ = json.Unmarshal([]byte(origins.Val()[n]), &c.Origins)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// ErrBadPublishableKey is the one answer to a missing, unknown or revoked
// publishable key, or one used from an origin it does not serve.
var ErrBadPublishableKey = apperr.New(apperr.Unauthorized, "invalid publishable key for this origin")

// AuthenticatePublishable returns the client whose publishable key pk is,
// if origin is one of the key's origins.
func (r *Registry) AuthenticatePublishable(ctx context.Context, pk, origin string) (string, error) {
	if !strings.HasPrefix(pk, PublishableKeyPrefix) || len(pk) > 128 || origin == "" {
		return "", ErrBadPublishableKey
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	name, err := r.rdb.HGet(ctx, pksKey, hash(pk)).Result()
	if errors.Is(err, redis.Nil) {
		return "", ErrBadPublishableKey
	}
	if err != nil {
		return "", apperr.Wrap(apperr.StoreUnavailable, err, "the store is unavailable")
	}
	raw, err := r.rdb.HGet(ctx, originsKey, name).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return "", apperr.Wrap(apperr.StoreUnavailable, err, "the store is unavailable")
	}
	var origins []string
	_ = json.Unmarshal([]byte(raw), &origins)
	if !slices.Contains(origins, origin) {
		return "", ErrBadPublishableKey
	}
	return name, nil
}

// ServesOrigin reports whether any publishable key serves origin: the
// answer to a CORS preflight that names no key (a client that sends the
// key as a Bearer header cannot put it in its preflight).
func (r *Registry) ServesOrigin(ctx context.Context, origin string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	all, err := r.rdb.HVals(ctx, originsKey).Result()
	if err != nil {
		return false, apperr.Wrap(apperr.StoreUnavailable, err, "the store is unavailable")
	}
	for _, v := range all {
		var origins []string
		if json.Unmarshal([]byte(v), &origins) == nil && slices.Contains(origins, origin) {
			return true, nil
		}
	}
	return false, nil
}

// ErrBadKey is the one answer to a missing, unknown or revoked key.
var ErrBadKey = apperr.New(apperr.Unauthorized, "invalid API key")

// Authenticate returns the name of the client owning key.
func (r *Registry) Authenticate(ctx context.Context, key string) (string, error) {
	if !validKey(key) {
		return "", ErrBadKey
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	return owner(r.rdb.HGet(ctx, keysKey, hash(key)))
}

// AuthenticateIn queues key's look-up on p, so that it can share a round
// trip with the request's other reads; the returned function, called
// after p ran, answers as Authenticate does.
func (r *Registry) AuthenticateIn(ctx context.Context, p redis.Pipeliner, key string) func() (string, error) {
	if !validKey(key) {
		return func() (string, error) { return "", ErrBadKey }
	}
	cmd := p.HGet(ctx, keysKey, hash(key))
	return func() (string, error) { return owner(cmd) }
}

func validKey(key string) bool { return strings.HasPrefix(key, KeyPrefix) && len(key) <= 128 }

func owner(cmd *redis.StringCmd) (string, error) {
	name, err := cmd.Result()
	if errors.Is(err, redis.Nil) {
		return "", ErrBadKey
	}
	if err != nil {
		return "", apperr.Wrap(apperr.StoreUnavailable, err, "the store is unavailable")
	}
	return name, nil
}
