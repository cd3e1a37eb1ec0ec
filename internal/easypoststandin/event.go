package easypoststandin

import (
	"encoding/json"
	"time"
)

// jsonEvent is EasyPost's webhook Event ("tracker.updated" here), with the
// fields of the event EasyPost's client libraries test against
// (EasyPost/examples official/fixtures/event-body.json).
type jsonEvent struct {
	Description        string         `json:"description"`
	Mode               string         `json:"mode"`
	PreviousAttributes map[string]any `json:"previous_attributes"`
	CreatedAt          string         `json:"created_at"`
	PendingURLs        []string       `json:"pending_urls"`
	CompletedURLs      []string       `json:"completed_urls"`
	UpdatedAt          string         `json:"updated_at"`
	ID                 string         `json:"id"`
	UserID             string         `json:"user_id"`
	Status             string         `json:"status"`
	Object             string         `json:"object"`
	Result             any            `json:"result"`
}

// TrackerEvent moves the tracker of a bought shipment to status (e.g.
// "in_transit", "delivered") and returns the body EasyPost would POST to a
// webhook for it: an unsigned "tracker.updated" Event whose result is the
// Tracker. GET then shows the new status. nil if the shipment is unknown
// or not bought (it has no tracker).
func (s *Server) TrackerEvent(shipmentID, status string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.byID[shipmentID]
	if st == nil || !st.bought {
		return nil
	}
	previous := st.trackerStatus
	now := time.Now().UTC()
	st.trackerStatus, st.trackerSet, st.updated = status, true, now

	var result any = renderTracker(st)
	if s.fx != nil {
		result = s.fx.trackerResult(st)
	}
	// Events carry milliseconds ("2024-08-02T19:26:52.000Z").
	at := now.Format("2006-01-02T15:04:05.000Z")
	b, _ := json.Marshal(jsonEvent{
		ID: newID("evt_"), Object: "Event", Mode: "test", Description: "tracker.updated",
		PreviousAttributes: map[string]any{"status": previous},
		CreatedAt:          at, UpdatedAt: at, UserID: s.userID(),
		Status: "pending", PendingURLs: []string{}, CompletedURLs: []string{},
		Result: result,
	})
	return b
}

// userID is the account's id, the same in every event. Callers hold s.mu.
func (s *Server) userID() string {
	if s.user == "" {
		s.user = newID("user_")
	}
	return s.user
}
