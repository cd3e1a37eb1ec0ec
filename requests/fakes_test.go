package requests

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/stretchr/testify/require"

	"piivault/audit"
	"piivault/internal/apperr"
	"piivault/mail"
	"piivault/purge"
	"piivault/vault"
)

// world is the order store the fakes share: the order ids of each email.
// A deletion purges them, as the real one does, so History is empty after.
type world struct {
	mu        sync.Mutex
	orders    map[string][]string
	deletions []call // Deleter.Request calls
	reports   []call // Reporter.AccessReport calls
}

type call struct{ actor, ip, email string }

type fakeDeleter struct{ w *world }

func (d fakeDeleter) Request(_ context.Context, actor, ip, email string) (purge.Receipt, error) {
	d.w.mu.Lock()
	defer d.w.mu.Unlock()
	d.w.deletions = append(d.w.deletions, call{actor, ip, email})
	ids := append([]string{}, d.w.orders[email]...)
	delete(d.w.orders, email)
	return purge.Receipt{RequestID: fmt.Sprintf("dr_%d", len(d.w.deletions)), Orders: ids,
		CompletedAt: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)}, nil
}

type fakeHistory struct{ w *world }

func (h fakeHistory) History(_ context.Context, email string) ([]string, error) {
	h.w.mu.Lock()
	defer h.w.mu.Unlock()
	return append([]string{}, h.w.orders[email]...), nil
}

type fakeReporter struct{ w *world }

func (r fakeReporter) AccessReport(_ context.Context, actor, ip, email string) (string, error) {
	r.w.mu.Lock()
	defer r.w.mu.Unlock()
	r.w.reports = append(r.w.reports, call{actor, ip, email})
	return fmt.Sprintf("ar_%d", len(r.w.reports)), nil
}

// fakeMailer keeps what was enqueued; a repeated id is a no-op, as in
// mail.Outbox.
type fakeMailer struct {
	mu   sync.Mutex
	msgs []mail.Message
}

func (m *fakeMailer) Enqueue(_ context.Context, msg mail.Message) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, old := range m.msgs {
		if old.ID == msg.ID {
			return nil
		}
	}
	m.msgs = append(m.msgs, msg)
	return nil
}

func (m *fakeMailer) sent() []mail.Message {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]mail.Message{}, m.msgs...)
}

// fakeTransit stands in for Vault transit's masked-copy key: AES-GCM with
// the associated data bound, and a token that Vault refuses answered with
// Forbidden, as vault.Client answers.
type fakeTransit struct {
	aead    cipher.AEAD
	allowed map[string]bool
}

func newFakeTransit(t *testing.T, tokens ...string) *fakeTransit {
	key := make([]byte, 32)
	_, err := rand.Read(key)
	require.NoError(t, err)
	block, err := aes.NewCipher(key)
	require.NoError(t, err)
	aead, err := cipher.NewGCM(block)
	require.NoError(t, err)
	f := &fakeTransit{aead: aead, allowed: map[string]bool{}}
	for _, tok := range tokens {
		f.allowed[tok] = true
	}
	return f
}

func (f *fakeTransit) EncryptMasked(_ context.Context, items []vault.Plaintext) ([]vault.Result, error) {
	out := make([]vault.Result, len(items))
	for i, it := range items {
		if len(it.Plaintext) == 0 {
			out[i].Err = apperr.New(apperr.Invalid, "vault rejected item %d: missing plaintext to encrypt", i)
			continue
		}
		nonce := make([]byte, f.aead.NonceSize())
		_, _ = rand.Read(nonce)
		out[i].Value = "vault:v1:" + base64.StdEncoding.EncodeToString(f.aead.Seal(nonce, nonce, it.Plaintext, it.AssociatedData))
	}
	return out, nil
}

func (f *fakeTransit) DecryptMasked(_ context.Context, token, ciphertext string, ad []byte) ([]byte, error) {
	if !f.allowed[token] {
		return nil, apperr.New(apperr.Forbidden, "vault refused the operation")
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(ciphertext, "vault:v1:"))
	n := f.aead.NonceSize()
	if err != nil || len(raw) < n {
		return nil, apperr.New(apperr.Gone, "the shipping data can no longer be decrypted")
	}
	plain, err := f.aead.Open(nil, raw[:n], raw[n:], ad)
	if err != nil {
		return nil, apperr.New(apperr.Gone, "the shipping data can no longer be decrypted")
	}
	return plain, nil
}

// fakeTrail keeps audit entries; fail makes Record refuse.
type fakeTrail struct {
	mu      sync.Mutex
	entries []audit.Entry
	fail    bool
}

func (f *fakeTrail) Record(_ context.Context, e audit.Entry) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return errors.New("audit trail unavailable")
	}
	f.entries = append(f.entries, e)
	return nil
}

func (f *fakeTrail) actions(action string) []audit.Entry {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []audit.Entry
	for _, e := range f.entries {
		if e.Action == action {
			out = append(out, e)
		}
	}
	return out
}

type fakeWatch struct {
	mu  sync.Mutex
	bad []string
}

func (w *fakeWatch) BadSignature(_ context.Context, provider string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.bad = append(w.bad, provider)
}

// dns is a fake DNS of DKIM keys: one ed25519 key per signing domain,
// published at s1._domainkey.<domain>.
type dns struct {
	mu      sync.Mutex
	keys    map[string]ed25519.PrivateKey
	records map[string]string
	down    bool
}

func newDNS(t *testing.T, domains ...string) *dns {
	t.Helper()
	d := &dns{keys: map[string]ed25519.PrivateKey{}, records: map[string]string{}}
	for _, domain := range domains {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		require.NoError(t, err)
		d.keys[domain] = priv
		d.records["s1._domainkey."+domain] = "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub)
	}
	return d
}

func (d *dns) LookupTXT(name string) ([]string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.down {
		return nil, &net.DNSError{Err: "server misbehaving", Name: name, IsTemporary: true}
	}
	r, ok := d.records[name]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	}
	return []string{r}, nil
}

func (d *dns) setDown(down bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.down = down
}

// email is a plain-text message with CRLF line ends, signed by signer's
// key when signer is not "".
func (d *dns) email(t *testing.T, signer, from, subject, body, messageID string) string {
	t.Helper()
	raw := strings.Join([]string{
		"From: " + from,
		"To: privacy@shop.example",
		"Subject: " + subject,
		"Date: Mon, 02 Mar 2026 10:00:00 +0100",
		"Message-ID: <" + messageID + ">",
		"MIME-Version: 1.0",
		"Content-Type: text/plain; charset=utf-8",
		"",
		strings.ReplaceAll(body, "\n", "\r\n"),
	}, "\r\n")
	if signer == "" {
		return raw
	}
	var out bytes.Buffer
	require.NoError(t, dkim.Sign(&out, strings.NewReader(raw), &dkim.SignOptions{Domain: signer, Selector: "s1", Signer: d.keys[signer]}))
	return out.String()
}
