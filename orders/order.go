package orders

import (
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"
)

// Status of an order's PII.
type Status string

const (
	StatusHeld    Status = "held"    // PII stored, waiting for shipment
	StatusShipped Status = "shipped" // PII destroyed because the parcel shipped
	StatusPurged  Status = "purged"  // PII destroyed for any other reason
)

// Purge reasons, recorded on the purchase reference.
const (
	ReasonShipped         = "shipped"
	ReasonCustomerRequest = "customer_request"
	ReasonRetention       = "retention_expired"
	ReasonRefunded        = "refunded"
	ReasonCanceled        = "canceled"
	ReasonShopRedact      = "shop_redact"
	ReasonPaymentFailed   = "payment_failed" // a delayed payment (Stripe Checkout) failed: nothing ships
	ReasonOrderDeleted    = "order_deleted"  // the shop deleted the order (Shopify orders/delete)
)

// StatusAfter is the status an order has after a purge for reason.
func StatusAfter(reason string) Status {
	if reason == ReasonShipped {
		return StatusShipped
	}
	return StatusPurged
}

// Address is a postal address.
type Address struct {
	Line1      string `json:"line1"`
	Line2      string `json:"line2"`
	City       string `json:"city"`
	State      string `json:"state"`
	PostalCode string `json:"postal_code"`
	Country    string `json:"country"`
}

// Shipping is the PII piivault protects. It never prints: String and
// LogValue say [REDACTED], so a stray log call cannot leak it.
type Shipping struct {
	Name    string  `json:"name"`
	Email   string  `json:"email"`
	Phone   string  `json:"phone"`
	Address Address `json:"address"`
}

func (Shipping) String() string       { return "[REDACTED]" }
func (Shipping) GoString() string     { return "[REDACTED]" }
func (Shipping) LogValue() slog.Value { return slog.StringValue("[REDACTED]") }

// Masked returns the view support staff get: initials of the name, the
// email's domain, city and country only. Enough to match a customer's
// description, not enough to ship to them.
func (s Shipping) Masked() Shipping {
	return Shipping{
		Name:  maskName(s.Name),
		Email: maskEmail(s.Email),
		Phone: maskPhone(s.Phone),
		Address: Address{
			City:    s.Address.City,
			Country: s.Address.Country,
		},
	}
}

func maskName(name string) string {
	parts := strings.Fields(name)
	for i, p := range parts {
		r, _ := utf8.DecodeRuneInString(p)
		parts[i] = string(r) + "***"
	}
	return strings.Join(parts, " ")
}

func maskEmail(email string) string {
	at := strings.LastIndexByte(email, '@')
	if at < 0 {
		return "****"
	}
	return "****" + email[at:]
}

func maskPhone(phone string) string {
	if phone == "" {
		return ""
	}
	digits := 0
	for _, r := range phone {
		if r >= '0' && r <= '9' {
			digits++
		}
	}
	if digits <= 2 {
		return "****"
	}
	// Keep the last two digits, as card receipts do.
	return "****" + phone[len(phone)-2:]
}

// Request is the body of POST /v1/orders.
type Request struct {
	OrderID    string   `json:"order_id"`
	PaymentRef string   `json:"payment_ref"`
	Shipping   Shipping `json:"shipping"`
	// ShopDomain (optional) is the Shopify shop the order belongs to
	// (name.myshopify.com), so Shopify's shop/redact can purge it.
	ShopDomain string `json:"shop_domain,omitempty"`
}

// Reference is the purchase reference: what remains of an order for good.
// It holds no PII.
type Reference struct {
	OrderID     string     `json:"order_id"`
	PaymentRef  string     `json:"payment_ref"`
	Status      Status     `json:"status"`
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   time.Time  `json:"expires_at"`
	PurgedAt    *time.Time `json:"purged_at"`
	PurgeReason *string    `json:"purge_reason"`
	// Label is the postage label bought through piivault, if any.
	Label *PostageLabel `json:"label,omitempty"`
}

// Receipt is the answer to a stored order.
type Receipt struct {
	OrderID   string    `json:"order_id"`
	Status    Status    `json:"status"`
	ExpiresAt time.Time `json:"expires_at"`
	// Note is, for a Tombstoned store, the outbox note of the early
	// event's purge, for the caller to record.
	Note []byte `json:"-"`
}
