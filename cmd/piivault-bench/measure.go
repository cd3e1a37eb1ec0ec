package main

import (
	"fmt"
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
	d, wall, err := timed(n, c, op)
	return summarise(d, wall), err
}

// timed runs op(0) … op(n-1) on c workers and returns each one's latency
// and the wall time of them all.
func timed(n, c int, op func(i int) error) ([]time.Duration, time.Duration, error) {
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
	return lat, time.Since(start), err
}

// interleaveBlocks is at most how many turns the series of a level take
// (see turns); above concurrency 1 a block also gives each worker at
// least blockPerWorker operations, so that a block's ramp-up and drain
// (about one operation per worker) stay a small share of its wall time.
const (
	interleaveBlocks = 10
	blockPerWorker   = 16
)

// blocks is how many turns n operations at concurrency c take.
func blocks(n, c int) int {
	if c > 1 {
		n /= blockPerWorker * c
	}
	return max(1, min(interleaveBlocks, n))
}

// named is one series of a level: piivault's, the bare loop's, or
// piivault's calls alone.
type named struct {
	name string
	op   func(i int) error
}

// measured is one series' latencies and the CPU it kept busy.
type measured struct {
	lat latency
	cpu cpuShare
}

// turns measures each series (n operations at concurrency c) with the CPU
// it kept busy, read by meter between runs. The series take turns in
// blocks (the first block of every series, then the second, …; see
// blocks): the goals are ratios of two series, and on a shared machine a
// slow spell that falls on one series alone moves such a ratio by a fifth
// at concurrency 1, and at 16 once halved the bare decrypt's throughput
// and so doubled a ceiling. Where n is less than two blocks of
// blockPerWorker operations per worker, each series runs whole in turn.
func turns(n, c int, meter interface{ take() cpuUse }, series ...named) ([]measured, error) {
	nb := blocks(n, c)
	durs := make([][]time.Duration, len(series))
	walls := make([]time.Duration, len(series))
	used := make([]cpuUse, len(series))
	meter.take() // what came before is no series'
	for k := range nb {
		lo, hi := k*n/nb, (k+1)*n/nb
		for s, sr := range series {
			d, wall, err := timed(hi-lo, c, func(i int) error { return sr.op(lo + i) })
			if err != nil {
				return nil, fmt.Errorf("%s: %w", sr.name, err)
			}
			durs[s] = append(durs[s], d...)
			walls[s] += wall
			used[s].add(meter.take())
		}
	}
	out := make([]measured, len(series))
	for s := range series {
		out[s] = measured{lat: summarise(durs[s], walls[s]), cpu: used[s].share(n)}
	}
	return out, nil
}
