package console

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/gin-gonic/gin"

	"piivault/audit"
	"piivault/compliance"
	"piivault/internal/apperr"
	"piivault/internal/web"
	"piivault/orders"
	"piivault/postage"
	"piivault/purge"
	"piivault/requests"
	"piivault/vault"
)

// home sends each role to its first page.
func (h *Handler) home(c *gin.Context) {
	p, _ := principal(c)
	c.Redirect(http.StatusSeeOther, h.navFor(p.Role)[0].Href)
}

type loginView struct {
	Username string
	Message  string
	Ended    bool
	// UseHTTPS is the console's HTTPS address when this page came over
	// plain HTTP that sign-in refuses (httpsNotice): the page says so and
	// shows no form to type a password into.
	UseHTTPS string
}

func (h *Handler) loginPage(c *gin.Context) {
	h.render(c, http.StatusOK, "login", "Sign in", loginView{Ended: c.Query("ended") != "", UseHTTPS: h.httpsNotice(c)})
}

// login signs in with username, password and TOTP code through the same
// flow as the API (lockdown, attempts counted per IP, audit), then seals
// the token into the session cookie. Over plain HTTP behind an https
// PIIVAULT_PUBLIC_URL it refuses before anything reaches Vault, and says
// where to go instead.
func (h *Handler) login(c *gin.Context) {
	if to := h.httpsNotice(c); to != "" {
		h.render(c, http.StatusForbidden, "login", "Sign in", loginView{UseHTTPS: to})
		return
	}
	if !h.sameOrigin(c) {
		h.fail(c, apperr.New(apperr.Forbidden, "this form did not come from the console"))
		return
	}
	user := strings.TrimSpace(c.PostForm("username"))
	sess, err := h.Staff.Attempt(c.Request.Context(), c.ClientIP(), user, c.PostForm("password"), strings.TrimSpace(c.PostForm("totp")))
	if err != nil {
		d := web.DetailOf(err)
		msg := d.Message
		if d.Code == apperr.Unauthorized {
			msg = "That did not work. Check your username, password and the current code from your authenticator app."
		}
		h.render(c, web.Status(d.Code), "login", "Sign in", loginView{Username: user, Message: msg})
		return
	}
	now := h.Now()
	if err := h.setCookie(c, session{Token: sess.Token, CSRF: randomToken(), Seen: now.Unix(), Expires: sess.ExpiresAt.Unix()}); err != nil {
		h.fail(c, err)
		return
	}
	c.Redirect(http.StatusSeeOther, "/console/")
}

// logout revokes the token in Vault and drops the cookie.
func (h *Handler) logout(c *gin.Context) {
	p, _ := principal(c)
	if err := h.Staff.End(c.Request.Context(), p, c.ClientIP()); err != nil {
		h.fail(c, err)
		return
	}
	h.clearCookie(c)
	c.Redirect(http.StatusSeeOther, "/console/login")
}

type queueView struct {
	Orders   []orders.Held
	Next     string
	First    bool
	Postage  bool
	Presets  any
	Services any
}

// queue lists held orders oldest first, 50 a page, no PII.
func (h *Handler) queue(c *gin.Context) {
	afterMS, afterID, err := orders.ParseQueueCursor(c.Query("after"), time.Now())
	if err != nil {
		h.fail(c, err)
		return
	}
	const limit = 50
	items, err := h.Store.Oldest(c.Request.Context(), afterMS, afterID, limit)
	if err != nil {
		h.fail(c, err)
		return
	}
	v := queueView{Orders: items, First: c.Query("after") == "", Postage: h.Postage != nil,
		Presets: parcelPresets, Services: shipmentServices}
	if len(items) == limit {
		v.Next = orders.QueueCursor(items[len(items)-1])
	}
	h.render(c, http.StatusOK, "queue", "Fulfillment queue", v)
}

