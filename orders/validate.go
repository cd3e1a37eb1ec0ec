package orders

import (
	"net/mail"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/text/cases"
	"golang.org/x/text/language"
	"golang.org/x/text/unicode/norm"

	"piivault/internal/apperr"
)

var (
	idPattern     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)
	phonePattern  = regexp.MustCompile(`^\+?[0-9]{6,15}$`)
	postalPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9 -]{0,19}$`)
	phoneNoise    = strings.NewReplacer(" ", "", "-", "", "(", "", ")", "", ".", "")
)

var shopPattern = regexp.MustCompile(`^[A-Za-z0-9{}][A-Za-z0-9{}._-]{0,254}$`)

// ValidShopDomain reports whether d can be a Shopify shop's domain as its
// webhooks name it (name.myshopify.com; Shopify's own samples send
// "{shop}.myshopify.com"): safe in a Redis key, at most 255 characters.
func ValidShopDomain(d string) bool { return shopPattern.MatchString(d) }

// ValidOrderID reports whether id is an acceptable order id: 1–128 of
// letters, digits and . _ : - (so it is safe in a Redis key and a URL).
func ValidOrderID(id string) bool { return idPattern.MatchString(id) }

// Validate checks every field of r and returns a Validation error naming
// all the fields that fail (never their values), or nil.
func (r *Request) Validate() error {
	var bad []string
	check := func(field string, ok bool) {
		if !ok {
			bad = append(bad, field)
		}
	}
	s, a := r.Shipping, r.Shipping.Address
	check("order_id", ValidOrderID(r.OrderID))
	check("payment_ref", idPattern.MatchString(r.PaymentRef))
	check("shop_domain", r.ShopDomain == "" || ValidShopDomain(r.ShopDomain))
	check("shipping.name", text(s.Name, 1, 200))
	check("shipping.email", ValidEmail(s.Email))
	check("shipping.phone", s.Phone == "" || (text(s.Phone, 1, 32) && phonePattern.MatchString(phoneNoise.Replace(s.Phone))))
	check("shipping.address.line1", text(a.Line1, 1, 200))
	check("shipping.address.line2", text(a.Line2, 0, 200))
	check("shipping.address.city", text(a.City, 1, 100))
	check("shipping.address.state", text(a.State, 0, 100))
	check("shipping.address.postal_code", a.PostalCode == "" || postalPattern.MatchString(a.PostalCode))
	check("shipping.address.country", ValidCountry(a.Country))
	if len(bad) > 0 {
		return &apperr.Error{Code: apperr.Validation, Message: "invalid fields: " + strings.Join(bad, ", "), Fields: bad}
	}
	return nil
}

// text reports whether s is valid UTF-8 without control characters and
// with a rune count in [min, max]. Surrounding space does not count.
func text(s string, min, max int) bool {
	if !utf8.ValidString(s) {
		return false
	}
	n := utf8.RuneCountInString(strings.TrimSpace(s))
	if n < min || utf8.RuneCountInString(s) > max {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return false
		}
	}
	return true
}

// ValidEmail accepts a bare address (no display name) of at most 254 bytes
// whose domain has a dot.
func ValidEmail(s string) bool {
	if len(s) > 254 || !text(s, 3, 254) {
		return false
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" {
		return false
	}
	at := strings.LastIndexByte(s, '@')
	return at > 0 && strings.Contains(s[at+1:], ".")
}

// NormalizeEmail is the form the blind index is computed over: trimmed,
// Unicode NFC, case-folded, and the domain in its IDNA (punycode) form, so
// "  Jane@Example.COM ", a decomposed "zoe\u0308@example.com" and
// "x@BÜCHER.de" find the orders stored as jane@example.com,
// "zo\u00eb@example.com" and x@xn--bcher-kva.de.
func NormalizeEmail(s string) string {
	s = norm.NFC.String(cases.Fold().String(norm.NFC.String(strings.TrimSpace(s))))
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return s
	}
	if domain, err := idna.Lookup.ToASCII(s[at+1:]); err == nil {
		return s[:at+1] + domain
	}
	return s
}

// ValidCountry accepts an upper-case ISO 3166-1 alpha-2 code of a country.
func ValidCountry(code string) bool {
	if len(code) != 2 || strings.ToUpper(code) != code {
		return false
	}
	r, err := language.ParseRegion(code)
	return err == nil && r.IsCountry() && r.String() == code
}
