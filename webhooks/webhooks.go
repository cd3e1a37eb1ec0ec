// Package webhooks turns providers' events into purges (and, for Stripe
// Checkout, into stored orders). Every handler reads the raw body once,
// size-limited, verifies its signature before parsing anything, and runs
// each event id at most once:
//
//	piivault:{wh}:<provider>:<event id>   string  "processing" (20 s lease) then "done" (kept 14 days,
//	                                              longer than any provider retries)
//	piivault:{wh}:track:<kind>:<id>       string  order id of a carrier tracking code, an EasyPost shipment
//	                                              or tracker (45 days), linked by the storefront or learnt
//	                                              from a Shipment event
//
// Decisions come from signed content only: an event changes the order its
// own payment or shipment belongs to, and an unsigned header (Shopify's
// topic) can stop an action, never cause one. A shipping or cancellation
// event for an order not stored yet leaves a tombstone (orders.Tombstone),
// so the store that follows is refused.
//
// A webhook whose secret is not configured answers 404: the endpoint does
// not exist for this deployment. Bodies are never logged.
package webhooks

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/redis/go-redis/v9"

	"piivault/audit"
	"piivault/internal/apperr"
	"piivault/internal/redispipe"
	"piivault/internal/web"
	"piivault/orders"
	"piivault/purge"
	"piivault/tracking"
)

// MaxBody bounds webhook bodies; provider events are larger than our API's.
const MaxBody = 256 << 10

// RememberFor is how long a processed event id is remembered.
const RememberFor = 14 * 24 * time.Hour

var events = promauto.NewCounterVec(prometheus.CounterOpts{
	Name: "piivault_webhook_events_total", Help: "Webhook deliveries by provider and outcome.",
}, []string{"provider", "outcome"})

// Secrets are the providers' signing secrets; an empty one disables its endpoint.
type Secrets struct {
	Stripe   []string // several during a secret roll
	Shopify  string
	EasyPost string
	Shipping string
}

// Orders is what webhooks need from the order store.
type Orders interface {
	Get(ctx context.Context, orderID string) (orders.Reference, error)
	StoreAudited(ctx context.Context, req orders.Request, e audit.Entry) (orders.Receipt, orders.StoreResult, error)
	FindByEmail(ctx context.Context, email string) ([]string, error)
	FindByPaymentRef(ctx context.Context, ref string) ([]string, error)
	FindByShop(ctx context.Context, domain string) ([]string, error)
	Tombstone(ctx context.Context, orderID, reason, paymentRef, actor string) (bool, error)
}

// Notifier sends an operator alert without blocking.
type Notifier interface {
	Notify(kind, text string)
}

// AccessReporter makes a customer's access report (Shopify's
// customers/data_request): what is held, what was revealed and when.
type AccessReporter interface {
	AccessReport(ctx context.Context, actor, ip, email string) (string, error)
}

// Purger purges one order on behalf of an actor; PurgePaid only if the
// order was stored with one of payments (orders.ErrOtherPayment if not).
type Purger interface {
	PurgePaid(ctx context.Context, actor, ip, orderID, reason string, payments []string) (bool, error)
}

// BulkPurger purges many orders and keeps a receipt (customer redaction).
type BulkPurger interface {
	PurgeOrders(ctx context.Context, actor, ip string, ids []string, reason string) (purge.Receipt, error)
}

// Recorder appends to the audit trail.
type Recorder interface {
	Record(ctx context.Context, e audit.Entry) error
}

// SignatureWatcher is told about bad signatures (the intrusion monitor).
type SignatureWatcher interface {
	BadSignature(ctx context.Context, provider string)
}

// Handler serves the webhook endpoints.
type Handler struct {
	links     tracking.Links
	alerts    Notifier
	reports   AccessReporter
	secrets   Secrets
	orders    Orders
	purger    Purger
	bulk      BulkPurger
	audit     Recorder
	watch     SignatureWatcher
	rdb       redis.UniversalClient
	pipe      *redispipe.Shared // an event's claim and its "done", shared with other requests' round trips
	log       *slog.Logger
	write     func(*gin.Context, error)
	now       func() time.Time
	tolerance time.Duration
	easypost  ShipmentLookup
}