// lookup goes to an order by id (an id is not PII).
func (h *Handler) lookup(c *gin.Context) {
	id := strings.TrimSpace(c.Query("order_id"))
	if id == "" {
		h.render(c, http.StatusOK, "lookup", "Look up an order", nil)
		return
	}
	if !orders.ValidOrderID(id) {
		h.fail(c, apperr.New(apperr.NotFound, "no such order"))
		return
	}
	c.Redirect(http.StatusSeeOther, "/console/orders/"+url.PathEscape(id))
}

type orderView struct {
	Ref   orders.Reference
	Ship  *orders.Shipping
	View  string
	HideS int
}

func (h *Handler) order(c *gin.Context) {
	ref, err := h.Store.Get(c.Request.Context(), c.Param("id"))
	if err != nil {
		h.fail(c, err)
		return
	}
	h.render(c, http.StatusOK, "order", "Order "+ref.OrderID, orderView{Ref: ref})
}

// reveal shows the shipping block once, as the answer to the form (never
// in a URL); the page hides it again after 60 seconds.
func (h *Handler) reveal(c *gin.Context) {
	p, _ := principal(c)
	ctx := c.Request.Context()
	ship, view, err := h.Orders.Reveal(ctx, p, c.ClientIP(), c.Param("id"), c.PostForm("reason"))
	if err != nil {
		h.fail(c, err)
		return
	}
	ref, err := h.Store.Get(ctx, c.Param("id"))
	if err != nil {
		h.fail(c, err)
		return
	}
	h.render(c, http.StatusOK, "order", "Order "+ref.OrderID, orderView{Ref: ref, Ship: &ship, View: view, HideS: 60})
}

func (h *Handler) purgeAndBack(c *gin.Context, reason, done string) {
	p, _ := principal(c)
	id := c.Param("id")
	if _, err := h.Purger.Purge(c.Request.Context(), p.Actor(), c.ClientIP(), id, reason); err != nil {
		h.fail(c, err)
		return
	}
	c.Redirect(http.StatusSeeOther, "/console/orders/"+url.PathEscape(id)+"?done="+done)
}

func (h *Handler) shipped(c *gin.Context) { h.purgeAndBack(c, orders.ReasonShipped, "shipped") }

// refundLabel asks EasyPost to refund the order's label, bought by
// mistake and not yet used; the order stays held, without a label.
func (h *Handler) refundLabel(c *gin.Context) {
	if h.Postage == nil {
		h.fail(c, apperr.New(apperr.NotConfigured, "label buying is not configured"))
		return
	}
	p, _ := principal(c)
	id := c.Param("id")
	if _, err := h.Postage.Refund(c.Request.Context(), p, c.ClientIP(), id); err != nil {
		h.fail(c, err)
		return
	}
	c.Redirect(http.StatusSeeOther, "/console/orders/"+url.PathEscape(id)+"?done=refunded")
}
func (h *Handler) deletePII(c *gin.Context) {
	h.purgeAndBack(c, orders.ReasonCustomerRequest, "deleted")
}

type labelsView struct {
	Labels []orders.LabelResult
	Count  int
}

// labels prints the selected orders as 4×6 labels, decrypted in one call.
func (h *Handler) labels(c *gin.Context) {
	p, _ := principal(c)
	ids := c.PostFormArray("order_id")
	out, err := h.Orders.PickList(c.Request.Context(), p, c.ClientIP(), ids, c.DefaultPostForm("reason", "label"))
	if err != nil {
		h.fail(c, err)
		return
	}
	n := 0
	for _, l := range out {
		if l.Shipping != nil {
			n++
		}
	}
	h.render(c, http.StatusOK, "labels", "Labels", labelsView{Labels: out, Count: n})
}

type deletionsView struct {
	Receipts []purge.Receipt
	Done     *purge.Receipt
	// Emailed requests waiting for a person (nil when inbound email is off).
	Pending  []requests.Pending
	Inbound  bool
	Outcome  *requests.Outcome
	Rejected string
}

