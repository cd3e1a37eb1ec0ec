// Package audit owns the append-only, hash-chained audit trail: who
// revealed, purged, logged in, changed staff or clients, and from which IP.
// Entries never hold PII: actors are staff usernames, client names,
// `webhook:<provider>` or `system`; orders are named by id.
//
//	piivault:{audit}:log          stream  one entry per event, kept forever
//	piivault:{audit}:head         string  "<seq>:<hash>" of the newest entry
//	piivault:{audit}:ev:<event>   string  an event already in the trail (3 days): a store or purge
//	                                      recorded again from its outbox note is not written twice
//
// Each entry carries the SHA-256 of the previous entry (prev) and its own
// (hash, over every other field). Editing, deleting or reordering an entry
// breaks the chain at that point, and Verify reports the first break. Each
// hash is also sealed by Vault (a transit HMAC with a key that never leaves
// Vault), so someone who can write to Redis cannot rebuild a consistent
// chain after editing it.
//
// Cutting the newest entries (or the whole trail) leaves a consistent
// chain behind, so the head is anchored outside Redis as well: at most
// every AnchorEvery (250 ms), off the request path, the service writes the
// newest entry's seq, hash and id to Vault's KV (check-and-set, writable by
// the service identity only), and Verify holds the trail to that anchor.
// Only the entries appended since the last anchor write (at most 250 ms and
// one Vault round trip) could vanish unnoticed.
package audit

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"strconv"
	"time"

	"piivault/vault"
)

const (
	logKey  = "piivault:{audit}:log"
	headKey = "piivault:{audit}:head"
	// eventPrefix keys remember events already appended, so a store or
	// purge recorded from its outbox note after its first append was in
	// doubt (the caller gave up waiting) is not written twice.
	eventPrefix = "piivault:{audit}:ev:"
	eventMemory = 3 * 24 * time.Hour
	// genesis is the prev of the first entry.
	genesis = "0000000000000000000000000000000000000000000000000000000000000000"
)

// Actions recorded in the trail.
const (
	ActionStore           = "order.store"
	ActionReveal          = "order.reveal"
	ActionPurge           = "order.purge"
	ActionLogin           = "staff.login"
	ActionLoginFailed     = "staff.login_failed"
	ActionLogout          = "staff.logout"
	ActionStaffAdd        = "staff.add"
	ActionStaffRemove     = "staff.remove"
	ActionStaffSuspend    = "staff.suspend"
	ActionStaffUnsuspend  = "staff.unsuspend"
	ActionStaffUnlock     = "staff.unlock"
	ActionClientAdd       = "client.add"
	ActionClientRevoke    = "client.revoke"
	ActionDeletionRequest = "deletion_request"
	ActionWebhook         = "webhook"
	ActionDataRequest     = "webhook.data_request"
	ActionWebhookConflict = "webhook.conflict"
	ActionTrackingLink    = "order.tracking_link"
	ActionLabelBought     = "order.label_bought"
	ActionLabelRefunded   = "order.label_refunded"
	ActionRectify         = "order.rectified"
	ActionBlock           = "ip.block"
	ActionUnblock         = "ip.unblock"
	ActionKeyRotate       = "key.rotate"
	ActionKeyTrim         = "key.trim"
	ActionLockdown        = "lockdown"
	ActionAccessRequest   = "access_request"
	ActionExport          = "export.refs"
	// ActionAuditSegmentsDeleted records archived segments deleted after
	// PIIVAULT_AUDIT_KEEP: where the trail now legitimately begins.
	ActionAuditSegmentsDeleted = "audit.segments_deleted"
)

// Entry is one audit event.
type Entry struct {
	ID      string            `json:"id,omitempty"` // stream id, set when stored
	Seq     int64             `json:"seq"`
	Time    time.Time         `json:"time"`
	Actor   string            `json:"actor"`
	Action  string            `json:"action"`
	OrderID string            `json:"order_id,omitempty"`
	IP      string            `json:"ip,omitempty"`
	Detail  map[string]string `json:"detail,omitempty"`
	// Event identifies one event across retries (stores and purges, whose
	// record can also come from an outbox note); empty for the rest.
	Event string `json:"event,omitempty"`
	Prev  string `json:"prev"`
	Hash  string `json:"hash"`
	Seal  string `json:"seal,omitempty"` // Vault's HMAC of Hash
}

// Sealer seals entry hashes and checks seals (vault.Client).
type Sealer interface {
	Seal(ctx context.Context, inputs [][]byte) ([]vault.Result, error)
	VerifySeals(ctx context.Context, inputs [][]byte, seals []string) ([]bool, error)
}

// digest is the entry's hash over every field but ID and Hash, in a fixed
// form: lines of name=value, strings quoted as Go quotes them (%q).
// Written with strconv rather than fmt: it is computed twice per entry,
// on every request's path.
func (e Entry) digest() string {
	keys := make([]string, 0, len(e.Detail))
	for k := range e.Detail {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b := make([]byte, 0, 512)
	b = append(b, "seq="...)
	b = strconv.AppendInt(b, e.Seq, 10)
	b = append(b, "\ntime="...)
	b = e.Time.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, "\nactor="...)
	b = strconv.AppendQuote(b, e.Actor)
	b = append(b, "\naction="...)
	b = strconv.AppendQuote(b, e.Action)
	b = append(b, "\norder="...)
	b = strconv.AppendQuote(b, e.OrderID)
	b = append(b, "\nip="...)
	b = strconv.AppendQuote(b, e.IP)
	b = append(b, '\n')
	for _, k := range keys {
		b = append(b, "detail."...)
		b = strconv.AppendQuote(b, k)
		b = append(b, '=')
		b = strconv.AppendQuote(b, e.Detail[k])
		b = append(b, '\n')
	}
	if e.Event != "" {
		b = append(b, "event="...)
		b = strconv.AppendQuote(b, e.Event)
		b = append(b, '\n')
	}
	b = append(b, "prev="...)
	b = append(b, e.Prev...)
	b = append(b, '\n')
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// NewEventID returns a fresh Entry.Event.
func NewEventID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
