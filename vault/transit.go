package vault

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"sync"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
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
	batch := make([]transitItem, len(items))
	for i, it := range items {
		batch[i] = transitItem{Plaintext: it.Plaintext, AssociatedData: it.AssociatedData}
	}
	return c.batch(ctx, "encrypt/"+key, batch, func(r transitResult) string { return r.Ciphertext })
}

// HMAC computes blind-index HMACs of every input with the index key.
func (c *Client) HMAC(ctx context.Context, inputs [][]byte) ([]Result, error) {
	return c.hmac(ctx, c.indexKey, inputs)
}

// Seal computes audit seals (HMACs with the audit key) of every input.
func (c *Client) Seal(ctx context.Context, inputs [][]byte) ([]Result, error) {
	return c.hmac(ctx, c.sealKey, inputs)
}

func (c *Client) hmac(ctx context.Context, key string, inputs [][]byte) ([]Result, error) {
	batch := make([]transitItem, len(inputs))
	for i, in := range inputs {
		batch[i] = transitItem{Input: in}
	}
	return c.batch(ctx, "hmac/"+key+"/sha2-256", batch, func(r transitResult) string { return r.HMAC })
}

// transitItem is one item of a transit batch_input. Each call sets the
// fields its endpoint reads, and sends those alone. The byte fields are
// the ones transit wants in base64, which encoding/json writes []byte as,
// straight into the request (no base64 string of each first).
type transitItem struct {
	Plaintext      []byte `json:"plaintext,omitempty"`
	Ciphertext     string `json:"ciphertext,omitempty"`
	AssociatedData []byte `json:"associated_data,omitempty"`
	Input          []byte `json:"input,omitempty"`
	HMAC           string `json:"hmac,omitempty"`
}

// transitResult is one item of an answer's batch_results, or the data of
// an answer to a single item.
type transitResult struct {
	Ciphertext string `json:"ciphertext"`
	Plaintext  string `json:"plaintext"`
	HMAC       string `json:"hmac"`
	Valid      bool   `json:"valid"`
	Error      string `json:"error"`
}

// batchRequest is a transit batch call. partial_failure_response_code
// keeps the other items' results when one item fails; without it Vault
// answers 400 with only an error for all of them.
type batchRequest struct {
	Batch       []transitItem `json:"batch_input"`
	PartialCode int           `json:"partial_failure_response_code"`
}

type batchResults struct {
	Results []transitResult `json:"batch_results"`
}

// transitCall writes req to the transit path with token and decodes the
// answer's data into a T. It is vaultapi's raw write, decoded into typed
// structs rather than vaultapi's generic maps: transit calls are the
// request paths' most frequent Vault calls.
func transitCall[T any](ctx context.Context, c *Client, token, path string, req any) (T, error) {
	var data T
	body, err := json.Marshal(req)
	if err != nil {
		return data, fmt.Errorf("vault %s: %w", path, err)
	}
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	api := c.raw.WithRequestCallbacks(func(r *vaultapi.Request) {
		r.ClientToken = token
		// A redirect (a standby naming the active node) sends the body
		// again from Obj: vaultapi's raw write leaves it nil ("null").
		r.Obj = json.RawMessage(body)
	})
	resp, err := api.Logical().WriteRawWithContext(ctx, c.mount+"/"+path, body)
	if resp != nil {
		defer resp.Body.Close()
		var derr error
		if data, derr = dataOf[T](resp.Body); derr != nil && err == nil {
			err = fmt.Errorf("vault %s: unreadable answer: %w", path, derr)
		}
	}
	return data, err
}

// dataOf reads a Vault answer to its end (so that its connection is
// reused) and decodes its data. The answer is read into a buffer kept for
// the next one: transit answers are the request paths' largest reads.
//
// It is decoded by the JSON v2 implementation (go-json-experiment/json,
// encoding/json/v2 behind GOEXPERIMENT=jsonv2 in Go 1.26): a 32-item
// answer in about a quarter of encoding/json's time, which under load was a
// tenth of serve's CPU. Only Vault's own answers are read so: v2 matches
// names exactly and refuses duplicate names and invalid UTF-8, stricter
// than encoding/json, which the API's request bodies keep.
func dataOf[T any](r io.Reader) (T, error) {
	var out struct {
		Data T `json:"data"`
	}
	buf := answers.Get().(*bytes.Buffer)
	defer putAnswer(buf)
	_, err := buf.ReadFrom(r)
	if err == nil {
		err = jsonv2.Unmarshal(buf.Bytes(), &out)
	}
	return out.Data, err
}