func (h *Handler) deletions(c *gin.Context) {
	h.renderDeletions(c, http.StatusOK, deletionsView{})
}

// renderDeletions shows the deletions page with v's news: receipts and
// the emailed requests waiting, their excerpts decrypted with the
// member's own token.
func (h *Handler) renderDeletions(c *gin.Context, status int, v deletionsView) {
	ctx := c.Request.Context()
	rs, err := h.Deletions.Recent(ctx, 50)
	if err != nil {
		h.fail(c, err)
		return
	}
	v.Receipts = rs
	if h.Requests != nil && h.Requests.Enabled() {
		p, _ := principal(c)
		v.Inbound = true
		if v.Pending, err = h.Requests.List(ctx, p); err != nil {
			h.fail(c, err)
			return
		}
	}
	h.render(c, status, "deletions", "Deletion requests", v)
}

// confirmRequest runs an emailed request a person checked.
func (h *Handler) confirmRequest(c *gin.Context) {
	if h.Requests == nil {
		h.fail(c, apperr.New(apperr.NotConfigured, "emailed requests are not configured"))
		return
	}
	p, _ := principal(c)
	o, err := h.Requests.ConfirmRequest(c.Request.Context(), p, c.ClientIP(), c.Param("id"))
	if err != nil {
		h.fail(c, err)
		return
	}
	h.renderDeletions(c, http.StatusOK, deletionsView{Outcome: &o, Done: o.Receipt})
}

// rejectRequest closes an emailed request without running it.
func (h *Handler) rejectRequest(c *gin.Context) {
	if h.Requests == nil {
		h.fail(c, apperr.New(apperr.NotConfigured, "emailed requests are not configured"))
		return
	}
	p, _ := principal(c)
	id := c.Param("id")
	if err := h.Requests.RejectRequest(c.Request.Context(), p, c.ClientIP(), id); err != nil {
		h.fail(c, err)
		return
	}
	h.renderDeletions(c, http.StatusOK, deletionsView{Rejected: id})
}

// deletionRequest purges every order of the email posted; the email goes
// no further than the blind index and is on no page after.
func (h *Handler) deletionRequest(c *gin.Context) {
	p, _ := principal(c)
	ctx := c.Request.Context()
	r, err := h.Deletions.Request(ctx, p.Actor(), c.ClientIP(), c.PostForm("email"))
	if err != nil {
		h.fail(c, err)
		return
	}
	h.renderDeletions(c, http.StatusCreated, deletionsView{Done: &r})
}

func (h *Handler) accessForm(c *gin.Context) {
	h.render(c, http.StatusOK, "access", "Access reports", (*compliance.AccessReport)(nil))
}

// accessReport shows the customer's access report, print-friendly.
func (h *Handler) accessReport(c *gin.Context) {
	p, _ := principal(c)
	q := compliance.AccessQuery{Email: strings.TrimSpace(c.PostForm("email"))}
	if ids := strings.FieldsFunc(c.PostForm("order_ids"), func(r rune) bool { return r == ',' || unicode.IsSpace(r) }); len(ids) > 0 || q.Email == "" {
		q.OrderIDs = ids
	}
	rep, err := h.Reports.Access(c.Request.Context(), p.Actor(), c.ClientIP(), q, h.Orders, &p)
	if err != nil {
		h.fail(c, err)
		return
	}
	h.render(c, http.StatusCreated, "access", "Access report", &rep)
}

type auditView struct {
	Page   audit.Page
	Verify audit.Verification
	F      audit.Filter
	Next   string
}

