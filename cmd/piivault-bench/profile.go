package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"sort"
	"sync"

	"github.com/google/pprof/profile"
)

// profileEntry is one function of a profile's top list.
type profileEntry struct {
	Function string  `json:"function"`
	FlatPct  float64 `json:"flat_pct"`
	CumPct   float64 `json:"cum_pct"`
}

// profilePhase runs op with concurrency c while serve's CPU profile (its
// loopback pprof listener at debug) records 5 seconds, writes the profile
// to path and returns its top entries.
func profilePhase(ctx context.Context, hc *http.Client, debug, path string, c int, op func() error) ([]profileEntry, error) {
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		status, _, b, err := send(ctx, hc, "GET", debug+"/debug/pprof/profile?seconds=5", "", nil, nil)
		if err == nil && status != http.StatusOK {
			err = fmt.Errorf("profiler: status %d: %s", status, b)
		}
		done <- result{b, err}
	}()
	stop := make(chan struct{})
	errc := make(chan error, c)
	var wg sync.WaitGroup
	for w := 0; w < c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := op(); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	r := <-done
	close(stop)
	wg.Wait()
	select {
	case err := <-errc:
		return nil, err
	default:
	}
	if r.err != nil {
		return nil, r.err
	}
	if err := os.WriteFile(path, r.b, 0o644); err != nil {
		return nil, err
	}
	return topOf(r.b)
}

// topOf lists a CPU profile's ten hottest functions by flat samples.
func topOf(raw []byte) ([]profileEntry, error) {
	p, err := profile.ParseData(raw)
	if err != nil {
		return nil, err
	}
	vi := len(p.SampleType) - 1 // cpu nanoseconds
	flat, cum := map[string]int64{}, map[string]int64{}
	var total int64
	for _, s := range p.Sample {
		v := s.Value[vi]
		total += v
		seen := map[string]bool{}
		for li, loc := range s.Location {
			for _, line := range loc.Line {
				if line.Function == nil {
					continue
				}
				f := line.Function.Name
				if li == 0 {
					flat[f] += v
				}
				if !seen[f] {
					cum[f] += v
					seen[f] = true
				}
			}
		}
	}
	if total == 0 {
		return nil, nil
	}
	out := make([]profileEntry, 0, len(flat))
	for f, v := range flat {
		out = append(out, profileEntry{Function: f, FlatPct: 100 * float64(v) / float64(total), CumPct: 100 * float64(cum[f]) / float64(total)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].FlatPct > out[j].FlatPct })
	if len(out) > 10 {
		out = out[:10]
	}
	return out, nil
}
