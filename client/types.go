package client

import (
	"log/slog"
	"time"
)

// Order statuses.
const (
	StatusHeld    = "held"
	StatusShipped = "shipped"
	StatusPurged  = "purged"
)

// Reasons a reveal may give (RevealShipping, Labels).
const (
	ReasonLabel           = "label"
	ReasonDeliveryIssue   = "delivery_issue"
	ReasonCustomerContact = "customer_contact"
	ReasonAddressCheck    = "address_check"
	ReasonFraudReview     = "fraud_review"
)

// View says which copy a reveal returned.
type View string

// Views of RevealShipping.
const (
	ViewFull   View = "full"   // fulfillment
	ViewMasked View = "masked" // support: initials, the email's domain, city and country
)

// Address is a postal address.
type Address struct {
	Line1      string `json:"line1"`
	Line2      string `json:"line2,omitempty"`
	City       string `json:"city"`
	State      string `json:"state,omitempty"`
	PostalCode string `json:"postal_code,omitempty"`
	Country    string `json:"country"` // ISO 3166-1 alpha-2, upper case
}

// Shipping is the PII piivault keeps. It never prints: String and
// LogValue say [REDACTED].
type Shipping struct {
	Name    string  `json:"name"`
	Email   string  `json:"email"`
	Phone   string  `json:"phone,omitempty"`
	Address Address `json:"address"`
}

func (Shipping) String() string       { return "[REDACTED]" }
func (Shipping) GoString() string     { return "[REDACTED]" }
func (Shipping) LogValue() slog.Value { return slog.StringValue("[REDACTED]") }

// OrderRequest is the body of CreateOrder.
type OrderRequest struct {
	OrderID    string   `json:"order_id"`
	PaymentRef string   `json:"payment_ref"`
	Shipping   Shipping `json:"shipping"`
	// ShopDomain (optional) is the Shopify shop of the order, for shop/redact.
	ShopDomain string `json:"shop_domain,omitempty"`
}

// LogValue names the order only: a JSON log handler would otherwise
// marshal the shipping data inside.
func (o OrderRequest) LogValue() slog.Value {
	return slog.GroupValue(slog.String("order_id", o.OrderID))
}

// Receipt is the answer to a stored order.
type Receipt struct {
	OrderID   string    `json:"order_id"`
	Status    string    `json:"status"`
	ExpiresAt time.Time `json:"expires_at"`
	// Created is false when the same order and body were already stored.
	Created bool `json:"-"`
}

// Reference is an order's purchase reference: what remains of it for
// good, no PII.
type Reference struct {
	OrderID     string     `json:"order_id"`
	PaymentRef  string     `json:"payment_ref"`
	Status      string     `json:"status"`
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   time.Time  `json:"expires_at"`
	PurgedAt    *time.Time `json:"purged_at"`
	PurgeReason *string    `json:"purge_reason"`
	// Label is the postage label bought through piivault, if any.
	Label *PostageLabel `json:"label,omitempty"`
}

// PostageLabel is a label bought through piivault (no PII).
type PostageLabel struct {
	Carrier      string    `json:"carrier"`
	TrackingCode string    `json:"tracking_code"`
	BoughtAt     time.Time `json:"bought_at"`
}

// Parcel is EasyPost's parcel: inches and ounces, dimensions or a
// predefined package, and a weight.
type Parcel struct {
	Length            float64 `json:"length,omitempty"`
	Width             float64 `json:"width,omitempty"`
	Height            float64 `json:"height,omitempty"`
	Weight            float64 `json:"weight"`
	PredefinedPackage string  `json:"predefined_package,omitempty"`
}

// ShipmentsRequest asks for labels (or rates) of several orders.
type ShipmentsRequest struct {
	OrderIDs    []string `json:"order_ids"`
	Parcel      Parcel   `json:"parcel"`
	Service     string   `json:"service,omitempty"` // "cheapest" or "<carrier>:<service>"
	Reason      string   `json:"reason"`            // ReasonLabel
	LabelFormat string   `json:"label_format,omitempty"`
}

// Shipment is one order's bought label, or its Error with its Status.
type Shipment struct {
	OrderID      string      `json:"order_id"`
	ShipmentID   string      `json:"shipment_id,omitempty"`
	TrackingCode string      `json:"tracking_code,omitempty"`
	Carrier      string      `json:"carrier,omitempty"`
	Service      string      `json:"service,omitempty"`
	Rate         *Price      `json:"rate,omitempty"`
	LabelURL     string      `json:"label_url,omitempty"`
	LabelFormat  string      `json:"label_format,omitempty"`
	Status       int         `json:"status,omitempty"`
	Error        *LabelError `json:"error,omitempty"`
}