// ShipmentLookup finds an EasyPost shipment's reference through EasyPost's
// API (postage.References).
type ShipmentLookup interface {
	ShipmentReference(ctx context.Context, shipmentID string) (string, error)
}

// Deps are a Handler's collaborators.
type Deps struct {
	Secrets Secrets
	Orders  Orders
	Purger  Purger
	Bulk    BulkPurger
	Audit   Recorder
	Watch   SignatureWatcher
	Redis   redis.UniversalClient
	// Pipe shares an event's claim and its "done" with other requests'
	// round trips; nil: the handler makes its own.
	Pipe  *redispipe.Shared
	Log   *slog.Logger
	Write func(*gin.Context, error)
	// EasyPost, when set, looks up the order of tracker events that name
	// only a shipment piivault has not seen.
	EasyPost ShipmentLookup
	Alerts   Notifier
	Reports  AccessReporter
}

// NewHandler builds a Handler.
func NewHandler(d Deps) *Handler {
	if d.Pipe == nil {
		d.Pipe = redispipe.New(d.Redis, redispipe.Config{})
	}
	return &Handler{secrets: d.Secrets, orders: d.Orders, purger: d.Purger, bulk: d.Bulk, audit: d.Audit,
		watch: d.Watch, rdb: d.Redis, pipe: d.Pipe, log: d.Log, write: d.Write, now: time.Now, tolerance: 5 * time.Minute,
		easypost: d.EasyPost, alerts: d.Alerts, reports: d.Reports, links: tracking.NewLinks(d.Redis)}
}

var (
	errNotConfigured = apperr.New(apperr.NotConfigured, "no such endpoint")
	errBadSignature  = apperr.New(apperr.Unauthorized, "invalid or missing signature")
	errStale         = apperr.New(apperr.StaleEvent, "event timestamp is outside the tolerance")
	errInProgress    = apperr.New(apperr.Conflict, "this event is being processed; retry later")
)

// processingLease is how long an event is marked as being processed. The
// act gets half of it, so a lease never ends under a running act (no event
// runs twice at once); and a marker whose "done" never came (its instance
// died, or a Redis failover kept the one and lost the other) holds the
// provider's retries off (409) for 20 s at most, not for minutes.
const processingLease = 20 * time.Second

// delivery is one verified event to act on.
type delivery struct {
	provider string
	eventID  string
	// act performs the event; it returns the outcome for metrics ("purged",
	// "stored", "ignored", "unknown_order", ...).
	act func(ctx context.Context) (string, error)
}

// run executes a verified delivery once per event id and answers it.
func (h *Handler) run(c *gin.Context, d delivery) {
	ctx := c.Request.Context()
	key := "piivault:{wh}:" + d.provider + ":" + d.eventID
	var claim *redis.BoolCmd
	err := h.pipe.Do(ctx, func(p redis.Pipeliner) { claim = p.SetNX(ctx, key, "processing", processingLease) })
	var ok bool
	if err == nil {
		ok, err = claim.Result()
	}
	if err != nil {
		h.write(c, apperr.Wrap(apperr.StoreUnavailable, err, "the store is unavailable"))
		return
	}
	if !ok {
		state, _ := h.rdb.Get(ctx, key).Result()
		if state == "done" {
			events.WithLabelValues(d.provider, "replay").Inc()
			c.JSON(http.StatusOK, gin.H{"received": true, "duplicate": true})
			return
		}
		h.write(c, errInProgress)
		return
	}
	actCtx, cancel := context.WithTimeout(ctx, processingLease/2)
	outcome, err := d.act(actCtx)
	cancel()
	if err != nil {
		// Forget the event so the provider's retry runs it again.
		h.rdb.Del(context.WithoutCancel(ctx), key)
		events.WithLabelValues(d.provider, "failed").Inc()
		h.write(c, err)
		return
	}
	var done *redis.StatusCmd
	err = h.pipe.Do(ctx, func(p redis.Pipeliner) { done = p.Set(ctx, key, "done", RememberFor) })
	if err == nil {
		err = done.Err()
	}
	if err != nil {
		h.log.Warn("webhook event not remembered", "provider", d.provider, "err", err)
	}
	events.WithLabelValues(d.provider, outcome).Inc()
	c.JSON(http.StatusOK, gin.H{"received": true, "outcome": outcome})
}

