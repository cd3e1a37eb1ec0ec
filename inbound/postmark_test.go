package inbound

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

// postmarkBody is an inbound webhook body in Postmark's documented shape
// (https://postmarkapp.com/developer/webhooks/inbound-webhook); raw, when
// not empty, is sent as RawEmail.
func postmarkBody(t *testing.T, raw string) []byte {
	t.Helper()
	body := map[string]any{
		"FromName":          "Jane",
		"MessageStream":     "inbound",
		"From":              "Jane@Shop.Example",
		"FromFull":          map[string]string{"Email": "Jane@Shop.Example", "Name": "Jane", "MailboxHash": ""},
		"To":                "privacy@inbound.shop.example",
		"ToFull":            []map[string]string{{"Email": "privacy@inbound.shop.example", "Name": "", "MailboxHash": ""}},
		"Cc":                "",
		"CcFull":            []any{},
		"OriginalRecipient": "privacy@inbound.shop.example",
		"Subject":           "Kopie meiner Daten",
		"MessageID":         "73e6d360-66eb-11e1-8e72-a8904824019b",
		"ReplyTo":           "",
		"MailboxHash":       "",
		"Date":              "Mon, 2 Mar 2026 10:00:00 +0100",
		"TextBody":          "Bitte senden Sie mir eine Kopie meiner Daten.",
		"HtmlBody":          "<p>Bitte senden Sie mir eine Kopie meiner Daten.</p>",
		"StrippedTextReply": "",
		"Tag":               "",
		"Headers": []map[string]string{
			{"Name": "X-Spam-Status", "Value": "No"},
			{"Name": "Message-ID", "Value": "<req-7@mail.shop.example>"},
		},
		"Attachments": []any{},
	}
	if raw != "" {
		body["RawEmail"] = raw
	}
	b, err := json.Marshal(body)
	require.NoError(t, err)
	return b
}

func TestParsePostmark(t *testing.T) {
	d := newDNS(t, "shop.example")
	// The raw message is another sender's than the JSON's summary claims:
	// what counts is the raw message, which DKIM verifies.
	raw := string(d.sign(t, "shop.example", rawMessage("Max <max@shop.example>", "Löschung", "Bitte löschen.\n")))

	tests := []struct {
		name      string
		body      []byte
		want      Message
		wantDKIM  string
		wantError string
	}{
		{name: "with RawEmail", body: postmarkBody(t, raw), wantDKIM: DKIMPass, want: Message{
			From: "max@shop.example", FromDomain: "shop.example", Subject: "Löschung", Text: "Bitte löschen.\r\n",
			MessageID: "req-1@mail.example", Raw: []byte(raw)}},
		{name: "without RawEmail", body: postmarkBody(t, ""), wantDKIM: DKIMNone, want: Message{
			From: "jane@shop.example", FromDomain: "shop.example", Subject: "Kopie meiner Daten",
			Text: "Bitte senden Sie mir eine Kopie meiner Daten.", MessageID: "req-7@mail.shop.example",
			Headers: []Header{{"X-Spam-Status", "No"}, {"Message-ID", "<req-7@mail.shop.example>"}}}},
		{name: "From only, no FromFull", body: []byte(`{"From":"\"Jane\" <JANE@shop.example>","Subject":"s","MessageID":"pm-1"}`),
			wantDKIM: DKIMNone, want: Message{From: "jane@shop.example", FromDomain: "shop.example", Subject: "s", MessageID: "pm-1"}},
		{name: "not JSON", body: []byte("From: x"), wantError: "postmark"},
		{name: "no sender", body: []byte(`{"Subject":"s"}`), wantError: "From is not an address"},
		{name: "broken raw", body: []byte(`{"RawEmail":"Subject: no from\r\n\r\nhi"}`), wantError: "0 From fields"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePostmark(tt.body)
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
}
