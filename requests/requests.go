package requests

import (
	"context"
	"log/slog"
	"reflect"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"

	"piivault/audit"
	"piivault/inbound"
	"piivault/internal/apperr"
	"piivault/internal/web"
)

// Audit actions of this package. Entries name the actor and request ids,
// never the sender's address, the subject or the body.
const (
	ActionInbound      = "inbound.request"       // an email request arrived (actor customer:email)
	ActionConfirmed    = "inbound.confirmed"     // a person ran a pending request
	ActionRejected     = "inbound.rejected"      // a person closed a pending request unexecuted
	ActionExcerptsRead = "inbound.excerpts_read" // a person read pending requests' excerpts
)

// ActorCustomer is the audit actor of what a customer's email does by itself.
const ActorCustomer = "customer:email"

// Providers, as the audit trail and metrics name them.
const (
	ProviderPostmark = "postmark"
	ProviderSendGrid = "sendgrid"
)

// Outcomes of an inbound request.
const (
	OutcomeDeleted    = "deleted"          // deletion run, receipt queued
	OutcomeAccessSent = "access_link_sent" // access report made, link to /privacy/ queued
	OutcomePending    = "pending"          // waits for a person
	OutcomeDuplicate  = "duplicate"        // this message was handled before: nothing done
)

// Reasons a request waits for a person.
const (
	ReasonUnauthenticated = "unauthenticated" // no passing DKIM signature aligned with From:
	ReasonCorrection      = "correction"      // a new address cannot be read from an email safely
	ReasonNoOrders        = "no_orders"       // the address has no orders (or is not one piivault could hold)
	ReasonEmailOff        = "email_off"       // email (or PIIVAULT_PUBLIC_URL) is not configured: the customer would not hear back
	ReasonStale           = "stale"           // no signed Date: within the last week, or not sent to the privacy address: perhaps an old or forwarded email
	ReasonAutomatic       = "automatic"       // an auto-reply or bulk mail (Auto-Submitted, Precedence), not a person asking
)

// ExcerptChars is how much of a body a pending request keeps, for a person
// to read.
const ExcerptChars = 500

// Service receives inbound email requests and keeps the pending ones.
type Service struct {
	rdb      redis.UniversalClient
	cfg      Config
	deleter  Deleter
	history  History
	reporter Reporter
	mailer   Mailer
	sealer   Sealer
	excerpts Excerpts
	trail    Recorder
	watch    SignatureWatcher
	reveals  RevealCounter
	lockdown Lockdown
	log      *slog.Logger
	now      func() time.Time
	write    func(*gin.Context, error)
}

// New builds a Service. Zero values of cfg take the documented defaults;
// a Retention above DefaultRetention is cut to it.
func New(rdb redis.UniversalClient, cfg Config, d Deps) *Service {
	if len(cfg.Words.Access) == 0 && len(cfg.Words.Correction) == 0 {
		cfg.Words = inbound.DefaultWords()
	}
	if cfg.Retention <= 0 || cfg.Retention > DefaultRetention {
		cfg.Retention = DefaultRetention
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	s := &Service{rdb: rdb, cfg: cfg, deleter: d.Deleter, history: d.History, reporter: d.Reporter,
		mailer: d.Mailer, sealer: d.Sealer, excerpts: d.Excerpts, trail: d.Audit, watch: d.Watch,
		reveals: d.Reveals, lockdown: d.Lockdown, log: d.Log, now: d.Now, write: d.Write}
	if isNil(s.mailer) {
		s.mailer = nil // a nil *mail.Outbox in the interface: email is off
	}
	if isNil(s.watch) {
		s.watch = nil
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.write == nil {
		s.write = func(c *gin.Context, err error) { web.WriteError(c, s.log, err) }
	}
	return s
}

// isNil reports whether v is nil or a nil pointer inside an interface.
func isNil(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	return rv.Kind() == reflect.Pointer && rv.IsNil()
}

// Enabled reports whether the inbound routes exist (a secret is set).
func (s *Service) Enabled() bool { return s.cfg.Secret != "" }

// RegisterInbound registers the two inbound routes, which carry their own
// authentication (basic auth with the inbound secret). The staff routes
// (Pending, Confirm, Reject) are registered with the staff middleware by
// the caller.
func (s *Service) RegisterInbound(r gin.IRouter) {
	r.POST("/v1/inbound/postmark", s.Postmark)
	r.POST("/v1/inbound/sendgrid", s.SendGrid)
}

// record appends one entry to the audit trail.
func (s *Service) record(ctx context.Context, actor, action, ip string, detail map[string]string) error {
	return s.trail.Record(ctx, audit.Entry{Time: s.now().UTC(), Actor: actor, Action: action, IP: ip,
		Event: audit.NewEventID(), Detail: detail})
}

// staffOnly refuses callers who may not review requests: support and admin
// only (the routes check it too; the console calls the methods directly).
func staffOnly(p web.Principal) error {
	if p.Kind != web.KindStaff || (p.Role != web.RoleSupport && p.Role != web.RoleAdmin) {
		return apperr.New(apperr.Forbidden, "only support and admin review emailed requests")
	}
	return nil
}
