package orders

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are package globals by design (Prometheus collectors are
// process-wide). Labels are closed sets: roles, never names or ids.
var (
	reveals = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "piivault_reveals_total", Help: "Shipping blocks revealed, by staff role and reason code.",
	}, []string{"role", "reason"})
	labelBatches = promauto.NewCounter(prometheus.CounterOpts{
		Name: "piivault_label_batch_decrypts_total", Help: "Label pick-lists decrypted in one batched Vault call.",
	})
	labelItems = promauto.NewHistogram(prometheus.HistogramOpts{
		Name: "piivault_label_batch_items", Help: "Orders decrypted per label pick-list call.",
		Buckets: []float64{1, 2, 5, 10, 20, 50, 100},
	})
)
