package inbound

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // decode the charsets mail is written in, not only UTF-8
	"github.com/emersion/go-message/mail"
)

// maxText bounds the plain-text body kept; requests are short.
const maxText = 1 << 20

// Header is one header field, in the order of the message.
type Header struct {
	Name  string
	Value string
}

// Message is an inbound email. From and the body are the customer's PII:
// String and LogValue say [REDACTED].
type Message struct {
	From       string // the address only, lowercased
	FromDomain string // lowercased
	Subject    string
	Text       string // the first text/plain part, decoded
	MessageID  string // without angle brackets
	// Raw is the full MIME message when the provider sent it, nil otherwise;
	// only a message with Raw can pass DKIM.
	Raw     []byte
	Headers []Header
}

func (Message) String() string       { return "inbound.Message[REDACTED]" }
func (Message) GoString() string     { return "inbound.Message[REDACTED]" }
func (Message) LogValue() slog.Value { return slog.StringValue("[REDACTED]") }

// parseRaw reads a full MIME message. Everything comes from the raw bytes,
// the bytes DKIM verifies, and nothing from a provider's summary of them.
func parseRaw(raw []byte) (Message, error) {
	mr, err := mail.CreateReader(bytes.NewReader(raw))
	if err != nil && !message.IsUnknownCharset(err) {
		return Message{}, fmt.Errorf("inbound: raw message: %w", err)
	}
	defer mr.Close()
	m := Message{Raw: raw}
	if m.From, m.FromDomain, err = fromOf(mr.Header); err != nil {
		return Message{}, err
	}
	if m.Subject, err = mr.Header.Subject(); err != nil {
		m.Subject = mr.Header.Get("Subject")
	}
	m.MessageID, _ = mr.Header.MessageID()
	for f := mr.Header.Fields(); f.Next(); {
		m.Headers = append(m.Headers, Header{Name: f.Key(), Value: f.Value()})
	}
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil && !message.IsUnknownCharset(err) {
			return Message{}, fmt.Errorf("inbound: raw message body: %w", err)
		}
		h, ok := p.Header.(*mail.InlineHeader)
		if !ok {
			continue
		}
		if t, _, _ := h.ContentType(); t != "text/plain" {
			continue
		}
		b, err := io.ReadAll(io.LimitReader(p.Body, maxText))
		if err != nil {
			return Message{}, fmt.Errorf("inbound: raw message text: %w", err)
		}
		m.Text = string(b)
		break
	}
	return m, nil
}

// fromOf is the single From: address of h. A message with two From fields
// is refused: DKIM signs the last one and mail clients show the first, which
// is how a forger puts a victim's address above a valid signature.
func fromOf(h mail.Header) (addr, domain string, err error) {
	if n := len(h.Values("From")); n != 1 {
		return "", "", fmt.Errorf("inbound: %d From fields, want exactly one", n)
	}
	list, err := h.AddressList("From")
	if err != nil {
		return "", "", errors.New("inbound: the From field is not an address")
	}
	if len(list) != 1 {
		return "", "", fmt.Errorf("inbound: %d From addresses, want exactly one", len(list))
	}
	return splitAddress(list[0].Address)
}

// splitAddress lowercases an address and returns its domain.
func splitAddress(a string) (addr, domain string, err error) {
	addr = strings.ToLower(strings.TrimSpace(a))
	i := strings.LastIndexByte(addr, '@')
	if i <= 0 || i == len(addr)-1 {
		return "", "", errors.New("inbound: the From address has no domain")
	}
	return addr, addr[i+1:], nil
}
