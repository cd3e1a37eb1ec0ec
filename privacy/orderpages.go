package privacy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"piivault/audit"
	"piivault/internal/apperr"
	"piivault/mail"
	"piivault/orders"
	"piivault/purge"
)

func sessionOf(c *gin.Context) session {
	s, _ := c.Get(sessionCtx)
	return s.(session)
}

// orderRow is one order as the customer sees it: no PII, no staff name.
type orderRow struct {
	ID          string
	Status      string // held, shipped or deleted
	Held        bool
	Ordered     time.Time
	DestroyBy   time.Time // held: at the latest
	Destroyed   *time.Time
	Why         string // plain words
	LabelBought bool
	Views       []viewRow
}

// viewRow is one time the order's shipping data was viewed.
type viewRow struct {
	Time    time.Time
	Role    string
	Reason  string
	Carrier bool // sent to the carrier for the label
}

// viewReasons are the reveal reasons (orders.RevealReasons and the access
// report's) in plain words.
var viewReasons = map[string]string{
	"label":                    "to print the shipping label",
	"delivery_issue":           "to sort out a delivery problem",
	"customer_contact":         "to contact you",
	"address_check":            "to check the address",
	"fraud_review":             "to check the order for fraud",
	orders.ReasonAccessRequest: "to send you a copy of your data (your access request)",
}

// purgeReasons are the purge reasons in plain words.
var purgeReasons = map[string]string{
	orders.ReasonShipped:         "your parcel shipped",
	orders.ReasonCustomerRequest: "you asked us to delete it",
	orders.ReasonRetention:       "the longest time we keep it was over",
	orders.ReasonRefunded:        "the order was refunded",
	orders.ReasonCanceled:        "the order was canceled",
	orders.ReasonShopRedact:      "the shop asked us to delete it",
	orders.ReasonPaymentFailed:   "the payment failed, so nothing ships",
	orders.ReasonOrderDeleted:    "the shop deleted the order",
}

func statusWord(s orders.Status) string {
	switch s {
	case orders.StatusHeld:
		return "held"
	case orders.StatusShipped:
		return "shipped"
	}
	return "deleted"
}

func rowOf(ref orders.Reference, views []orders.Revealed) orderRow {
	r := orderRow{ID: ref.OrderID, Status: statusWord(ref.Status), Held: ref.Status == orders.StatusHeld,
		Ordered: ref.CreatedAt, DestroyBy: ref.ExpiresAt, Destroyed: ref.PurgedAt, LabelBought: ref.Label != nil}
	if ref.PurgeReason != nil {
		r.Why = purgeReasons[*ref.PurgeReason]
	}
	if !r.Held && r.Why == "" {
		r.Why = "it was no longer needed"
	}
	for _, v := range views {
		why, ok := viewReasons[v.Reason]
		if !ok {
			why = "for a recorded reason (" + v.Reason + ")"
		}
		r.Views = append(r.Views, viewRow{Time: v.Time, Role: v.Role, Reason: why, Carrier: v.DisclosedTo == "easypost"})
	}
	return r
}

// orders lists the customer's orders, newest first, each with its views.
func (h *Handler) orders(c *gin.Context) {
	ctx := c.Request.Context()
	ids, err := h.d.Store.History(ctx, sessionOf(c).Email)
	if err != nil {
		h.fail(c, err)
		return
	}
	refs := make([]orders.Reference, 0, len(ids))
	for _, id := range ids {
		ref, err := h.d.Store.Get(ctx, id)
		if apperr.Is(err, apperr.NotFound) {
			continue
		}
		if err != nil {
			h.fail(c, err)
			return
		}
		refs = append(refs, ref)
	}
	var views map[string][]orders.Revealed
	if len(refs) > 0 {
		found := make([]string, len(refs))
		for i, r := range refs {
			found[i] = r.OrderID
		}
		if views, err = h.d.Store.Reveals(ctx, found); err != nil {
			h.fail(c, err)
			return
		}
	}
	slices.SortFunc(refs, func(a, b orders.Reference) int { return b.CreatedAt.Compare(a.CreatedAt) })
	rows := make([]orderRow, len(refs))
	for i, r := range refs {
		rows[i] = rowOf(r, views[r.OrderID])
	}
	h.render(c, http.StatusOK, "orders", "Your orders", rows)
}

