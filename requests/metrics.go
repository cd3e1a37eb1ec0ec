package requests

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are package globals by design (Prometheus collectors are
// process-wide). Labels are closed sets, never ids or addresses.
var (
	received = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "piivault_inbound_requests_total",
		Help: "Inbound email requests by provider and outcome (deleted, access_link_sent, pending, duplicate, unauthorized, invalid, dkim_temporary, ...).",
	}, []string{"provider", "outcome"})
	reviewed = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "piivault_inbound_reviewed_total", Help: "Pending email requests confirmed or rejected, by action and kind.",
	}, []string{"action", "kind"})
)
