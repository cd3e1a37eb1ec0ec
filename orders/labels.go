package orders

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"piivault/audit"
	"piivault/internal/apperr"
)

// A label record keeps the state of one order's postage purchase, so that a
// retried, doubled or concurrent request never buys a second label:
//
//	piivault:{sNN}:label:<order>  hash  state (pending|uncertain|bought), owner (the attempt
//	                                    holding the lease), started (ms), shipment, tracker, code,
//	                                    first (ms, the first attempt), carrier, service, amount, currency,
//	                                    format, bought_at (ms).
//	                                    No PII. TTL = LabelMemory.
//
// A bought label also stamps the purchase reference (label_carrier,
// label_tracking_code, label_bought_at), which the reference and the
// queue show and an address correction checks.

// LabelMemory is how long a label record is kept: longer than the
// retention, so a refund or a retry of any held order still finds it.
const LabelMemory = 45 * 24 * time.Hour

// PostageLabel is a bought postage label as the purchase reference shows it.
type PostageLabel struct {
	Carrier      string    `json:"carrier"`
	TrackingCode string    `json:"tracking_code"`
	BoughtAt     time.Time `json:"bought_at"`
}

// LabelRecord is an order's postage purchase as piivault knows it.
type LabelRecord struct {
	State      string // "pending", "uncertain" or "bought"
	ShipmentID string
	TrackerID  string
	Code       string
	Carrier    string
	Service    string
	Amount     string
	Currency   string
	Format     string
	BoughtAt   time.Time
	Started    time.Time // when the first attempt began
}

// Claim outcomes.
const (
	// LabelClaimed: nothing was bought; the caller holds the lease.
	LabelClaimed = "claimed"
	// LabelRecover: an earlier attempt stopped without an answer; the
	// caller holds the lease and must find that attempt's shipment first.
	LabelRecover = "recover"
	// LabelBusy: another attempt holds the lease right now.
	LabelBusy = "busy"
	// LabelBought: the label exists; Record holds it.
	LabelBought = "bought"
)

// claimLabelScript takes the lease on an order's label purchase:
// {outcome, fields...}. A purged or shipped order cannot be labelled, nor
// its label answered again.
var claimLabelScript = redis.NewScript(`
local ref, label = KEYS[1], KEYS[2]
local owner, now, lease, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local status = redis.call('HGET', ref, 'status')
if not status then return {'not_found'} end
-- A shipped or purged order's label shows an address that is gone: it is
-- never answered again.
if status ~= 'held' then return {'gone'} end
local state = redis.call('HGET', label, 'state')
if state == 'bought' then return {'bought', redis.call('HGETALL', label)} end
if state == 'pending' and tonumber(redis.call('HGET', label, 'started')) + lease > now then
  return {'busy'}
end
redis.call('HSET', label, 'state', 'pending', 'owner', owner, 'started', now)
redis.call('PEXPIRE', label, ttl)
if state then return {'recover', redis.call('HGETALL', label)} end
redis.call('HSET', label, 'first', now)
return {'claimed'}
`)

// ClaimLabel takes the lease on buying orderID's label for owner (a
// random id of this attempt) for lease. See the Label* outcomes.
func (s *Store) ClaimLabel(ctx context.Context, orderID, owner string, lease time.Duration) (string, LabelRecord, error) {
	if !ValidOrderID(orderID) {
		return "", LabelRecord{}, apperr.New(apperr.NotFound, "no such order")
	}
	k := keysOf(orderID)
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	res, err := claimLabelScript.Run(ctx, s.rdb, []string{k.ref, k.label}, owner,
		s.now().UnixMilli(), lease.Milliseconds(), LabelMemory.Milliseconds()).Slice()
	if err != nil {
		return "", LabelRecord{}, storeErr(err)
	}
	outcome, _ := res[0].(string)
	switch outcome {
	case "not_found":
		return "", LabelRecord{}, apperr.New(apperr.NotFound, "no such order")
	case "gone":
		ref, err := s.Get(ctx, orderID)
		if err != nil {
			return "", LabelRecord{}, err
		}
		return "", LabelRecord{}, goneError(ref)
	}
	var rec LabelRecord
	if len(res) == 2 {
		rec = parseLabel(pairs(res[1]))
	}
	return outcome, rec, nil
}