// own returns order id's reference if it is one of email's orders; any
// other id is NotFound, whether or not it exists.
func (h *Handler) own(ctx context.Context, email, id string) (orders.Reference, error) {
	ids, err := h.d.Store.History(ctx, email)
	if err != nil {
		return orders.Reference{}, err
	}
	if !slices.Contains(ids, id) {
		return orders.Reference{}, errNotYours
	}
	ref, err := h.d.Store.Get(ctx, id)
	if apperr.Is(err, apperr.NotFound) {
		return orders.Reference{}, errNotYours
	}
	return ref, err
}

var errNotYours = say(apperr.NotFound, "We hold no such order for your email address.")

// ownHeld is own for a change: the order must still be held.
func (h *Handler) ownHeld(ctx context.Context, email, id string) (orders.Reference, error) {
	ref, err := h.own(ctx, email, id)
	if err == nil && ref.Status != orders.StatusHeld {
		err = apperr.New(apperr.Gone, "already destroyed") // shown as customerText says
	}
	return ref, err
}

type receiptView struct {
	Receipt purge.Receipt
	Emailed bool
}

// deleteOrder deletes a held order's shipping data at the customer's
// request and shows the receipt (also mailed). A repeat finds the order
// deleted (410): no second purge, no second receipt.
func (h *Handler) deleteOrder(c *gin.Context) {
	ctx := c.Request.Context()
	s := sessionOf(c)
	id := c.Param("id")
	if _, err := h.ownHeld(ctx, s.Email, id); err != nil {
		h.fail(c, err)
		return
	}
	if c.PostForm("confirm") != "yes" {
		h.fail(c, say(apperr.Validation, "Please tick the box to confirm that the shipping data should be deleted."))
		return
	}
	r, err := h.d.Deleter.PurgeOrders(ctx, Actor, c.ClientIP(), []string{id}, orders.ReasonCustomerRequest)
	if err != nil {
		h.fail(c, err)
		return
	}
	if len(r.Orders) == 0 {
		h.fail(c, errNotYours)
		return
	}
	h.render(c, http.StatusOK, "deleted", "Deleted", receiptView{Receipt: r, Emailed: h.mailReceipt(ctx, s.Email, r)})
}

// mailReceipt queues the receipt of r to the customer: order ids and the
// time only. Its id comes from the receipt, so it is sent once.
func (h *Handler) mailReceipt(ctx context.Context, to string, r purge.Receipt) bool {
	if h.d.Mail == nil {
		return false
	}
	var b strings.Builder
	b.WriteString("As you asked, we deleted the shipping data of your order")
	if len(r.Orders) > 1 {
		b.WriteString("s")
	}
	b.WriteString(":\n\n")
	for _, id := range r.Orders {
		b.WriteString("  Order " + id + "\n")
	}
	b.WriteString("\nDeleted on " + r.CompletedAt.UTC().Format("2 January 2006 at 15:04 UTC") + ".\n" +
		"Receipt number: " + r.RequestID + "\n\n" +
		"We keep nothing else of it: no name, address, email address or phone number. " +
		"What remains is the order number, its dates and the record of when it was viewed " +
		"(role, reason and date), which hold no personal data.\n")
	// Named by the orders, not the receipt: a double-submitted delete makes
	// two receipts for one deletion, and the outbox sends one mail per id.
	sum := sha256.Sum256([]byte(strings.Join(r.Orders, "\n")))
	id := "privacy-receipt-" + hex.EncodeToString(sum[:16])
	if err := h.d.Mail.Enqueue(ctx, mail.Message{ID: id, To: to, Subject: "Receipt: your shipping data is deleted", Text: b.String()}); err != nil {
		h.d.Log.Warn("privacy receipt mail not queued", "id", id, "err", err)
		return false
	}
	return true
}

// field is one input of the correction form.
type field struct {
	Name, Label, Type, Auto, Pattern, Value string
	Required, Bad                           bool
	Max                                     int
}

