package inbound

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-message/mail"
)

// postmarkInbound is the part of Postmark's inbound webhook JSON that is read
// (https://postmarkapp.com/developer/webhooks/inbound-webhook). RawEmail is
// there only when the inbound stream's "Include raw email content in JSON
// payload" setting is on.
type postmarkInbound struct {
	From     string
	FromFull struct {
		Email string
		Name  string
	}
	Subject   string
	MessageID string // Postmark's id for the message, not its Message-ID header
	TextBody  string
	Headers   []struct {
		Name  string
		Value string
	}
	RawEmail string
}

// ParsePostmark reads a Postmark inbound webhook body. With RawEmail the
// message is read from the raw MIME alone, so the Message is exactly what
// DKIM verifies. Without it, Raw is nil and Verifier.Check says "none":
// Postmark's JSON leaves out header fields that signatures cover (From,
// To, Subject, Date are separate fields, reformatted) and gives the body
// decoded, so the signed bytes cannot be rebuilt faithfully.
func ParsePostmark(body []byte) (Message, error) {
	var in postmarkInbound
	if err := json.Unmarshal(body, &in); err != nil {
		return Message{}, fmt.Errorf("inbound: postmark: %w", err)
	}
	if in.RawEmail != "" {
		return parseRaw([]byte(in.RawEmail))
	}
	var m Message
	from := in.FromFull.Email
	if from == "" {
		a, err := mail.ParseAddress(in.From)
		if err != nil {
			return Message{}, errors.New("inbound: postmark: From is not an address")
		}
		from = a.Address
	}
	var err error
	if m.From, m.FromDomain, err = splitAddress(from); err != nil {
		return Message{}, err
	}
	m.Subject, m.Text = in.Subject, in.TextBody
	for _, h := range in.Headers {
		m.Headers = append(m.Headers, Header{Name: h.Name, Value: h.Value})
		if strings.EqualFold(h.Name, "Message-ID") {
			m.MessageID = strings.Trim(strings.TrimSpace(h.Value), "<>")
		}
	}
	if m.MessageID == "" {
		m.MessageID = in.MessageID
	}
	return m, nil
}