// purge purges one order for a provider. With payments, the event is bound
// to them (a Stripe refund or cancellation): the order is purged only if it
// was stored with one of them, compared inside the purge's atomic step, so
// however a store interleaves with the event no other payment's order is
// touched ("other_payment"). An order not stored yet gets a tombstone
// (bound to the first payment when given), so its store, if it comes, is
// refused: a parcel that shipped or an order cancelled before piivault saw
// it must not leave its address behind for 30 days.
func (h *Handler) purge(ctx context.Context, provider, ip, orderID, reason string, payments ...string) (string, error) {
	if orderID == "" || !orders.ValidOrderID(orderID) {
		return "unknown_order", nil
	}
	actor := "webhook:" + provider
	tombPayment := ""
	if len(payments) > 0 {
		tombPayment = payments[0]
	}
	for attempt := 0; attempt < 2; attempt++ {
		done, err := h.purger.PurgePaid(ctx, actor, ip, orderID, reason, payments)
		switch {
		case errors.Is(err, orders.ErrOtherPayment):
			h.log.Info("event concerns another payment of the order; ignored", "provider", provider, "order_id", orderID)
			return "other_payment", nil
		case apperr.Is(err, apperr.NotFound):
			tombed, err := h.orders.Tombstone(ctx, orderID, reason, tombPayment, actor)
			if err != nil {
				return "", err
			}
			if tombed {
				return "tombstoned", nil
			}
			continue // stored in between: purge it, payment still checked
		case err != nil:
			return "", err
		case !done:
			return "already_purged", nil
		}
		return "purged", nil
	}
	return "", apperr.New(apperr.Conflict, "the order changed while the event was applied; retry")
}

// conflict records an event that would have changed an order it does not
// belong to: nothing changes, and the operator hears of it in the log, an
// alert and the audit trail (no PII: order id, provider and what clashed).
func (h *Handler) conflict(ctx context.Context, provider, ip, orderID, what string) (string, error) {
	h.log.Warn("webhook event conflicts with a stored order; nothing changed",
		"provider", provider, "order_id", orderID, "conflict", what)
	if h.alerts != nil {
		h.alerts.Notify("webhook_conflict", "piivault: a "+provider+" event for order "+orderID+
			" was refused ("+what+"); nothing changed. Check the order's payment.")
	}
	if err := h.audit.Record(ctx, audit.Entry{Actor: "webhook:" + provider, Action: audit.ActionWebhookConflict,
		OrderID: orderID, IP: ip, Detail: map[string]string{"conflict": what}}); err != nil {
		return "", err
	}
	return "conflict", nil
}

// body reads the raw body and checks a secret is configured.
func (h *Handler) body(c *gin.Context, secret string) ([]byte, bool) {
	if secret == "" {
		h.write(c, errNotConfigured)
		return nil, false
	}
	b, err := web.ReadBody(c, MaxBody)
	if err != nil {
		h.write(c, err)
		return nil, false
	}
	return b, true
}

// badSignature answers 401 and tells the monitor.
func (h *Handler) badSignature(c *gin.Context, provider string) {
	events.WithLabelValues(provider, "bad_signature").Inc()
	h.watch.BadSignature(c.Request.Context(), provider)
	h.write(c, errBadSignature)
}

func hmacSHA256(secret, msg []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write(msg)
	return m.Sum(nil)
}

var errUnparsable = errors.New("unparsable")

func invalidPayload(what string) error {
	return apperr.Wrap(apperr.Invalid, errUnparsable, "the event payload is not a valid %s", what)
}