// correctFields are the correction form's inputs, in order; their names
// are the API's without "shipping." and "address.".
var correctFields = []field{
	{Name: "name", Label: "Full name", Auto: "name", Required: true, Max: 200},
	{Name: "email", Label: "Email address", Type: "email", Auto: "email", Required: true, Max: 254},
	{Name: "phone", Label: "Phone (optional)", Type: "tel", Auto: "tel", Max: 32},
	{Name: "line1", Label: "Address line 1", Auto: "address-line1", Required: true, Max: 200},
	{Name: "line2", Label: "Address line 2 (optional)", Auto: "address-line2", Max: 200},
	{Name: "city", Label: "Town or city", Auto: "address-level2", Required: true, Max: 100},
	{Name: "state", Label: "State, county or region (optional)", Auto: "address-level1", Max: 100},
	{Name: "postal_code", Label: "Postal code", Auto: "postal-code", Max: 20},
	{Name: "country", Label: "Country: 2-letter code, such as US, GB or DE", Auto: "country", Required: true, Max: 2, Pattern: "[A-Za-z]{2}"},
}

type correctView struct {
	OrderID string
	Fields  []field
	Bad     []string // labels of the fields to fix
}

// correctForm is an empty form: nothing is revealed to fill it.
func (h *Handler) correctForm(c *gin.Context) {
	ref, err := h.ownHeld(c.Request.Context(), sessionOf(c).Email, c.Param("id"))
	if err != nil {
		h.fail(c, err)
		return
	}
	if ref.Label != nil {
		h.fail(c, apperr.New(apperr.LabelBought, "label bought")) // shown as customerText says
		return
	}
	h.render(c, http.StatusOK, "correct", "Correct order "+ref.OrderID,
		correctView{OrderID: ref.OrderID, Fields: slices.Clone(correctFields)})
}

type correctedView struct {
	Ref        orders.Reference
	EmailMoved bool
}

// correct replaces the order's shipping data with what the customer typed,
// through the audited correction (actor customer:privacy, channel privacy,
// no email in the entry). A validation error shows the form again, filled
// with what they typed (their own input on their own screen), the fields
// to fix named.
//
// When the corrected email differs from the signed-in one, the session
// stays with the signed-in email: it is the one the customer proved to
// own. Following the new one would let anyone signed in move an order to
// someone else's address and then read that person's orders. The order
// leaves this list (it now belongs to the new address, which can sign in
// by itself), and the page says so.
func (h *Handler) correct(c *gin.Context) {
	ctx := c.Request.Context()
	s := sessionOf(c)
	id := c.Param("id")
	if _, err := h.ownHeld(ctx, s.Email, id); err != nil {
		h.fail(c, err)
		return
	}
	fields := slices.Clone(correctFields)
	vals := map[string]string{}
	for i := range fields {
		v := strings.TrimSpace(c.PostForm(fields[i].Name))
		if fields[i].Name == "country" {
			v = strings.ToUpper(v)
		}
		fields[i].Value, vals[fields[i].Name] = v, v
	}
	ship := orders.Shipping{Name: vals["name"], Email: vals["email"], Phone: vals["phone"], Address: orders.Address{
		Line1: vals["line1"], Line2: vals["line2"], City: vals["city"], State: vals["state"],
		PostalCode: vals["postal_code"], Country: vals["country"]}}
	e := audit.Entry{Actor: Actor, IP: c.ClientIP(), Detail: map[string]string{"channel": "privacy"}}
	ref, err := h.d.Store.RectifyAudited(ctx, id, ship, e)
	if err = orders.LogDeferred(h.d.Log, id, err); err != nil {
		if bad := apperr.Fields(err); apperr.Is(err, apperr.Validation) && len(bad) > 0 {
			v := correctView{OrderID: id, Fields: fields}
			for i := range v.Fields {
				if slices.ContainsFunc(bad, func(f string) bool { return formName(f) == v.Fields[i].Name }) {
					v.Fields[i].Bad = true
					v.Bad = append(v.Bad, v.Fields[i].Label)
				}
			}
			h.render(c, http.StatusUnprocessableEntity, "correct", "Correct order "+id, v)
			return
		}
		h.fail(c, err)
		return
	}
	if ref.OrderID == "" { // only its audit entry waited: the correction is made
		ref.OrderID = id
	}
	moved := orders.NormalizeEmail(ship.Email) != orders.NormalizeEmail(s.Email)
	h.render(c, http.StatusOK, "corrected", "Corrected", correctedView{Ref: ref, EmailMoved: moved})
}

// formName is an API field name ("shipping.address.city") as the form's.
func formName(apiField string) string {
	return strings.TrimPrefix(strings.TrimPrefix(apiField, "shipping."), "address.")
}
