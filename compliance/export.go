package compliance

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"piivault/audit"
	"piivault/orders"
)

// exportRef is a purchase reference as the export writes it: the fields
// of GET /v1/orders/{id}, nothing else (no blind index, no shop).
type exportRef struct {
	Type string `json:"type"`
	orders.Reference
}

type exportEntry struct {
	Type string `json:"type"`
	audit.Entry
}

// Export writes every purchase reference, then the whole audit trail, as
// JSON lines to w, for the storefront's own backups. Neither holds PII or
// ciphertext: a backup of it can be kept as long as the merchant likes.
func (r *Reports) Export(ctx context.Context, w io.Writer) (refs, entries int, err error) {
	enc := json.NewEncoder(w)
	err = r.store.EachReference(ctx, func(ref orders.Reference) error {
		refs++
		return enc.Encode(exportRef{Type: "reference", Reference: ref})
	})
	if err != nil {
		return refs, 0, fmt.Errorf("export references: %w", err)
	}
	err = r.trail.Each(ctx, time.Time{}, time.Time{}, func(e audit.Entry) error {
		entries++
		return enc.Encode(exportEntry{Type: "audit", Entry: e})
	})
	if err != nil {
		return refs, entries, fmt.Errorf("export audit trail: %w", err)
	}
	return refs, entries, nil
}
