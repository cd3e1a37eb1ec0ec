package inbound

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/charset"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
)

// sendGridFields are the multipart/form-data fields of SendGrid's Inbound
// Parse webhook that are read
// (https://www.twilio.com/docs/sendgrid/for-developers/parsing-email/inbound-email):
// email is the raw MIME message, sent when "POST the raw, full MIME message"
// is on; without it SendGrid sends headers, text, from and subject instead,
// with charsets naming each field's charset.
var sendGridFields = map[string]bool{
	"email": true, "headers": true, "text": true, "from": true, "subject": true, "charsets": true,
}

// ParseSendGrid reads a SendGrid Inbound Parse POST of at most maxBytes,
// without keeping anything on disk. With the raw message (field email) the
// Message is read from it alone, as DKIM verifies it. Without it, Raw is nil
// and Verifier.Check says "none": the parsed fields are decoded text and
// cannot be turned back into the signed bytes. A body over maxBytes is an
// error wrapping *http.MaxBytesError.
func ParseSendGrid(r *http.Request, maxBytes int64) (Message, error) {
	mediaType, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mediaType != "multipart/form-data" || params["boundary"] == "" {
		return Message{}, errors.New("inbound: sendgrid: the body is not multipart/form-data")
	}
	mr := multipart.NewReader(http.MaxBytesReader(nil, r.Body, maxBytes), params["boundary"])
	fields := map[string][]byte{}
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Message{}, fmt.Errorf("inbound: sendgrid: %w", err)
		}
		// Attachments (parsed mode) and fields not read are skipped, not kept.
		if p.FileName() != "" || !sendGridFields[p.FormName()] {
			if _, err := io.Copy(io.Discard, p); err != nil {
				return Message{}, fmt.Errorf("inbound: sendgrid: %w", err)
			}
			continue
		}
		b, err := io.ReadAll(p)
		if err != nil {
			return Message{}, fmt.Errorf("inbound: sendgrid: field %s: %w", p.FormName(), err)
		}
		fields[p.FormName()] = b
	}
	if raw := fields["email"]; len(raw) > 0 {
		return parseRaw(raw)
	}
	return parseSendGridFields(fields)
}

// parseSendGridFields builds a Message from the parsed-mode fields.
func parseSendGridFields(fields map[string][]byte) (Message, error) {
	var charsets map[string]string
	if b := fields["charsets"]; len(b) > 0 {
		// A broken charsets field leaves every field read as UTF-8.
		_ = json.Unmarshal(b, &charsets)
	}
	field := func(name string) string {
		b := fields[name]
		cs := strings.ToLower(charsets[name])
		if cs == "" || cs == "utf-8" || cs == "us-ascii" {
			return string(b)
		}
		r, err := charset.Reader(cs, bytes.NewReader(b))
		if err != nil {
			return string(b)
		}
		out, err := io.ReadAll(r)
		if err != nil {
			return string(b)
		}
		return string(out)
	}
	a, err := mail.ParseAddress(field("from"))
	if err != nil {
		return Message{}, errors.New("inbound: sendgrid: from is not an address")
	}
	var m Message
	if m.From, m.FromDomain, err = splitAddress(a.Address); err != nil {
		return Message{}, err
	}
	m.Subject, m.Text = field("subject"), field("text")
	if hb := fields["headers"]; len(hb) > 0 {
		th, err := textproto.ReadHeader(bufio.NewReader(io.MultiReader(bytes.NewReader(hb), strings.NewReader("\r\n\r\n"))))
		if err == nil {
			for f := th.Fields(); f.Next(); {
				m.Headers = append(m.Headers, Header{Name: f.Key(), Value: f.Value()})
			}
			h := mail.Header{Header: message.Header{Header: th}}
			m.MessageID, _ = h.MessageID()
		}
	}
	return m, nil
}
