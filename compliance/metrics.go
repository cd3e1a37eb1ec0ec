package compliance

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are package globals by design (Prometheus collectors are
// process-wide).
var lockdownOn = promauto.NewGauge(prometheus.GaugeOpts{
	Name: "piivault_lockdown",
	Help: "1 while the incident lockdown is on (reveals and logins refused), 0 when off, as this instance last read it.",
})

func observeLockdown(s LockdownState) {
	v := 0.0
	if s.On {
		v = 1
	}
	lockdownOn.Set(v)
}
