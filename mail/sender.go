package mail

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	netmail "net/mail"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// ErrInvalid is a message that can never be sent as it is (no id, a
// recipient that is not an address); sending it again will not help.
var ErrInvalid = errors.New("mail: invalid message")

// Message is one plain-text email. ID names it: the outbox's dedupe key and,
// hashed, its Message-ID, so a retried send carries the same Message-ID and
// the recipient's mail client can fold the copies into one. String and
// LogValue show the ID only.
type Message struct {
	To      string
	Subject string
	Text    string
	ID      string
}

func (m Message) String() string       { return "mail.Message{ID: " + strconv.Quote(m.ID) + ", [REDACTED]}" }
func (m Message) GoString() string     { return m.String() }
func (m Message) LogValue() slog.Value { return slog.GroupValue(slog.String("id", m.ID)) }

// DeliveryError is the relay refusing a message. Its text names the SMTP step
// and the reply codes but not the relay's reply text, which often quotes the
// recipient's address (go-mail's own SendError lists the recipients), so it
// may be logged.
type DeliveryError struct {
	Step      string // such as "sending SMTP RCPT TO command"
	Code      int    // SMTP reply code, 0 if none
	Status    string // enhanced status code such as "5.1.1", "" if none
	Temporary bool
}

func (e *DeliveryError) Error() string {
	kind := "permanent"
	if e.Temporary {
		kind = "temporary"
	}
	return fmt.Sprintf("mail: relay refused (%s) %s: code %d %s", kind, e.Step, e.Code, e.Status)
}

const (
	headerAutoSubmitted = gomail.Header("Auto-Submitted")
	smtpTimeout         = 30 * time.Second
)

// Sender sends one message per SMTP connection: receipts are few, and a fresh
// connection has no state to go stale between them.
type Sender struct {
	cfg    Config
	domain string // of the From address, for Message-IDs
}

// NewSender sends through the relay cfg names. A Plain cfg for a host that
// is not loopback gets mandatory STARTTLS.
func NewSender(cfg Config) *Sender {
	domain := "localhost"
	if a, err := netmail.ParseAddress(cfg.From); err == nil {
		if i := strings.LastIndexByte(a.Address, '@'); i >= 0 {
			domain = a.Address[i+1:]
		}
	}
	return &Sender{cfg: cfg, domain: domain}
}

// Send delivers m as plain text with an "Auto-Submitted: auto-generated"
// header, so that out-of-office replies stay away. Its errors never hold the
// recipient, subject or body: a refusal is a *DeliveryError, a message that
// cannot be built is ErrInvalid, anything else (dial, TLS, auth) is wrapped
// as it comes.
func (s *Sender) Send(ctx context.Context, m Message) error {
	msg, err := s.build(m)
	if err != nil {
		return err
	}
	client, err := gomail.NewClient(s.cfg.Host, s.options()...)
	if err != nil {
		return fmt.Errorf("mail: smtp client: %w", err)
	}
	if err := client.DialAndSendWithContext(ctx, msg); err != nil {
		var se *gomail.SendError
		if errors.As(err, &se) {
			return &DeliveryError{Step: se.Reason.String(), Code: se.ErrorCode(), Status: se.EnhancedStatusCode(), Temporary: se.IsTemp()}
		}
		return fmt.Errorf("mail: smtp %s: %w", s.cfg.Host, err)
	}
	return nil
}

func (s *Sender) build(m Message) (*gomail.Msg, error) {
	if m.ID == "" {
		return nil, fmt.Errorf("%w: no id", ErrInvalid)
	}
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	// go-mail's address errors quote the address: they are not passed on.
	if err := msg.From(s.cfg.From); err != nil {
		return nil, fmt.Errorf("%w: the From address is not an address", ErrInvalid)
	}
	if err := msg.To(m.To); err != nil {
		return nil, fmt.Errorf("%w: %s: the recipient is not an address", ErrInvalid, m.ID)
	}
	msg.Subject(m.Subject)
	msg.SetDate()
	msg.SetMessageIDWithValue(messageID(m.ID, s.domain))
	msg.SetGenHeader(headerAutoSubmitted, "auto-generated")
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	return msg, nil
}

// messageID is the same for every send of one id. The id is hashed because
// a Message-ID allows only some characters, and ids need not be shown.
func messageID(id, domain string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:16]) + "@" + domain
}

func (s *Sender) options() []gomail.Option {
	opts := []gomail.Option{
		gomail.WithTimeout(smtpTimeout),
		gomail.WithTLSConfig(&tls.Config{ServerName: s.cfg.Host, MinVersion: tls.VersionTLS12, RootCAs: s.cfg.RootCAs}),
	}
	security := s.cfg.security()
	switch security {
	case ImplicitTLS:
		opts = append(opts, gomail.WithSSL())
	case Plain:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	default:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	}
	opts = append(opts, gomail.WithPort(s.cfg.port()))
	if s.cfg.Username != "" {
		// The strongest mechanism the relay offers; over Plain, which is
		// loopback only, PLAIN too, which go-mail otherwise keeps for TLS.
		auth := gomail.SMTPAuthAutoDiscover
		if security == Plain {
			auth = gomail.SMTPAuthPlainNoEnc
		}
		opts = append(opts,
			gomail.WithSMTPAuth(auth),
			gomail.WithUsername(s.cfg.Username),
			gomail.WithPassword(s.cfg.Password))
	}
	return opts
}