func (h *Handler) audit(c *gin.Context) {
	ctx := c.Request.Context()
	f := audit.Filter{Actor: c.Query("actor"), Action: c.Query("action"), OrderID: c.Query("order_id"), Limit: 50,
		After: c.Query("after")}
	page, err := h.Trail.List(ctx, f) // validates the cursor, as for the API
	if err != nil {
		h.fail(c, err)
		return
	}
	v, err := h.Trail.Verify(ctx)
	if err != nil {
		h.fail(c, err)
		return
	}
	next := ""
	if page.Next != "" {
		q := url.Values{"after": {page.Next}, "actor": {f.Actor}, "action": {f.Action}, "order_id": {f.OrderID}}
		next = "/console/audit?" + q.Encode()
	}
	h.render(c, http.StatusOK, "audit", "Audit trail", auditView{Page: page, Verify: v, F: f, Next: next})
}

type retentionView struct {
	R     compliance.Retention
	Chart chart
}

func (h *Handler) retention(c *gin.Context) {
	r, err := h.Reports.Retention(c.Request.Context())
	if err != nil {
		h.fail(c, err)
		return
	}
	h.render(c, http.StatusOK, "retention", "Proof of retention", retentionView{R: r, Chart: histogram(r.AgeHistogram)})
}

type scopeView struct {
	From, To string
	S        *compliance.Scope
}

func (h *Handler) scope(c *gin.Context) {
	v := scopeView{From: c.Query("from"), To: c.Query("to")}
	if v.From == "" {
		h.render(c, http.StatusOK, "scope", "Breach scope", v)
		return
	}
	// The form's datetime-local fields are UTC.
	parse := func(s string) (time.Time, error) {
		if t, err := time.Parse(time.RFC3339, s); err == nil {
			return t, nil
		}
		return time.Parse("2006-01-02T15:04", s)
	}
	from, err1 := parse(v.From)
	to, err2 := time.Now(), error(nil)
	if v.To != "" {
		to, err2 = parse(v.To)
	}
	if err1 != nil || err2 != nil || to.Before(from) {
		h.fail(c, &apperr.Error{Code: apperr.Validation, Message: "from and to must be times, from before to", Fields: []string{"from", "to"}})
		return
	}
	s, err := h.Reports.Scope(c.Request.Context(), from, to)
	if err != nil {
		h.fail(c, err)
		return
	}
	v.S = &s
	h.render(c, http.StatusOK, "scope", "Breach scope", v)
}

func (h *Handler) blocks(c *gin.Context) {
	bs, err := h.Blocks.Blocks(c.Request.Context())
	if err != nil {
		h.fail(c, err)
		return
	}
	h.render(c, http.StatusOK, "blocks", "Blocked addresses", bs)
}

func (h *Handler) liftBlock(c *gin.Context) {
	p, _ := principal(c)
	if err := h.Blocks.Unblock(c.Request.Context(), p.Actor(), c.PostForm("ip"), c.ClientIP()); err != nil {
		h.fail(c, err)
		return
	}
	c.Redirect(http.StatusSeeOther, "/console/blocks?done=lifted")
}

func (h *Handler) lockdownPage(c *gin.Context) {
	s, err := h.Lockdown.Status(c.Request.Context())
	if err != nil {
		h.fail(c, err)
		return
	}
	h.render(c, http.StatusOK, "lockdown", "Lockdown", s)
}

// setLockdown turns the lockdown on or off; turning it on needs the
// confirmation box, and ends every staff session, this one included.
func (h *Handler) setLockdown(c *gin.Context) {
	p, _ := principal(c)
	on := c.PostForm("on") == "true"
	if on && c.PostForm("confirm") != "yes" {
		h.fail(c, &apperr.Error{Code: apperr.Validation, Fields: []string{"confirm"},
			Message: "tick the box to confirm: a lockdown ends every staff session, yours included"})
		return
	}
	if _, err := h.Lockdown.Set(c.Request.Context(), on, p.Actor(), c.ClientIP()); err != nil {
		h.fail(c, err)
		return
	}
	if on {
		h.clearCookie(c)
		c.Redirect(http.StatusSeeOther, "/console/login?ended=1")
		return
	}
	c.Redirect(http.StatusSeeOther, "/console/lockdown")
}

