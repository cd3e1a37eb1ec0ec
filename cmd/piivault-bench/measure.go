package main

import (
	"sort"
	"sync"
	"time"
)

// latency summarises one measured series.
type latency struct {
	Count     int     `json:"count"`
	PerSecond float64 `json:"per_second"`
	P50ms     float64 `json:"p50_ms"`
	P99ms     float64 `json:"p99_ms"`
}

func summarise(d []time.Duration, wall time.Duration) latency {
	if len(d) == 0 {
		return latency{}
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	pct := func(p float64) float64 {
		i := int(p * float64(len(d)-1))
		return float64(d[i].Microseconds()) / 1000
	}
	return latency{Count: len(d), PerSecond: float64(len(d)) / wall.Seconds(), P50ms: pct(0.50), P99ms: pct(0.99)}
}

// measure runs op(0) … op(n-1) on c workers and returns their latencies.
// It stops handing out work at the first error and returns that error.
func measure(n, c int, op func(i int) error) (latency, error) {
	lat := make([]time.Duration, n)
	next := make(chan int)
	errc := make(chan error, c)
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				t := time.Now()
				if err := op(i); err != nil {
					errc <- err
					return
				}
				lat[i] = time.Since(t)
			}
		}()
	}
	var err error
feed:
	for i := 0; i < n; i++ {
		select {
		case next <- i:
		case err = <-errc:
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errc:
		default:
		}
	}
	return summarise(lat, time.Since(start)), err
}
