package inbound

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"net"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/stretchr/testify/require"
)

// dns is a fake DNS of DKIM keys: one ed25519 key per signing domain,
// published at s1._domainkey.<domain>.
type dns struct {
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
	if d.down {
		return nil, &net.DNSError{Err: "server misbehaving", Name: name, IsTemporary: true}
	}
	r, ok := d.records[name]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	}
	return []string{r}, nil
}

// rawMessage is a plain-text email with CRLF line ends.
func rawMessage(from, subject, body string) string {
	return strings.Join([]string{
		"From: " + from,
		"To: privacy@shop.example",
		"Subject: " + subject,
		"Date: Mon, 02 Mar 2026 10:00:00 +0100",
		"Message-ID: <req-1@mail.example>",
		"MIME-Version: 1.0",
		"Content-Type: text/plain; charset=utf-8",
		"",
		strings.ReplaceAll(body, "\n", "\r\n"),
	}, "\r\n")
}

// sign signs raw with domain's key from d.
func (d *dns) sign(t *testing.T, domain, raw string) []byte {
	t.Helper()
	var out bytes.Buffer
	require.NoError(t, dkim.Sign(&out, strings.NewReader(raw), &dkim.SignOptions{Domain: domain, Selector: "s1", Signer: d.keys[domain]}))
	return out.Bytes()
}

func TestCheck(t *testing.T) {
	d := newDNS(t, "shop.example", "attacker.example", "mail.shop.example", "example")
	const body = "Bitte löschen Sie meine Daten.\n"
	signed := func(domain, from string) []byte { return d.sign(t, domain, rawMessage(from, "Löschung", body)) }

	tests := []struct {
		name      string
		raw       []byte
		fromFix   string // overrides the parsed FromDomain
		dnsDown   bool
		noKeys    bool // DNS answers, without the key
		want      string
		domain    string
		reason    string
		temporary bool
	}{
		{name: "aligned, same domain", raw: signed("shop.example", "Jane <Jane@Shop.Example>"), want: DKIMPass, domain: "shop.example"},
		{name: "aligned, From in a subdomain", raw: signed("shop.example", "jane@mail.shop.example"), want: DKIMPass, domain: "shop.example"},
		{name: "forged From, signed by another domain", raw: signed("attacker.example", "jane@shop.example"), want: DKIMFail, reason: "not aligned"},
		{name: "look-alike domain is not a subdomain", raw: signed("shop.example", "jane@evilshop.example"), want: DKIMFail, reason: "not aligned"},
		{name: "d= a subdomain of From is not aligned", raw: signed("mail.shop.example", "jane@shop.example"), want: DKIMFail, reason: "not aligned"},
		{name: "d= without a dot never aligns", raw: signed("example", "jane@shop.example"), want: DKIMFail, reason: "not aligned"},
		{name: "no signature", raw: []byte(rawMessage("jane@shop.example", "Löschung", body)), want: DKIMNone, reason: "no DKIM signature"},
		{name: "body altered after signing", want: DKIMFail, reason: "no signature verifies",
			raw: bytes.Replace(signed("shop.example", "jane@shop.example"), []byte("löschen"), []byte("kopieren"), 1)},
		{name: "From altered after signing", want: DKIMFail, reason: "no signature verifies",
			raw: bytes.Replace(signed("shop.example", "jane@shop.example"), []byte("From: jane@"), []byte("From: ceo@"), 1)},
		{name: "second From above the signed one", want: DKIMFail, reason: "no single From",
			raw: append([]byte("From: ceo@shop.example\r\n"), signed("shop.example", "jane@shop.example")...)},
		{name: "no key published", raw: signed("shop.example", "jane@shop.example"), noKeys: true, want: DKIMFail, reason: "no key for signature"},
		{name: "DNS down", raw: signed("shop.example", "jane@shop.example"), dnsDown: true, want: DKIMFail, temporary: true, reason: "could not be fetched"},
		{name: "Message's From domain differs from the raw one", raw: signed("shop.example", "jane@shop.example"), fromFix: "other.example", want: DKIMFail, reason: "differs"},
		{name: "no raw message", raw: nil, want: DKIMNone, reason: "no raw message"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := Message{Raw: tt.raw}
			if parsed, err := parseRaw(tt.raw); err == nil {
				m = parsed
			}
			if tt.fromFix != "" {
				m.FromDomain = tt.fromFix
			}
			d.down = tt.dnsDown
			v := Verifier{LookupTXT: d.LookupTXT}
			if tt.noKeys {
				v.LookupTXT = (&dns{}).LookupTXT
			}
			got := v.Check(m)
			require.Equal(t, tt.want, got.DKIM, got.Reason)
			require.Equal(t, tt.domain, got.Domain)
			require.Contains(t, got.Reason, tt.reason)
			require.Equal(t, tt.temporary, got.Temporary)
			require.NotContains(t, got.Reason, "jane")
		})
	}
}

func TestParseRaw(t *testing.T) {
	raw := strings.Join([]string{
		"From: =?utf-8?q?J=C3=BCrgen?= <Juergen@Mail.Shop.Example>",
		"To: privacy@shop.example",
		"Subject: =?iso-8859-1?q?Auskunft_=FCber_meine_Daten?=",
		"Message-ID: <abc@mail.example>",
		"MIME-Version: 1.0",
		`Content-Type: multipart/alternative; boundary="b"`,
		"",
		"--b",
		"Content-Type: text/plain; charset=iso-8859-1",
		"Content-Transfer-Encoding: quoted-printable",
		"",
		"Bitte schicken Sie mir eine Kopie meiner Daten, gr=FC=DFe.",
		"--b",
		"Content-Type: text/html; charset=utf-8",
		"",
		"<p>html</p>",
		"--b--",
		"",
	}, "\r\n")
	m, err := parseRaw([]byte(raw))
	require.NoError(t, err)
	require.Equal(t, "juergen@mail.shop.example", m.From)
	require.Equal(t, "mail.shop.example", m.FromDomain)
	require.Equal(t, "Auskunft über meine Daten", m.Subject)
	require.Equal(t, "abc@mail.example", m.MessageID)
	require.Equal(t, "Bitte schicken Sie mir eine Kopie meiner Daten, grüße.", m.Text)
	require.Equal(t, []byte(raw), m.Raw)
	require.Equal(t, Header{Name: "To", Value: "privacy@shop.example"}, m.Headers[1])

	tests := []struct {
		name, raw, wantErr string
	}{
		{name: "no From", raw: "To: a@b.example\r\n\r\nhi", wantErr: "0 From fields"},
		{name: "two From fields", raw: "From: a@b.example\r\nFrom: c@d.example\r\n\r\nhi", wantErr: "2 From fields"},
		{name: "two From addresses", raw: "From: a@b.example, c@d.example\r\n\r\nhi", wantErr: "2 From addresses"},
		{name: "From not an address", raw: "From: nobody\r\n\r\nhi", wantErr: "not an address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseRaw([]byte(tt.raw))
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}