func pairs(v any) map[string]string {
	m := map[string]string{}
	list, _ := v.([]any)
	for i := 0; i+1 < len(list); i += 2 {
		k, _ := list[i].(string)
		v, _ := list[i+1].(string)
		m[k] = v
	}
	return m
}

func parseLabel(m map[string]string) LabelRecord {
	r := LabelRecord{State: m["state"], ShipmentID: m["shipment"], TrackerID: m["tracker"], Code: m["code"],
		Carrier: m["carrier"], Service: m["service"], Amount: m["amount"], Currency: m["currency"], Format: m["format"]}
	if v := m["bought_at"]; v != "" {
		r.BoughtAt = msTime(v)
	}
	if v := m["first"]; v != "" {
		r.Started = msTime(v)
	}
	return r
}

// ownedScript sets fields on a label record the caller still holds.
var ownedScript = redis.NewScript(`
local label, owner = KEYS[1], ARGV[1]
if redis.call('HGET', label, 'owner') ~= owner or redis.call('HGET', label, 'state') ~= 'pending' then return 0 end
for i = 2, #ARGV, 2 do redis.call('HSET', label, ARGV[i], ARGV[i+1]) end
return 1
`)

// NoteShipment records the shipment an attempt created, before it is
// bought: a later attempt buys or finds that one rather than another.
func (s *Store) NoteShipment(ctx context.Context, orderID, owner, shipmentID string) error {
	return s.owned(ctx, orderID, owner, "shipment", shipmentID)
}

// LabelUncertain gives up the lease after an EasyPost call whose outcome is
// unknown: the next attempt recovers at once instead of waiting the lease out.
func (s *Store) LabelUncertain(ctx context.Context, orderID, owner string) error {
	return s.owned(ctx, orderID, owner, "state", "uncertain")
}

func (s *Store) owned(ctx context.Context, orderID, owner string, fields ...string) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	args := append([]any{owner}, anys(fields)...)
	n, err := ownedScript.Run(ctx, s.rdb, []string{keysOf(orderID).label}, args...).Int()
	if err != nil {
		return storeErr(err)
	}
	if n == 0 {
		return apperr.New(apperr.Conflict, "another attempt took over this label")
	}
	return nil
}

// releaseLabelScript drops a lease that never reached EasyPost.
var releaseLabelScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] and redis.call('HGET', KEYS[1], 'state') == 'pending'
  and not redis.call('HGET', KEYS[1], 'shipment') then
  redis.call('DEL', KEYS[1])
end
return 1
`)

// forgetLabelScript drops owner's record even with a shipment noted: the
// caller saw EasyPost refuse it and not buy it.
var forgetLabelScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] and redis.call('HGET', KEYS[1], 'state') == 'pending' then
  redis.call('DEL', KEYS[1])
end
return 1
`)

// ForgetLabel drops owner's record of a shipment EasyPost refused to buy
// (a carrier rejecting the address, no rate for the service): nothing was
// bought, so the order can be corrected, and the next purchase starts a
// new shipment with the new address and parcel.
func (s *Store) ForgetLabel(ctx context.Context, orderID, owner string) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	return storeErrOrNil(forgetLabelScript.Run(ctx, s.rdb, []string{keysOf(orderID).label}, owner).Err())
}

// ReleaseLabel drops owner's lease when nothing was sent to EasyPost (the
// order could not be decrypted, for instance): no shipment can exist.
func (s *Store) ReleaseLabel(ctx context.Context, orderID, owner string) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	return storeErrOrNil(releaseLabelScript.Run(ctx, s.rdb, []string{keysOf(orderID).label}, owner).Err())
}

func storeErrOrNil(err error) error {
	if err != nil {
		return storeErr(err)
	}
	return nil
}

// labelBoughtScript records a bought label, stamps the reference and
// queues its audit note, in one step: 1 recorded; 0 already recorded.
var labelBoughtScript = redis.NewScript(`
local ref, label, outbox = KEYS[1], KEYS[2], KEYS[3]
if redis.call('HGET', label, 'state') == 'bought' then return 0 end
for i = 2, #ARGV - 1, 2 do redis.call('HSET', label, ARGV[i], ARGV[i+1]) end
redis.call('HSET', label, 'state', 'bought')
redis.call('HDEL', label, 'owner', 'started')
redis.call('PEXPIRE', label, tonumber(ARGV[1]))
if redis.call('EXISTS', ref) == 1 then
  redis.call('HSET', ref, 'label_carrier', redis.call('HGET', label, 'carrier'),
    'label_tracking_code', redis.call('HGET', label, 'code'), 'label_bought_at', redis.call('HGET', label, 'bought_at'))
end
redis.call('RPUSH', outbox, ARGV[#ARGV])
return 1
`)

