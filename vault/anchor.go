package vault

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	vaultapi "github.com/hashicorp/vault/api"

	"piivault/internal/apperr"
)

// Anchor is the audit trail's newest entry as last recorded in Vault: its
// sequence number, hash and Redis stream id. It lives in KV v2 (AnchorMount),
// written check-and-set by the service identity only, so a Redis writer can
// neither move it back nor forge it.
type Anchor struct {
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"`
	ID   string `json:"id"`
}

// ErrAnchorMoved is WriteAnchor's answer when another writer got there first.
var ErrAnchorMoved = apperr.New(apperr.Conflict, "the audit anchor was moved by another writer")

// ReadAnchor returns the anchor and its KV version (0, with a zero Anchor,
// when none was written yet).
func (c *Client) ReadAnchor(ctx context.Context) (Anchor, int, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	s, err := c.api.Logical().ReadWithContext(ctx, AnchorMount+"/data/"+AnchorPath)
	if err != nil {
		return Anchor{}, 0, serviceErr(err, "read audit anchor")
	}
	if s == nil || s.Data["data"] == nil {
		return Anchor{}, 0, nil
	}
	data, _ := s.Data["data"].(map[string]any)
	meta, _ := s.Data["metadata"].(map[string]any)
	a := Anchor{ID: str(data["id"]), Hash: str(data["hash"])}
	a.Seq, _ = strconv.ParseInt(str(data["seq"]), 10, 64)
	return a, toInt(meta["version"]), nil
}

// WriteAnchor writes a over KV version cas (0: only if none exists yet).
// ErrAnchorMoved when the version is no longer cas.
func (c *Client) WriteAnchor(ctx context.Context, a Anchor, cas int) error {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	_, err := c.api.Logical().WriteWithContext(ctx, AnchorMount+"/data/"+AnchorPath, map[string]any{
		"options": map[string]any{"cas": cas},
		"data":    map[string]any{"seq": strconv.FormatInt(a.Seq, 10), "hash": a.Hash, "id": a.ID},
	})
	var re *vaultapi.ResponseError
	if errors.As(err, &re) && re.StatusCode == http.StatusBadRequest && hasAny(re.Error(), "check-and-set") {
		return ErrAnchorMoved
	}
	return serviceErr(err, "write audit anchor")
}

func str(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case json.Number:
		return t.String()
	}
	return ""
}

// ResetAuditAnchor deletes the audit anchor with every version of it (the
// operator's token only): tests start each trail afresh with it, and an
// operator re-anchors with it after recording a trail's known loss.
func (o *Operator) ResetAuditAnchor(ctx context.Context) error {
	_, err := o.api.Logical().DeleteWithContext(ctx, AnchorMount+"/metadata/"+AnchorPath)
	if err != nil && !isNotFoundErr(err) {
		return translate(err, "delete audit anchor")
	}
	return nil
}

// consoleKeyPath holds the key that seals console session cookies, shared
// by every instance; only the service identity reads or writes it.
const consoleKeyPath = "console/key"

// ConsoleKey returns the 32-byte key that seals console cookies, making it
// on first use (check-and-set, so concurrent instances agree on one).
func (c *Client) ConsoleKey(ctx context.Context) ([]byte, error) {
	for attempt := 0; attempt < 3; attempt++ {
		rctx, cancel := c.ctx(ctx)
		s, err := c.api.Logical().ReadWithContext(rctx, AnchorMount+"/data/"+consoleKeyPath)
		cancel()
		if err != nil {
			return nil, serviceErr(err, "read console key")
		}
		if s != nil && s.Data["data"] != nil {
			data, _ := s.Data["data"].(map[string]any)
			key, err := base64.StdEncoding.DecodeString(str(data["key"]))
			if err != nil || len(key) != 32 {
				return nil, fmt.Errorf("console key in vault is malformed")
			}
			return key, nil
		}
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		wctx, cancel := c.ctx(ctx)
		_, err = c.api.Logical().WriteWithContext(wctx, AnchorMount+"/data/"+consoleKeyPath, map[string]any{
			"options": map[string]any{"cas": 0}, "data": map[string]any{"key": b64(key)},
		})
		cancel()
		var re *vaultapi.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusBadRequest {
			continue // another instance made it first: read theirs
		}
		if err != nil {
			return nil, serviceErr(err, "write console key")
		}
		return key, nil
	}
	return nil, fmt.Errorf("console key: could not agree with other instances")
}
