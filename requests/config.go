package requests

import (
	"context"
	"log/slog"
	"time"

	"github.com/gin-gonic/gin"

	"piivault/audit"
	"piivault/compliance"
	"piivault/inbound"
	"piivault/internal/keyseal"
	"piivault/mail"
	"piivault/orders"
	"piivault/purge"
	"piivault/vault"
)

// Deleter runs a customer's deletion request (*purge.Deletions): every order
// of email purged as customer_request, audited, and a receipt kept. It
// returns apperr.Validation for an address that is not one.
type Deleter interface {
	Request(ctx context.Context, actor, ip, email string) (purge.Receipt, error)
}

// History lists the order ids of an email whose retention is not over
// (*orders.Store).
type History interface {
	History(ctx context.Context, email string) ([]string, error)
}

// Reporter makes and stores a customer's access report and returns its id
// (*compliance.Reports). The stored report holds no email and no PII.
type Reporter interface {
	AccessReport(ctx context.Context, actor, ip, email string) (string, error)
}

// Mailer queues an email (*mail.Outbox). Enqueue of an id already queued is
// a no-op. A nil Mailer (or a nil *mail.Outbox) means email is off: no
// request acts without a person, as the customer would not hear of it.
type Mailer interface {
	Enqueue(ctx context.Context, m mail.Message) error
}

// Sealer seals the sender's address kept with a pending request, which the
// service opens again to run it and to mail the receipt
// (*keyseal.Sealer from piivault/internal/keyseal).
type Sealer interface {
	Seal(ctx context.Context, plaintext []byte) (string, error)
	Open(ctx context.Context, sealed string) ([]byte, error)
}

// Excerpts encrypts a pending request's excerpt (the body's first 500
// characters, PII) with Vault transit under the masked-copy key, so that a
// support member's own token decrypts it: EncryptMasked with the service
// identity (*vault.Client, *orders.Batcher), DecryptMasked with the staff
// member's token (*vault.Client), which answers apperr.Forbidden when
// Vault refuses that token and apperr.Gone when the ciphertext can no
// longer be decrypted.
type Excerpts interface {
	EncryptMasked(ctx context.Context, items []vault.Plaintext) ([]vault.Result, error)
	DecryptMasked(ctx context.Context, token, ciphertext string, associatedData []byte) ([]byte, error)
}

// Recorder appends to the audit trail.
type Recorder interface {
	Record(ctx context.Context, e audit.Entry) error
}

// SignatureWatcher is told about inbound calls with a wrong or missing
// secret (the intrusion monitor), as webhooks tell it of bad signatures.
type SignatureWatcher interface {
	BadSignature(ctx context.Context, provider string)
}

var (
	_ Deleter  = (*purge.Deletions)(nil)
	_ History  = (*orders.Store)(nil)
	_ Reporter = (*compliance.Reports)(nil)
	_ Mailer   = (*mail.Outbox)(nil)
	_ Sealer   = (*keyseal.Sealer)(nil)
	_ Excerpts = (*vault.Client)(nil)
)

// DefaultMaxBody bounds an inbound email POST: raw MIME with attachments
// (SendGrid sends them inside the raw message) is larger than API bodies.
const DefaultMaxBody = 10 << 20

// DefaultRetention is piivault's retention, and the longest a pending
// request is kept.
const DefaultRetention = 720 * time.Hour

// Config is the inbound-email configuration.
type Config struct {
	// Secret is PIIVAULT_INBOUND_SECRET, the password of the inbound routes'
	// HTTP basic auth (the user name is not checked). Empty: the inbound
	// routes answer 404.
	Secret string
	// Words decide access and correction; empty means inbound.DefaultWords.
	Words inbound.Words
	// Verifier checks DKIM; its zero value asks the system's DNS.
	Verifier inbound.Verifier
	// PublicURL is the URL customers use; an access request's email links to
	// PublicURL + "/privacy/". Empty: access requests wait for a person.
	PublicURL string
	// Address is the privacy address customers write to (PIIVAULT_INBOUND_ADDRESS);
	// when set, a request runs by itself only if a signed To: or Cc: names
	// it, so a customer's signed email to someone else, forwarded here
	// unchanged, waits for a person.
	Address string
	// Retention bounds how long a pending request is kept (default and
	// maximum PIIVAULT_RETENTION).
	Retention time.Duration
	// MaxBody bounds an inbound POST (default DefaultMaxBody).
	MaxBody int64
}

// RevealCounter counts decrypts toward a member's hourly reveal limit
// (the intrusion monitor): an excerpt is PII, so reading it is a reveal.
type RevealCounter interface {
	ReserveReveals(ctx context.Context, username string, n int) error
	ReleaseReveals(ctx context.Context, username string, n int)
}

// Lockdown says whether reveals are refused for an incident.
type Lockdown interface {
	Check(ctx context.Context) error
}

// Deps are a Service's collaborators. Mailer, Watch, Reveals and Lockdown
// may be nil.
type Deps struct {
	Reveals  RevealCounter
	Lockdown Lockdown
	Deleter  Deleter
	History  History
	Reporter Reporter
	Mailer   Mailer
	Sealer   Sealer
	Excerpts Excerpts
	Audit    Recorder
	Watch    SignatureWatcher
	Log      *slog.Logger
	Now      func() time.Time
	// Write renders an error; nil means web.WriteError with Log.
	Write func(*gin.Context, error)
}