// LabelBoughtAudited records a bought label (whoever's attempt bought it:
// the shipment is the proof) with its audit entry e (actor and IP set by the
// caller), through the outbox like every other change. It returns false
// when the label was already recorded (nothing written twice).
func (s *Store) LabelBoughtAudited(ctx context.Context, orderID string, r LabelRecord, e audit.Entry) (bool, error) {
	e.Action, e.OrderID = audit.ActionLabelBought, orderID
	e.Detail = map[string]string{"carrier": r.Carrier, "service": r.Service, "tracking_code": r.Code,
		"easypost_shipment_id": r.ShipmentID, "easypost_tracker_id": r.TrackerID}
	e = s.stamped(e)
	note, err := json.Marshal(e)
	if err != nil {
		return false, fmt.Errorf("audit note: %w", err)
	}
	k := keysOf(orderID)
	bought := r.BoughtAt
	if bought.IsZero() {
		bought = s.now()
	}
	ctx2, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	n, err := labelBoughtScript.Run(ctx2, s.rdb, []string{k.ref, k.label, k.outbox}, LabelMemory.Milliseconds(),
		"shipment", r.ShipmentID, "tracker", r.TrackerID, "code", r.Code, "carrier", r.Carrier,
		"service", r.Service, "amount", r.Amount, "currency", r.Currency, "format", r.Format,
		"bought_at", strconv.FormatInt(bought.UnixMilli(), 10), note).Int()
	if err != nil {
		return false, storeErr(err)
	}
	if n == 0 {
		return false, nil
	}
	return true, s.recordNoted(ctx, orderID, s.later(e), note)
}

// LabelOf returns an order's label record (State "" when there is none).
func (s *Store) LabelOf(ctx context.Context, orderID string) (LabelRecord, error) {
	if !ValidOrderID(orderID) {
		return LabelRecord{}, apperr.New(apperr.NotFound, "no such order")
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	m, err := s.rdb.HGetAll(ctx, keysOf(orderID).label).Result()
	if err != nil {
		return LabelRecord{}, storeErr(err)
	}
	return parseLabel(m), nil
}

// labelRefundedScript forgets a refunded label and queues its audit note:
// 1 done; 0 no such bought label.
var labelRefundedScript = redis.NewScript(`
local ref, label, outbox = KEYS[1], KEYS[2], KEYS[3]
if redis.call('HGET', label, 'state') ~= 'bought' or redis.call('HGET', label, 'shipment') ~= ARGV[1] then return 0 end
redis.call('DEL', label)
redis.call('HDEL', ref, 'label_carrier', 'label_tracking_code', 'label_bought_at')
redis.call('RPUSH', outbox, ARGV[2])
return 1
`)

// LabelRefundedAudited forgets the bought label of shipmentID (refunded at
// EasyPost), with its audit entry e. The order stays as it is.
func (s *Store) LabelRefundedAudited(ctx context.Context, orderID, shipmentID string, e audit.Entry) (bool, error) {
	e.Action, e.OrderID = audit.ActionLabelRefunded, orderID
	e.Detail = map[string]string{"easypost_shipment_id": shipmentID}
	e = s.stamped(e)
	note, err := json.Marshal(e)
	if err != nil {
		return false, fmt.Errorf("audit note: %w", err)
	}
	k := keysOf(orderID)
	ctx2, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	n, err := labelRefundedScript.Run(ctx2, s.rdb, []string{k.ref, k.label, k.outbox}, shipmentID, note).Int()
	if err != nil {
		return false, storeErr(err)
	}
	if n == 0 {
		return false, nil
	}
	return true, s.recordNoted(ctx, orderID, s.later(e), note)
}

func labelOfRef(m map[string]string) *PostageLabel {
	if m["label_tracking_code"] == "" {
		return nil
	}
	return &PostageLabel{Carrier: m["label_carrier"], TrackingCode: m["label_tracking_code"], BoughtAt: msTime(m["label_bought_at"])}
}
