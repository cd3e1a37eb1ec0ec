package vault

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"piivault/internal/apperr"
)

// Plaintext is one item to encrypt. AssociatedData binds the ciphertext to
// its context (the order id): decryption must present the same bytes.
type Plaintext struct {
	Plaintext      []byte
	AssociatedData []byte
}

// Result is the outcome of one item of a batch.
type Result struct {
	Value string
	Err   error
}

// Encrypt encrypts every item in one transit call (batch_input) with the
// encryption key. The outer error is for the call as a whole; each Result
// carries its item's error.
func (c *Client) Encrypt(ctx context.Context, items []Plaintext) ([]Result, error) {
	return c.encrypt(ctx, c.key, items)
}

// EncryptMasked encrypts with the masked-copy key (support's view).
func (c *Client) EncryptMasked(ctx context.Context, items []Plaintext) ([]Result, error) {
	return c.encrypt(ctx, MaskedKeyName(c.key), items)
}

func (c *Client) encrypt(ctx context.Context, key string, items []Plaintext) ([]Result, error) {
	batch := make([]map[string]any, len(items))
	for i, it := range items {
		batch[i] = map[string]any{"plaintext": b64(it.Plaintext), "associated_data": b64(it.AssociatedData)}
	}
	return c.batch(ctx, "encrypt/"+key, batch, "ciphertext")
}

// HMAC computes blind-index HMACs of every input with the index key.
func (c *Client) HMAC(ctx context.Context, inputs [][]byte) ([]Result, error) {
	batch := make([]map[string]any, len(inputs))
	for i, in := range inputs {
		batch[i] = map[string]any{"input": b64(in)}
	}
	return c.batch(ctx, "hmac/"+c.indexKey+"/sha2-256", batch, "hmac")
}

func (c *Client) batch(ctx context.Context, path string, batch []map[string]any, field string) ([]Result, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	// partial_failure_response_code keeps the other items' results when one
	// item fails; without it vaultapi returns only an error for all of them.
	s, err := c.api.Logical().WriteWithContext(ctx, c.mount+"/"+path, map[string]any{
		"batch_input": batch, "partial_failure_response_code": 200,
	})
	if err != nil && (s == nil || s.Data["batch_results"] == nil) {
		return nil, serviceErr(err, "transit "+path)
	}
	if s == nil {
		return nil, apperr.New(apperr.VaultUnavailable, "vault returned no batch results")
	}
	raw, _ := s.Data["batch_results"].([]any)
	if len(raw) != len(batch) {
		return nil, fmt.Errorf("vault transit %s: %d results for %d items", path, len(raw), len(batch))
	}
	out := make([]Result, len(raw))
	for i, r := range raw {
		m, _ := r.(map[string]any)
		if msg, _ := m["error"].(string); msg != "" {
			out[i].Err = apperr.New(apperr.Invalid, "vault rejected item %d: %s", i, msg)
			continue
		}
		v, _ := m[field].(string)
		if v == "" {
			out[i].Err = fmt.Errorf("vault transit %s: item %d has no %s", path, i, field)
			continue
		}
		out[i].Value = v
	}
	return out, nil
}

// Seal computes audit seals (HMACs with the audit key) of every input.
func (c *Client) Seal(ctx context.Context, inputs [][]byte) ([]Result, error) {
	batch := make([]map[string]any, len(inputs))
	for i, in := range inputs {
		batch[i] = map[string]any{"input": b64(in)}
	}
	return c.batch(ctx, "hmac/"+c.sealKey+"/sha2-256", batch, "hmac")
}

// VerifySeals checks seals made by Seal: valid[i] says whether seals[i] is
// the audit key's HMAC of inputs[i].
func (c *Client) VerifySeals(ctx context.Context, inputs [][]byte, seals []string) ([]bool, error) {
	batch := make([]map[string]any, len(inputs))
	for i, in := range inputs {
		batch[i] = map[string]any{"input": b64(in), "hmac": seals[i]}
	}
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	s, err := c.api.Logical().WriteWithContext(ctx, c.mount+"/verify/"+c.sealKey+"/sha2-256", map[string]any{
		"batch_input": batch, "partial_failure_response_code": 200,
	})
	if err != nil && (s == nil || s.Data["batch_results"] == nil) {
		return nil, serviceErr(err, "verify seals")
	}
	if s == nil {
		return nil, apperr.New(apperr.VaultUnavailable, "vault returned no verification results")
	}
	raw, _ := s.Data["batch_results"].([]any)
	if len(raw) != len(inputs) {
		return nil, fmt.Errorf("vault verify: %d results for %d seals", len(raw), len(inputs))
	}
	valid := make([]bool, len(raw))
	for i, r := range raw {
		m, _ := r.(map[string]any)
		valid[i], _ = m["valid"].(bool) // a malformed seal comes back with an error and no "valid"
	}
	return valid, nil
}

