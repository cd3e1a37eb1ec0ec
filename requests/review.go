package requests

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"piivault/inbound"
	"piivault/internal/apperr"
	"piivault/internal/web"
	"piivault/purge"
)

// Pending is a request waiting for a person, as support sees it. Excerpt is
// PII (the body's first 500 characters), decrypted with the viewer's own
// Vault token for this answer only: String and LogValue leave it out.
type Pending struct {
	ID     string       `json:"id"`
	Sender string       `json:"sender"` // masked, e.g. ****@example.com
	DKIM   string       `json:"dkim"`   // pass, fail or none
	Kind   inbound.Kind `json:"kind"`   // deletion, access or correction
	// Reason says why it waits: unauthenticated, correction, no_orders or email_off.
	Reason     string    `json:"reason"`
	Provider   string    `json:"provider"`
	ReceivedAt time.Time `json:"received_at"`
	ExpiresAt  time.Time `json:"expires_at"` // deleted unanswered then
	Excerpt    string    `json:"excerpt"`
	// ExcerptWithheld: Vault did not decrypt the excerpt for this viewer
	// (their token lacks the policy, Vault is unavailable, or the key
	// version was retired); Excerpt is then "".
	ExcerptWithheld bool   `json:"excerpt_withheld,omitempty"`
	Status          string `json:"status"` // pending, or processing while someone confirms or rejects it
}

func (p Pending) String() string {
	return "requests.Pending{ID: " + strconv.Quote(p.ID) + ", [REDACTED]}"
}
func (p Pending) GoString() string { return p.String() }
func (p Pending) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", p.ID), slog.String("kind", string(p.Kind)), slog.String("reason", p.Reason))
}

// Outcome answers a confirmed request.
type Outcome struct {
	ID      string       `json:"id"`
	Kind    inbound.Kind `json:"kind"`
	Outcome string       `json:"outcome"` // deleted or access_report_created
	// Receipt is the deletion's receipt (order ids and time, no address).
	Receipt *purge.Receipt `json:"receipt,omitempty"`
	// ReportID is the access report's id (GET /v1/access-requests/{id}).
	ReportID string `json:"report_id,omitempty"`
	// Mailed: the customer's receipt or link was queued; false when email
	// is off, so support tells the customer another way.
	Mailed bool `json:"mailed"`
}

// Outcomes of a confirmed request.
const (
	OutcomeAccessReport = "access_report_created"
)

var errCorrection = &apperr.Error{Code: apperr.Validation, Fields: []string{"kind"}, Message: "a correction is not run " +
	"from an email: correct the order's address with its \"correct address\" form (PUT /v1/orders/{id}/shipping), " +
	"then reject this request to close it"}

