package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	netmail "net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/require"
)

// mailbox is a real SMTP server (go-smtp) on loopback that keeps every
// message piivault sends, for tests to read as a customer would.
type mailbox struct {
	srv  *smtp.Server
	addr string
	mu   sync.Mutex
	got  []delivered
}

// delivered is one message as the mailbox received it.
type delivered struct {
	To      string
	Subject string
	Body    string
	Raw     string
}

func newMailbox(t *testing.T) *mailbox {
	t.Helper()
	m := &mailbox{}
	m.srv = smtp.NewServer(m)
	m.srv.Domain = "localhost"
	m.srv.AllowInsecureAuth = true
	m.srv.ReadTimeout, m.srv.WriteTimeout = 10*time.Second, 10*time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	m.addr = ln.Addr().String()
	go func() { _ = m.srv.Serve(ln) }()
	t.Cleanup(func() { _ = m.srv.Close() })
	return m
}

// env is the configuration that sends piivault's email to this mailbox.
func (m *mailbox) env() map[string]string {
	return map[string]string{"PIIVAULT_SMTP_URL": "smtp://" + m.addr, "PIIVAULT_MAIL_FROM": "Shop privacy <privacy@shop.example>"}
}

// to returns the messages delivered to addr so far.
func (m *mailbox) to(addr string) []delivered {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []delivered
	for _, d := range m.got {
		if strings.EqualFold(d.To, addr) {
			out = append(out, d)
		}
	}
	return out
}

// all returns every message delivered so far.
func (m *mailbox) all() []delivered {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]delivered(nil), m.got...)
}

func (m *mailbox) NewSession(*smtp.Conn) (smtp.Session, error) { return &mailSession{box: m}, nil }

type mailSession struct {
	box *mailbox
	to  []string
}

func (s *mailSession) AuthPlain(string, string) error            { return nil }
func (s *mailSession) Mail(string, *smtp.MailOptions) error      { return nil }
func (s *mailSession) Rcpt(to string, _ *smtp.RcptOptions) error { s.to = append(s.to, to); return nil }
func (s *mailSession) Reset()                                    { s.to = nil }
func (s *mailSession) Logout() error                             { return nil }

func (s *mailSession) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	msg, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(msg.Body)
	subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		subject = msg.Header.Get("Subject")
	}
	s.box.mu.Lock()
	defer s.box.mu.Unlock()
	for _, to := range s.to {
		s.box.got = append(s.box.got, delivered{To: to, Subject: subject, Body: decodeBody(msg.Header.Get("Content-Transfer-Encoding"), body), Raw: string(raw)})
	}
	return nil
}

// decodeBody undoes the body's transfer encoding (quoted-printable or
// base64) so tests read the text a customer reads.
func decodeBody(cte string, body []byte) string {
	switch strings.ToLower(cte) {
	case "quoted-printable":
		b, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(body)))
		if err == nil {
			return string(b)
		}
	case "base64":
		b, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(string(body)), ""))
		if err == nil {
			return string(b)
		}
	}
	return string(body)
}

// senderDomain signs emails as a customer's mail provider does: DKIM with
// an ed25519 key published (to this test) at s1._domainkey.<domain>.
type senderDomain struct {
	domain string
	key    ed25519.PrivateKey
	record string
}

func newSenderDomain(t *testing.T, domain string) *senderDomain {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	return &senderDomain{domain: domain, key: priv, record: "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub)}
}

// lookup answers DKIM key look-ups for the given domains, as DNS would.
func lookup(domains ...*senderDomain) func(string) ([]string, error) {
	return func(name string) ([]string, error) {
		for _, d := range domains {
			if name == "s1._domainkey."+d.domain {
				return []string{d.record}, nil
			}
		}
		return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	}
}

// email is a plain-text message from `from`, DKIM-signed by signer (nil:
// unsigned).
func email(t *testing.T, signer *senderDomain, from, subject, body, messageID string) string {
	t.Helper()
	raw := strings.Join([]string{
		"From: " + from, "To: privacy@shop.example", "Subject: " + subject,
		"Date: " + time.Now().UTC().Format(time.RFC1123Z), "Message-ID: <" + messageID + ">",
		"MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8", "",
		strings.ReplaceAll(body, "\n", "\r\n"),
	}, "\r\n")
	if signer == nil {
		return raw
	}
	var out bytes.Buffer
	require.NoError(t, dkim.Sign(&out, strings.NewReader(raw), &dkim.SignOptions{Domain: signer.domain, Selector: "s1", Signer: signer.key}))
	return out.String()
}