// Price is an amount in a currency.
type Price struct {
	Amount   string `json:"amount"`
	Currency string `json:"currency"`
}

// Rates are one order's carrier rates, cheapest first, or its Error.
type Rates struct {
	OrderID string        `json:"order_id"`
	Rates   []CarrierRate `json:"rates,omitempty"`
	Status  int           `json:"status,omitempty"`
	Error   *LabelError   `json:"error,omitempty"`
}

// CarrierRate is one carrier service's price.
type CarrierRate struct {
	Carrier      string `json:"carrier"`
	Service      string `json:"service"`
	Amount       string `json:"amount"`
	Currency     string `json:"currency"`
	DeliveryDays int    `json:"delivery_days,omitempty"`
}

// Refund is a label refund as EasyPost accepted it.
type Refund struct {
	OrderID      string `json:"order_id"`
	ShipmentID   string `json:"shipment_id"`
	TrackingCode string `json:"tracking_code"`
	RefundStatus string `json:"refund_status"`
}

// PendingRequest is an emailed request waiting for a person. Excerpt is
// PII (decrypted with the caller's token): LogValue leaves it out.
type PendingRequest struct {
	ID              string    `json:"id"`
	Sender          string    `json:"sender"`
	DKIM            string    `json:"dkim"`
	Kind            string    `json:"kind"`
	Reason          string    `json:"reason"`
	Provider        string    `json:"provider"`
	ReceivedAt      time.Time `json:"received_at"`
	ExpiresAt       time.Time `json:"expires_at"`
	Excerpt         string    `json:"excerpt"`
	ExcerptWithheld bool      `json:"excerpt_withheld,omitempty"`
	Status          string    `json:"status"`
}

// LogValue names the request only.
func (p PendingRequest) LogValue() slog.Value { return slog.GroupValue(slog.String("id", p.ID)) }

// RequestOutcome is what confirming a pending request did.
type RequestOutcome struct {
	ID       string           `json:"id"`
	Kind     string           `json:"kind"`
	Outcome  string           `json:"outcome"`
	Receipt  *DeletionReceipt `json:"receipt,omitempty"`
	ReportID string           `json:"report_id,omitempty"`
	Mailed   bool             `json:"mailed"`
}

// TrackingLink is the carrier references LinkTracking links (at least one
// of the codes).
type TrackingLink struct {
	Carrier            string `json:"carrier,omitempty"`
	TrackingCode       string `json:"tracking_code,omitempty"`
	EasyPostShipmentID string `json:"easypost_shipment_id,omitempty"`
	EasyPostTrackerID  string `json:"easypost_tracker_id,omitempty"`
}

// TrackingLinked is LinkTracking's answer.
type TrackingLinked struct {
	OrderID string       `json:"order_id"`
	Status  string       `json:"status"`
	Linked  TrackingLink `json:"linked"`
}

// CheckoutSession is a browser checkout session: ClientSecret goes in the
// checkout page, nowhere else.
type CheckoutSession struct {
	SessionID    string    `json:"session_id"`
	ClientSecret string    `json:"client_secret"`
	ExpiresAt    time.Time `json:"expires_at"`
}

// Session is a staff sign-in. Its token never prints.
type Session struct {
	Token     string    `json:"token"`
	Role      string    `json:"role"`
	ExpiresAt time.Time `json:"expires_at"`
}

func (s Session) String() string       { return "session(" + s.Role + ", token [REDACTED])" }
func (s Session) GoString() string     { return s.String() }
func (s Session) LogValue() slog.Value { return slog.StringValue(s.String()) }

// HeldOrder is an order in the fulfillment queue (no PII).
type HeldOrder struct {
	OrderID   string        `json:"order_id"`
	CreatedAt time.Time     `json:"created_at"`
	ExpiresAt time.Time     `json:"expires_at"`
	Label     *PostageLabel `json:"label,omitempty"`
}

// QueuePage is one page of the queue; Next is "" on the last one.
type QueuePage struct {
	Orders []HeldOrder `json:"orders"`
	Next   string      `json:"next,omitempty"`
}