// List returns the pending requests, oldest first (at most MaxList), each
// excerpt decrypted with p's own Vault token, so Vault decides and its
// audit device names the reader. A token Vault refuses leaves Excerpt ""
// and ExcerptWithheld set. The read is audited (inbound.excerpts_read)
// before anything is returned. Forbidden for anyone but support and admin.
func (s *Service) List(ctx context.Context, p web.Principal) ([]Pending, error) {
	if err := staffOnly(p); err != nil {
		return nil, err
	}
	ids, err := s.pendingIDs(ctx)
	if err != nil {
		return nil, err
	}
	recs, err := s.loadAll(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]Pending, 0, len(recs))
	var read []string
	refused := false // once Vault refuses the token (or is down), the rest is not tried
	// Each excerpt is PII: reading it is a reveal, refused in a lockdown
	// and counted toward the member's hourly limit (a list that would
	// cross it is refused whole, like a pick-list).
	want := 0
	for _, r := range recs {
		if r.Excerpt != "" {
			want++
		}
	}
	if want > 0 && s.lockdown != nil && s.lockdown.Check(ctx) != nil {
		refused = true
	}
	if want > 0 && !refused && s.reveals != nil {
		if err := s.reveals.ReserveReveals(ctx, p.Name, want); err != nil {
			return nil, err
		}
		defer func() { s.reveals.ReleaseReveals(ctx, p.Name, want-len(read)) }()
	}
	for _, r := range recs {
		item := Pending{ID: r.ID, Sender: r.Masked, DKIM: r.DKIM, Kind: r.Kind, Reason: r.Reason, Provider: r.Provider,
			ReceivedAt: r.ReceivedAt, ExpiresAt: r.ReceivedAt.Add(s.cfg.Retention), Status: r.Status}
		if r.Excerpt != "" {
			if refused {
				item.ExcerptWithheld = true
			} else {
				plain, err := s.excerpts.DecryptMasked(ctx, p.Token.Reveal(), r.Excerpt, []byte(r.ID))
				switch {
				case err == nil:
					item.Excerpt = string(plain)
					read = append(read, r.ID)
				case apperr.Is(err, apperr.Gone):
					item.ExcerptWithheld = true
				default:
					item.ExcerptWithheld, refused = true, true
					if c := apperr.CodeOf(err); c != apperr.Forbidden && c != apperr.Unauthorized {
						s.log.Warn("pending request excerpts not decrypted", "code", string(c), "err", err)
					}
				}
			}
		}
		out = append(out, item)
	}
	if len(read) > 0 {
		if err := s.record(ctx, p.Actor(), ActionExcerptsRead, "", map[string]string{
			"requests": strings.Join(read, ","), "count": strconv.Itoa(len(read))}); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ConfirmRequest runs a pending request on p's behalf and deletes it: a
// deletion through the Deleter (actor p) with the receipt mailed to the
// sender, an access request's report with the link mailed. A correction is
// Validation (support corrects the order's address and rejects the
// request). Errors: NotFound, Conflict while someone else handles it,
// Forbidden for anyone but support and admin, and the Deleter's or
// Reporter's own; on any error the request stays pending.
func (s *Service) ConfirmRequest(ctx context.Context, p web.Principal, ip, id string) (Outcome, error) {
	if err := staffOnly(p); err != nil {
		return Outcome{}, err
	}
	r, err := s.load(ctx, id)
	if err != nil {
		return Outcome{}, err
	}
	if r.Kind != inbound.Deletion && r.Kind != inbound.Access {
		return Outcome{}, errCorrection
	}
	if err := s.claim(ctx, id); err != nil {
		return Outcome{}, err
	}
	// Purges cannot be undone half-way: what starts here finishes even if
	// the caller goes away.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), claimLease/2)
	defer cancel()
	sender, err := s.sealer.Open(ctx, r.Sender)
	if err != nil {
		s.release(ctx, id)
		return Outcome{}, fmt.Errorf("requests: open the sender of %s: %w", id, err)
	}
	email := string(sender)
	o := Outcome{ID: id, Kind: r.Kind}
	detail := map[string]string{"channel": "email", "request_id": id, "kind": string(r.Kind), "dkim": r.DKIM, "reason": r.Reason}
	switch r.Kind {
	case inbound.Deletion:
		receipt, mailed, err := s.runDeletion(ctx, p.Actor(), ip, email)
		if err != nil {
			s.release(ctx, id)
			return Outcome{}, err
		}
		o.Outcome, o.Receipt, o.Mailed = OutcomeDeleted, &receipt, mailed
		detail["deletion_request"] = receipt.RequestID
	case inbound.Access:
		reportID, mailed, err := s.runAccess(ctx, p.Actor(), ip, email)
		if err != nil {
			s.release(ctx, id)
			return Outcome{}, err
		}
		o.Outcome, o.ReportID, o.Mailed = OutcomeAccessReport, reportID, mailed
		if mailed {
			o.Outcome = OutcomeAccessSent
		}
		detail["report_id"] = reportID
	}
	detail["outcome"], detail["mailed"] = o.Outcome, yesNo(o.Mailed)
	// The deletion or report carries its own entry naming p; this one links
	// it to the email request.
	if err := s.record(ctx, p.Actor(), ActionConfirmed, ip, detail); err != nil {
		s.log.Error("pending request confirmed but its audit entry failed", "request_id", id, "err", err)
	}
	if err := s.remove(ctx, id); err != nil {
		s.log.Error("confirmed request not removed; it expires with the retention", "request_id", id, "err", err)
	}
	reviewed.WithLabelValues("confirmed", string(r.Kind)).Inc()
	s.log.Info("pending request confirmed", "request_id", id, "kind", string(r.Kind), "outcome", o.Outcome)
	return o, nil
}

// RejectRequest closes a pending request without running it, audited
// (inbound.rejected), and deletes it. Errors as ConfirmRequest's.
func (s *Service) RejectRequest(ctx context.Context, p web.Principal, ip, id string) error {
	if err := staffOnly(p); err != nil {
		return err
	}
	r, err := s.load(ctx, id)
	if err != nil {
		return err
	}
	if err := s.claim(ctx, id); err != nil {
		return err
	}
	if err := s.record(ctx, p.Actor(), ActionRejected, ip, map[string]string{"channel": "email", "request_id": id,
		"kind": string(r.Kind), "dkim": r.DKIM, "reason": r.Reason}); err != nil {
		s.release(ctx, id)
		return err
	}
	if err := s.remove(ctx, id); err != nil {
		// Audited as rejected, and claimed for claimLease; after that it is
		// listed again until it expires.
		s.log.Error("rejected request not removed", "request_id", id, "err", err)
	}
	reviewed.WithLabelValues("rejected", string(r.Kind)).Inc()
	s.log.Info("pending request rejected", "request_id", id, "kind", string(r.Kind))
	return nil
}

// Pending handles GET /v1/deletion-requests?status=pending (support, admin):
// {"requests":[Pending…]}, excerpts decrypted with the caller's token.
func (s *Service) Pending(c *gin.Context) {
	if st := c.Query("status"); st != statusPending {
		s.write(c, &apperr.Error{Code: apperr.Validation, Fields: []string{"status"},
			Message: "invalid fields: status (only status=pending is listed)"})
		return
	}
	p, ok := web.PrincipalOf(c)
	if !ok {
		s.write(c, errUnauthorized)
		return
	}
	list, err := s.List(c.Request.Context(), p)
	if err != nil {
		s.write(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"requests": list})
}

// Confirm handles POST /v1/deletion-requests/:id/confirm (support, admin).
func (s *Service) Confirm(c *gin.Context) {
	p, ok := web.PrincipalOf(c)
	if !ok {
		s.write(c, errUnauthorized)
		return
	}
	o, err := s.ConfirmRequest(c.Request.Context(), p, c.ClientIP(), c.Param("id"))
	if err != nil {
		s.write(c, err)
		return
	}
	c.JSON(http.StatusOK, o)
}

// Reject handles POST /v1/deletion-requests/:id/reject (support, admin):
// {"id","status":"rejected"}.
func (s *Service) Reject(c *gin.Context) {
	p, ok := web.PrincipalOf(c)
	if !ok {
		s.write(c, errUnauthorized)
		return
	}
	id := c.Param("id")
	if err := s.RejectRequest(c.Request.Context(), p, c.ClientIP(), id); err != nil {
		s.write(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"id": id, "status": "rejected"})
}