// Decrypt decrypts one ciphertext with the caller's own Vault token, so that
// Vault checks the caller's policy and its audit log names the caller. A
// ciphertext that cannot be decrypted any more (trimmed key version, wrong
// associated data) is Gone; a token without the decrypt policy is Forbidden.
func (c *Client) Decrypt(ctx context.Context, token, ciphertext string, associatedData []byte) ([]byte, error) {
	return c.decrypt(ctx, c.key, token, ciphertext, associatedData)
}

// DecryptMasked decrypts a masked copy with the caller's own token.
func (c *Client) DecryptMasked(ctx context.Context, token, ciphertext string, associatedData []byte) ([]byte, error) {
	return c.decrypt(ctx, MaskedKeyName(c.key), token, ciphertext, associatedData)
}

func (c *Client) decrypt(ctx context.Context, key, token, ciphertext string, associatedData []byte) ([]byte, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	as := c.api.WithRequestCallbacks(func(r *vaultapi.Request) { r.ClientToken = token })
	s, err := as.Logical().WriteWithContext(ctx, c.mount+"/decrypt/"+key, map[string]any{
		"ciphertext": ciphertext, "associated_data": b64(associatedData),
	})
	if err != nil {
		var re *vaultapi.ResponseError
		if errors.As(err, &re) && re.StatusCode == 400 {
			return nil, apperr.Wrap(apperr.Gone, err, "the shipping data can no longer be decrypted")
		}
		return nil, translate(err, "transit decrypt")
	}
	if s == nil {
		return nil, apperr.New(apperr.VaultUnavailable, "vault returned no plaintext")
	}
	p, _ := s.Data["plaintext"].(string)
	out, err := base64.StdEncoding.DecodeString(p)
	if err != nil {
		return nil, fmt.Errorf("vault decrypt: plaintext is not base64: %w", err)
	}
	return out, nil
}

// Ciphertext is one item to decrypt, with the associated data it was bound to.
type Ciphertext struct {
	Ciphertext     string
	AssociatedData []byte
}

// DecryptBatch decrypts every item in one transit call with the caller's
// own token (batch_input), so a pick-list of labels is one Vault request,
// checked against the caller's policy and named in Vault's audit log.
// Items that cannot be decrypted any more carry Gone; the call as a whole
// fails with Forbidden for a token without decrypt.
func (c *Client) DecryptBatch(ctx context.Context, token string, items []Ciphertext) ([]Result, error) {
	batch := make([]map[string]any, len(items))
	for i, it := range items {
		batch[i] = map[string]any{"ciphertext": it.Ciphertext, "associated_data": b64(it.AssociatedData)}
	}
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	as := c.api.WithRequestCallbacks(func(r *vaultapi.Request) { r.ClientToken = token })
	s, err := as.Logical().WriteWithContext(ctx, c.mount+"/decrypt/"+c.key, map[string]any{
		"batch_input": batch, "partial_failure_response_code": 200,
	})
	if err != nil && (s == nil || s.Data["batch_results"] == nil) {
		return nil, translate(err, "transit decrypt")
	}
	if s == nil {
		return nil, apperr.New(apperr.VaultUnavailable, "vault returned no batch results")
	}
	raw, _ := s.Data["batch_results"].([]any)
	if len(raw) != len(items) {
		return nil, fmt.Errorf("vault decrypt: %d results for %d items", len(raw), len(items))
	}
	out := make([]Result, len(raw))
	for i, r := range raw {
		m, _ := r.(map[string]any)
		if msg, _ := m["error"].(string); msg != "" {
			out[i].Err = apperr.New(apperr.Gone, "the shipping data can no longer be decrypted")
			continue
		}
		p, _ := m["plaintext"].(string)
		plain, err := base64.StdEncoding.DecodeString(p)
		if err != nil {
			out[i].Err = fmt.Errorf("vault decrypt: plaintext is not base64: %w", err)
			continue
		}
		out[i].Value = string(plain)
	}
	return out, nil
}

