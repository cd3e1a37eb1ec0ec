package inbound

import (
	"bytes"
	"net"
	"strings"

	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-msgauth/dkim"
)

// DKIM results of a Verdict.
const (
	DKIMPass = "pass"
	DKIMFail = "fail"
	DKIMNone = "none"
)

// Verdict is whether a message proves its sender.
type Verdict struct {
	DKIM   string // DKIMPass, DKIMFail or DKIMNone
	Domain string // the aligned d= of a passing signature, when DKIM is DKIMPass
	// Reason says why the verdict is not a pass. It names no address and
	// may be logged.
	Reason string
	// Temporary: no signature passed and a key could not be fetched for a
	// reason that may go away (DNS). Answer the webhook with an error so
	// that the provider retries, rather than acting on the fail.
	Temporary bool
	// Signed lists the header fields (lowercased) the aligned passing
	// signature covers: a field it does not cover could have been changed.
	Signed []string
}

// Covers reports whether the passing signature covers header field name.
func (v Verdict) Covers(name string) bool {
	for _, h := range v.Signed {
		if strings.EqualFold(h, name) {
			return true
		}
	}
	return false
}

// Verifier checks DKIM signatures. LookupTXT fetches a domain's TXT
// records; nil means net.LookupTXT.
type Verifier struct {
	LookupTXT func(domain string) ([]string, error)
}

// maxSignatures bounds the DNS lookups one message can cause.
const maxSignatures = 5

// Check verifies m.Raw. A message counts as from its From: domain only if a
// signature passes and its d= is that domain or a parent of it (relaxed
// alignment, as DMARC has it, without a public-suffix list: d= needs a dot).
//
// A message without Raw is DKIMNone: Postmark without "Include raw email
// content in JSON payload" and SendGrid without "POST the raw, full MIME
// message" send decoded parts that cannot be turned back into the signed
// bytes, so nothing is rebuilt from them.
func (v Verifier) Check(m Message) Verdict {
	if len(m.Raw) == 0 {
		return Verdict{DKIM: DKIMNone, Reason: "no raw message to verify"}
	}
	// The From domain is read again from the signed bytes, so a Message
	// whose From was set from elsewhere cannot borrow their signature.
	mr, err := mail.CreateReader(bytes.NewReader(m.Raw))
	if err != nil && mr == nil {
		return Verdict{DKIM: DKIMFail, Reason: "the raw message is unreadable"}
	}
	_, fromDomain, err := fromOf(mr.Header)
	mr.Close()
	if err != nil {
		return Verdict{DKIM: DKIMFail, Reason: "the raw message has no single From address"}
	}
	if m.FromDomain != "" && !strings.EqualFold(m.FromDomain, fromDomain) {
		return Verdict{DKIM: DKIMFail, Reason: "the From domain differs from the raw message's"}
	}

	lookup := v.LookupTXT
	if lookup == nil {
		lookup = net.LookupTXT
	}
	results, err := dkim.VerifyWithOptions(bytes.NewReader(m.Raw), &dkim.VerifyOptions{LookupTXT: lookup, MaxVerifications: maxSignatures})
	if err != nil {
		return Verdict{DKIM: DKIMFail, Reason: "the raw message is unreadable: " + err.Error()}
	}
	if len(results) == 0 {
		return Verdict{DKIM: DKIMNone, Reason: "no DKIM signature"}
	}
	var passedOther, temporary bool
	var firstErr error
	for _, r := range results {
		if r.Err != nil {
			temporary = temporary || dkim.IsTempFail(r.Err)
			if firstErr == nil {
				firstErr = r.Err
			}
			continue
		}
		d := strings.ToLower(strings.TrimSuffix(r.Domain, "."))
		if aligned(fromDomain, d) {
			signed := make([]string, len(r.HeaderKeys))
			for i, k := range r.HeaderKeys {
				signed[i] = strings.ToLower(k)
			}
			return Verdict{DKIM: DKIMPass, Domain: d, Signed: signed}
		}
		passedOther = true
	}
	switch {
	case passedOther:
		return Verdict{DKIM: DKIMFail, Reason: "a signature passes, but for a domain not aligned with the From domain"}
	case temporary:
		return Verdict{DKIM: DKIMFail, Temporary: true, Reason: "a signing key could not be fetched: " + firstErr.Error()}
	}
	return Verdict{DKIM: DKIMFail, Reason: "no signature verifies: " + firstErr.Error()}
}

// aligned reports whether signing domain d covers fromDomain: the same
// domain, or a parent of it with at least one dot (so never a bare TLD).
func aligned(fromDomain, d string) bool {
	f := strings.ToLower(strings.TrimSuffix(fromDomain, "."))
	if !strings.Contains(d, ".") || strings.HasPrefix(d, ".") {
		return false
	}
	return f == d || strings.HasSuffix(f, "."+d)
}