func (h *Handler) staff(c *gin.Context) {
	ms, err := h.StaffList.ListStaff(c.Request.Context())
	if err != nil {
		h.fail(c, err)
		return
	}
	if ms == nil {
		ms = []vault.StaffMember{}
	}
	h.render(c, http.StatusOK, "staff", "Staff", ms)
}

// chart is the retention histogram, drawn as inline SVG on the server.
type chart struct {
	Width, Height int
	Bars          []bar
	Max           int64
	LimitX        int
}

type bar struct {
	X, Y, W, H int
	Day        int
	Label      string
	Count      int64
	Tick       bool
}

func histogram(buckets []compliance.AgeBucket) chart {
	const w, hgt, pad = 720, 200, 24
	ch := chart{Width: w, Height: hgt + pad*2}
	for _, b := range buckets {
		if b.Orders > ch.Max {
			ch.Max = b.Orders
		}
	}
	n := len(buckets)
	if n == 0 {
		return ch
	}
	bw := (w - pad*2) / n
	for i, b := range buckets {
		bh := 0
		if ch.Max > 0 {
			bh = int(int64(hgt) * b.Orders / ch.Max)
		}
		if b.Orders > 0 && bh < 2 {
			bh = 2
		}
		ch.Bars = append(ch.Bars, bar{X: pad + i*bw + 1, Y: pad + hgt - bh, W: bw - 2, H: bh, Count: b.Orders, Day: b.FromDay,
			Label: fmt.Sprintf("%d–%d days: %d", b.FromDay, b.ToDay, b.Orders), Tick: b.FromDay%5 == 0})
	}
	ch.LimitX = pad + n*bw
	return ch
}

// parcelPresets are the parcels the queue offers (inches, ounces): a
// member picks one instead of typing sizes.
var parcelPresets = []struct {
	Key, Label string
	Parcel     postage.Parcel
}{
	{"mailer", "Padded mailer · 10×13×1 in · 8 oz", postage.Parcel{Length: 13, Width: 10, Height: 1, Weight: 8}},
	{"small", "Small box · 9×6×3 in · 1 lb", postage.Parcel{Length: 9, Width: 6, Height: 3, Weight: 16}},
	{"medium", "Medium box · 12×10×6 in · 3 lb", postage.Parcel{Length: 12, Width: 10, Height: 6, Weight: 48}},
	{"large", "Large box · 18×14×8 in · 8 lb", postage.Parcel{Length: 18, Width: 14, Height: 8, Weight: 128}},
}

// shipmentServices are the services the queue offers; "cheapest" lets
// EasyPost's lowest rate decide.
var shipmentServices = []struct{ Value, Label string }{
	{"cheapest", "Cheapest rate"},
	{"USPS:GroundAdvantage", "USPS Ground Advantage"},
	{"USPS:Priority", "USPS Priority"},
	{"USPS:Express", "USPS Priority Express"},
	{"UPS:Ground", "UPS Ground"},
}

type shipmentsView struct {
	Shipments []postage.Shipment
	Bought    int
}

// shipments buys labels for the selected orders through EasyPost: the
// addresses go from Vault to EasyPost without being shown; the page lists
// tracking codes and errors, and prints the carrier's label images (one
// per 4×6 page) without showing them on screen.
func (h *Handler) shipments(c *gin.Context) {
	if h.Postage == nil {
		h.fail(c, apperr.New(apperr.NotConfigured, "label buying is not configured"))
		return
	}
	p, _ := principal(c)
	req := postage.Request{OrderIDs: c.PostFormArray("order_id"), Service: c.PostForm("service"),
		Reason: "label", LabelFormat: "PNG"}
	preset := c.PostForm("parcel")
	for _, pr := range parcelPresets {
		if pr.Key == preset {
			req.Parcel = pr.Parcel
		}
	}
	out, err := h.Postage.Buy(c.Request.Context(), p, c.ClientIP(), req)
	if err != nil {
		h.fail(c, err)
		return
	}
	n := 0
	for _, s := range out {
		if s.Error == nil {
			n++
		}
	}
	h.render(c, http.StatusOK, "shipments", "Labels bought", shipmentsView{Shipments: out, Bought: n})
}

