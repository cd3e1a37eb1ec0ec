package inbound

import (
	"bytes"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

type formField struct{ name, value, file string }

// sendGridRequest is an Inbound Parse POST: multipart/form-data with the
// documented field names.
func sendGridRequest(t *testing.T, fields []formField) *http.Request {
	t.Helper()
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	for _, f := range fields {
		var err error
		if f.file != "" {
			var fw io.Writer
			fw, err = w.CreateFormFile(f.name, f.file)
			require.NoError(t, err)
			_, err = fw.Write([]byte(f.value))
		} else {
			err = w.WriteField(f.name, f.value)
		}
		require.NoError(t, err)
	}
	require.NoError(t, w.Close())
	r := httptest.NewRequest(http.MethodPost, "/inbound/sendgrid", &body)
	r.Header.Set("Content-Type", w.FormDataContentType())
	return r
}

func TestParseSendGrid(t *testing.T) {
	d := newDNS(t, "shop.example")
	raw := string(d.sign(t, "shop.example", rawMessage("Jane <Jane@shop.example>", "Adresse ändern", "Meine Adresse ist falsch.\n")))
	common := []formField{
		{name: "to", value: "privacy@parse.shop.example"},
		{name: "from", value: "Jane <Jane@shop.example>"},
		{name: "subject", value: "Adresse ändern"},
		{name: "dkim", value: "{@shop.example : pass}"},
		{name: "SPF", value: "pass"},
		{name: "envelope", value: `{"to":["privacy@parse.shop.example"],"from":"jane@shop.example"}`},
		{name: "sender_ip", value: "192.0.2.1"},
		{name: "spam_score", value: "0.1"},
	}
	rawMode := append(append([]formField{}, common...),
		formField{name: "charsets", value: `{"to":"UTF-8","from":"UTF-8","subject":"UTF-8"}`},
		formField{name: "email", value: raw})
	parsedMode := append(append([]formField{}, common...),
		formField{name: "headers", value: "From: Jane <Jane@shop.example>\nMessage-ID: <req-9@shop.example>\nSubject: Adresse =?utf-8?q?=C3=A4ndern?="},
		formField{name: "charsets", value: `{"to":"UTF-8","from":"UTF-8","subject":"UTF-8","text":"iso-8859-1"}`},
		formField{name: "text", value: "Stra\xdfe falsch"},
		formField{name: "html", value: "<p>Stra&szlig;e falsch</p>"},
		formField{name: "attachment1", value: "%PDF-1.7", file: "scan.pdf"},
		formField{name: "attachments", value: "1"})

	tests := []struct {
		name      string
		req       *http.Request
		maxBytes  int64
		want      Message
		wantDKIM  string
		wantError string
	}{
		{name: "raw MIME", req: sendGridRequest(t, rawMode), maxBytes: 1 << 20, wantDKIM: DKIMPass, want: Message{
			From: "jane@shop.example", FromDomain: "shop.example", Subject: "Adresse ändern", Text: "Meine Adresse ist falsch.\r\n",
			MessageID: "req-1@mail.example", Raw: []byte(raw)}},
		{name: "parsed fields, no raw", req: sendGridRequest(t, parsedMode), maxBytes: 1 << 20, wantDKIM: DKIMNone, want: Message{
			From: "jane@shop.example", FromDomain: "shop.example", Subject: "Adresse ändern", Text: "Straße falsch",
			MessageID: "req-9@shop.example", Headers: []Header{
				{"From", "Jane <Jane@shop.example>"}, {"Message-Id", "<req-9@shop.example>"}, {"Subject", "Adresse =?utf-8?q?=C3=A4ndern?="}}}},
		{name: "over maxBytes", req: sendGridRequest(t, rawMode), maxBytes: 512, wantError: "request body too large"},
		{name: "not multipart", req: httptest.NewRequest(http.MethodPost, "/", strings.NewReader("email=x")), maxBytes: 1 << 20,
			wantError: "not multipart/form-data"},
		{name: "parsed fields without from", req: sendGridRequest(t, []formField{{name: "text", value: "hi"}}), maxBytes: 1 << 20,
			wantError: "from is not an address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSendGrid(tt.req, tt.maxBytes)
			if tt.wantError != "" {
				require.ErrorContains(t, err, tt.wantError)
				return
			}
			require.NoError(t, err)
			if tt.want.Raw != nil {
				got.Headers = nil // the raw message's own, checked in TestParseRaw
			}
			require.Equal(t, tt.want, got)
			require.Equal(t, tt.wantDKIM, Verifier{LookupTXT: d.LookupTXT}.Check(got).DKIM)
		})
	}

	_, err := ParseSendGrid(sendGridRequest(t, rawMode), 512)
	var tooLarge *http.MaxBytesError
	require.True(t, errors.As(err, &tooLarge), "callers tell a too-large body by *http.MaxBytesError")
}
