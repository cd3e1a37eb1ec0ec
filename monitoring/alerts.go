package monitoring

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"
)

// Alerter posts alerts to PIIVAULT_ALERT_URL as Slack-compatible JSON
// ({"text": ...}), from a bounded queue so no request ever waits on it.
// Each alert is retried with backoff; what cannot be queued or delivered is
// logged and counted, never blocking.
type Alerter struct {
	url   string
	http  *http.Client
	queue chan alert
	log   *slog.Logger
}

type alert struct{ kind, text string }

// NewAlerter builds an Alerter; an empty url only logs.
func NewAlerter(url string, log *slog.Logger) *Alerter {
	return &Alerter{url: url, http: &http.Client{Timeout: 5 * time.Second}, queue: make(chan alert, 256), log: log}
}

// Notify queues an alert. Alert texts name IPs, usernames and counts,
// never PII.
func (a *Alerter) Notify(kind, text string) {
	a.log.Warn("alert", "kind", kind, "text", text)
	if a.url == "" {
		return
	}
	select {
	case a.queue <- alert{kind, text}:
	default:
		alertsSent.WithLabelValues(kind, "dropped").Inc()
	}
}

// Run delivers queued alerts until ctx ends.
func (a *Alerter) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case al := <-a.queue:
			a.deliver(ctx, al)
		}
	}
}

func (a *Alerter) deliver(ctx context.Context, al alert) {
	body, _ := json.Marshal(map[string]string{"text": al.text, "kind": al.kind})
	backoff := 500 * time.Millisecond
	for attempt := 1; attempt <= 4; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.url, bytes.NewReader(body))
		if err != nil {
			break
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := a.http.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 300 {
				alertsSent.WithLabelValues(al.kind, "sent").Inc()
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff *= 2
	}
	alertsSent.WithLabelValues(al.kind, "failed").Inc()
	a.log.Error("alert not delivered", "kind", al.kind)
}