// labelImage serves one bought label's image for printing (a reveal).
func (h *Handler) labelImage(c *gin.Context) {
	if h.Postage == nil {
		h.fail(c, apperr.New(apperr.NotConfigured, "label buying is not configured"))
		return
	}
	p, _ := principal(c)
	img, err := h.Postage.LabelImage(c.Request.Context(), p, c.ClientIP(), c.Param("id"))
	if err != nil {
		d := web.DetailOf(err)
		c.AbortWithStatus(web.Status(d.Code))
		return
	}
	c.Data(http.StatusOK, "image/png", img)
}

type correctView struct {
	OrderID string
	Ship    orders.Shipping // what the member typed, after a refusal; empty at first
	Error   string
}

// correctForm shows an empty address form: nothing is revealed to fill it.
func (h *Handler) correctForm(c *gin.Context) {
	ref, err := h.Store.Get(c.Request.Context(), c.Param("id"))
	if err != nil {
		h.fail(c, err)
		return
	}
	h.render(c, http.StatusOK, "correct", "Correct an address", correctView{OrderID: ref.OrderID})
}

// correct replaces a held order's address with the one typed (a support
// member acting on a customer's email).
func (h *Handler) correct(c *gin.Context) {
	p, _ := principal(c)
	id := c.Param("id")
	ship := orders.Shipping{Name: strings.TrimSpace(c.PostForm("name")), Email: strings.TrimSpace(c.PostForm("email")),
		Phone: strings.TrimSpace(c.PostForm("phone")), Address: orders.Address{
			Line1: strings.TrimSpace(c.PostForm("line1")), Line2: strings.TrimSpace(c.PostForm("line2")),
			City: strings.TrimSpace(c.PostForm("city")), State: strings.TrimSpace(c.PostForm("state")),
			PostalCode: strings.TrimSpace(c.PostForm("postal_code")), Country: strings.ToUpper(strings.TrimSpace(c.PostForm("country")))}}
	_, err := h.Store.RectifyAudited(c.Request.Context(), id, ship,
		audit.Entry{Actor: p.Actor(), IP: c.ClientIP(), Detail: map[string]string{"channel": "console"}})
	if err = orders.LogDeferred(h.Log, id, err); err != nil {
		if apperr.Is(err, apperr.Validation) {
			// The member's own typing comes back to fix it; nothing stored is shown.
			h.render(c, http.StatusUnprocessableEntity, "correct", "Correct an address",
				correctView{OrderID: id, Ship: ship, Error: "Please check the " + fieldNames(web.DetailOf(err).Fields) + "."})
			return
		}
		h.fail(c, err)
		return
	}
	c.Redirect(http.StatusSeeOther, "/console/orders/"+url.PathEscape(id)+"?done=corrected")
}

// fieldLabels are the correction form's labels of a request's field names.
var fieldLabels = map[string]string{
	"shipping.name": "name", "shipping.email": "email", "shipping.phone": "phone",
	"shipping.address.line1": "street and number", "shipping.address.line2": "apartment or floor",
	"shipping.address.city": "city", "shipping.address.state": "state or region",
	"shipping.address.postal_code": "postal code", "shipping.address.country": "country (two letters, e.g. US or DE)",
}

func fieldNames(fields []string) string {
	out := make([]string, len(fields))
	for i, f := range fields {
		if out[i] = fieldLabels[f]; out[i] == "" {
			out[i] = f
		}
	}
	return strings.Join(out, ", ")
}