// KeyInfo describes the versions of the transit encryption key.
type KeyInfo struct {
	LatestVersion        int
	MinDecryptionVersion int
	MinAvailableVersion  int
	// Created maps each live version to its creation time.
	Created map[int]time.Time
}

// Versions returns the live versions in ascending order.
func (k KeyInfo) Versions() []int {
	vs := make([]int, 0, len(k.Created))
	for v := range k.Created {
		vs = append(vs, v)
	}
	sort.Ints(vs)
	return vs
}

// TransitKey is one rotated and shredded transit key: the encryption key
// or the masked-copy key. Each is rotated and trimmed on its own.
type TransitKey struct {
	c    *Client
	name string
}

// Key is the encryption key of full shipping blocks.
func (c *Client) Key() *TransitKey { return &TransitKey{c: c, name: c.key} }

// MaskedKey is the key of the masked copies.
func (c *Client) MaskedKey() *TransitKey { return &TransitKey{c: c, name: MaskedKeyName(c.key)} }

// Name is the transit key's name.
func (k *TransitKey) Name() string { return k.name }

// ReadKey reads the key's version metadata (no key material).
func (k *TransitKey) ReadKey(ctx context.Context) (KeyInfo, error) {
	c := k.c
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	s, err := c.api.Logical().ReadWithContext(ctx, c.mount+"/keys/"+k.name)
	if err != nil {
		return KeyInfo{}, serviceErr(err, "read key")
	}
	if s == nil {
		return KeyInfo{}, apperr.New(apperr.VaultUnavailable, "transit key %q is missing", k.name)
	}
	return parseKeyInfo(s.Data)
}

func parseKeyInfo(d map[string]any) (KeyInfo, error) {
	k := KeyInfo{
		LatestVersion:        toInt(d["latest_version"]),
		MinDecryptionVersion: toInt(d["min_decryption_version"]),
		MinAvailableVersion:  toInt(d["min_available_version"]),
		Created:              map[int]time.Time{},
	}
	keys, _ := d["keys"].(map[string]any)
	for ver, v := range keys {
		n, err := strconv.Atoi(ver)
		if err != nil {
			return KeyInfo{}, fmt.Errorf("transit key version %q: %w", ver, err)
		}
		// Symmetric keys report creation as unix seconds (json.Number);
		// asymmetric ones as an object with creation_time.
		switch t := v.(type) {
		case map[string]any:
			ts, _ := t["creation_time"].(string)
			at, err := time.Parse(time.RFC3339Nano, ts)
			if err != nil {
				return KeyInfo{}, fmt.Errorf("transit key version %d creation time: %w", n, err)
			}
			k.Created[n] = at
		default:
			k.Created[n] = time.Unix(int64(toInt(t)), 0)
		}
	}
	return k, nil
}

func toInt(v any) int {
	switch n := v.(type) {
	case int:
		return n
	case int64:
		return int(n)
	case float64:
		return int(n)
	case interface{ Int64() (int64, error) }:
		i, _ := n.Int64()
		return int(i)
	case string:
		i, _ := strconv.Atoi(n)
		return i
	}
	return 0
}

// RotateKey adds a new version of the key.
func (k *TransitKey) RotateKey(ctx context.Context) error {
	c := k.c
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	_, err := c.api.Logical().WriteWithContext(ctx, c.mount+"/keys/"+k.name+"/rotate", nil)
	return serviceErr(err, "rotate key")
}

// RetireVersionsBelow makes versions below v undecryptable and then deletes
// their key material for good (min_decryption_version, then trim). Vault
// trims only with min_encryption_version set; setting it to v changes
// nothing for callers, who always encrypt with the latest version.
func (k *TransitKey) RetireVersionsBelow(ctx context.Context, v int) error {
	c := k.c
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	if _, err := c.api.Logical().WriteWithContext(ctx, c.mount+"/keys/"+k.name+"/config",
		map[string]any{"min_decryption_version": v, "min_encryption_version": v}); err != nil {
		return serviceErr(err, "set min_decryption_version")
	}
	if _, err := c.api.Logical().WriteWithContext(ctx, c.mount+"/keys/"+k.name+"/trim",
		map[string]any{"min_available_version": v}); err != nil {
		return serviceErr(err, "trim key")
	}
	return nil
}