// answers holds buffers for Vault's answers between calls.
var answers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxKeptAnswer is the largest buffer kept for reuse: a pick-list's
// answer may be far larger than a request path's, and is left to the
// collector.
const maxKeptAnswer = 64 << 10

// putAnswer wipes buf and keeps it for the next answer unless it is
// larger than maxKeptAnswer. A decrypt's answer holds an order's shipping
// block (in base64), and a pick-list's a hundred: they must not linger in
// memory until it is reused.
func putAnswer(buf *bytes.Buffer) {
	clear(buf.Bytes()[:buf.Cap()])
	if buf.Cap() > maxKeptAnswer {
		return
	}
	buf.Reset()
	answers.Put(buf)
}

// batch makes one transit batch call with the service's token and takes
// each item's value (field) or error.
func (c *Client) batch(ctx context.Context, path string, batch []transitItem, field func(transitResult) string) ([]Result, error) {
	raw, err := c.batchCall(ctx, c.api.Token(), path, batch)
	if errors.Is(err, errResultCount) {
		return nil, err
	}
	if err != nil {
		return nil, serviceErr(err, "transit "+path)
	}
	out := make([]Result, len(raw))
	for i, r := range raw {
		if r.Error != "" {
			out[i].Err = apperr.New(apperr.Invalid, "vault rejected item %d: %s", i, r.Error)
			continue
		}
		if out[i].Value = field(r); out[i].Value == "" {
			out[i].Err = fmt.Errorf("vault transit %s: item %d has no value", path, i)
		}
	}
	return out, nil
}

// errResultCount is an answer that does not hold one result per item.
var errResultCount = errors.New("vault answered a different number of results than items")

// batchCall sends batch and returns one result per item; an item's own
// error is in its result. A refused call (every item failed: Vault then
// answers 400, whatever partial_failure_response_code says) is an error.
func (c *Client) batchCall(ctx context.Context, token, path string, batch []transitItem) ([]transitResult, error) {
	data, err := transitCall[batchResults](ctx, c, token, path, batchRequest{Batch: batch, PartialCode: 200})
	if err != nil {
		return nil, err
	}
	if len(data.Results) != len(batch) {
		return nil, fmt.Errorf("vault transit %s: %d results for %d items: %w", path, len(data.Results), len(batch), errResultCount)
	}
	return data.Results, nil
}

// VerifySeals checks seals made by Seal: valid[i] says whether seals[i] is
// the audit key's HMAC of inputs[i].
func (c *Client) VerifySeals(ctx context.Context, inputs [][]byte, seals []string) ([]bool, error) {
	batch := make([]transitItem, len(inputs))
	for i, in := range inputs {
		batch[i] = transitItem{Input: in, HMAC: seals[i]}
	}
	raw, err := c.batchCall(ctx, c.api.Token(), "verify/"+c.sealKey+"/sha2-256", batch)
	if errors.Is(err, errResultCount) {
		return nil, err
	}
	if err != nil {
		return nil, serviceErr(err, "verify seals")
	}
	valid := make([]bool, len(raw))
	for i, r := range raw {
		valid[i] = r.Valid // a malformed seal comes back with an error and not valid
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
	r, err := transitCall[transitResult](ctx, c, token, "decrypt/"+key,
		transitItem{Ciphertext: ciphertext, AssociatedData: associatedData})
	if err != nil {
		var re *vaultapi.ResponseError
		if errors.As(err, &re) && re.StatusCode == 400 {
			return nil, apperr.Wrap(apperr.Gone, err, "the shipping data can no longer be decrypted")
		}
		return nil, translate(err, "transit decrypt")
	}
	out, err := base64.StdEncoding.DecodeString(r.Plaintext)
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
	batch := make([]transitItem, len(items))
	for i, it := range items {
		batch[i] = transitItem{Ciphertext: it.Ciphertext, AssociatedData: it.AssociatedData}
	}
	raw, err := c.batchCall(ctx, token, "decrypt/"+c.key, batch)
	if errors.Is(err, errResultCount) {
		return nil, err
	}
	if err != nil {
		return nil, translate(err, "transit decrypt")
	}
	out := make([]Result, len(raw))
	for i, r := range raw {
		if r.Error != "" {
			out[i].Err = apperr.New(apperr.Gone, "the shipping data can no longer be decrypted")
			continue
		}
		plain, err := base64.StdEncoding.DecodeString(r.Plaintext)
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