// Label is one order of a pick-list: its shipping data, or its Error.
type Label struct {
	OrderID  string      `json:"order_id"`
	Shipping *Shipping   `json:"shipping,omitempty"`
	Error    *LabelError `json:"error,omitempty"`
}

// LogValue names the order only (see OrderRequest.LogValue).
func (l Label) LogValue() slog.Value { return slog.GroupValue(slog.String("order_id", l.OrderID)) }

// LabelError is why one order of a pick-list has no label (not_found, gone…).
type LabelError struct {
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Detail  map[string]any `json:"detail,omitempty"`
}

// DeletionReceipt is a deletion request's receipt (no email).
type DeletionReceipt struct {
	RequestID   string    `json:"request_id"`
	Orders      []string  `json:"orders"`
	CompletedAt time.Time `json:"completed_at"`
}

// AccessQuery asks for an access report: Email or OrderIDs, not both.
type AccessQuery struct {
	Email    string   `json:"email,omitempty"`
	OrderIDs []string `json:"order_ids,omitempty"`
}

// AccessReport is a customer's access report (GDPR Art. 15).
type AccessReport struct {
	ReportID   string        `json:"report_id"`
	CreatedAt  time.Time     `json:"created_at"`
	Orders     []AccessOrder `json:"orders"`
	Recipients []string      `json:"recipients"`
	Retention  string        `json:"retention"`
	Note       string        `json:"note,omitempty"`
}

// LogValue names the report only: its orders may hold copies of shipping data.
func (r AccessReport) LogValue() slog.Value {
	return slog.GroupValue(slog.String("report_id", r.ReportID))
}

// AccessOrder is one order of an access report.
type AccessOrder struct {
	OrderID     string     `json:"order_id"`
	Status      string     `json:"status"`
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   time.Time  `json:"expires_at"`
	PurgedAt    *time.Time `json:"purged_at"`
	PurgeReason *string    `json:"purge_reason"`
	Reveals     []Reveal   `json:"reveals"`
	// Copy is the held data, in a fresh report only (never stored).
	Copy *Shipping `json:"copy,omitempty"`
}

// LogValue names the order only (see OrderRequest.LogValue).
func (o AccessOrder) LogValue() slog.Value {
	return slog.GroupValue(slog.String("order_id", o.OrderID))
}

// Reveal is one reveal as an access report tells it: when, by which role,
// for which reason; never who.
type Reveal struct {
	Time   time.Time `json:"time"`
	Role   string    `json:"role"`
	Reason string    `json:"reason"`
}

// AuditFilter selects audit entries; zero fields do not filter. After is
// the Next of the previous page.
type AuditFilter struct {
	Actor, OrderID, Action string
	Since, Until           time.Time
	After                  string
	Limit                  int
}

// AuditEntry is one entry of the audit trail.
type AuditEntry struct {
	ID      string            `json:"id,omitempty"`
	Seq     int64             `json:"seq"`
	Time    time.Time         `json:"time"`
	Actor   string            `json:"actor"`
	Action  string            `json:"action"`
	OrderID string            `json:"order_id,omitempty"`
	IP      string            `json:"ip,omitempty"`
	Detail  map[string]string `json:"detail,omitempty"`
	Event   string            `json:"event,omitempty"`
	Prev    string            `json:"prev"`
	Hash    string            `json:"hash"`
	Seal    string            `json:"seal,omitempty"`
}

// AuditPage is one page of the audit trail; Next is "" on the last one.
type AuditPage struct {
	Entries []AuditEntry `json:"entries"`
	Next    string       `json:"next,omitempty"`
	// HotWindowStarts is when the entries still in Redis begin, if older
	// ones were archived.
	HotWindowStarts *time.Time `json:"hot_window_starts,omitempty"`
}

// AuditVerification is the audit chain's state.
type AuditVerification struct {
	Intact      bool  `json:"intact"`
	Entries     int64 `json:"entries"`
	Segments    int   `json:"segments"`
	FirstBroken *struct {
		ID      string `json:"id,omitempty"`
		Segment string `json:"segment,omitempty"`
		Seq     int64  `json:"seq"`
		Reason  string `json:"reason"`
	} `json:"first_broken,omitempty"`
	Begins *struct {
		Seq    int64  `json:"seq"`
		Reason string `json:"reason"`
	} `json:"begins,omitempty"`
}
