package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	rpprof "runtime/pprof"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/pprof/profile"
)

// profileEntry is one function of a profile's top list.
type profileEntry struct {
	Function string  `json:"function"`
	FlatPct  float64 `json:"flat_pct"`
	CumPct   float64 `json:"cum_pct"`
}

// phaseProfile is what profilePhase measured: the profile's top list,
// the CPU time it sampled and the operations done meanwhile.
type phaseProfile struct {
	top []profileEntry
	cpu time.Duration
	ops int64
}

// profileWindow is how long each phase's CPU profile records.
const profileWindow = 5 * time.Second

// profilePhase runs op with concurrency c while record takes a CPU profile
// (serveProfile: serve's; ownProfile: this process's), writes the profile
// to path and returns its top entries, the CPU time it sampled and how
// many ops finished while it recorded (op runs before and after it too:
// the count is of those that finished from the profile's start until it
// was returned, a little after its end: if anything, too many ops, and the
// CPU per op low).
func profilePhase(path string, c int, record func() ([]byte, error), op func() error) (phaseProfile, error) {
	type result struct {
		b   []byte
		err error
	}
	var ops atomic.Int64
	counting := atomic.Bool{}
	done := make(chan result, 1)
	go func() {
		counting.Store(true)
		b, err := record()
		counting.Store(false)
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
				if counting.Load() {
					ops.Add(1)
				}
			}
		}()
	}
	r := <-done
	close(stop)
	wg.Wait()
	select {
	case err := <-errc:
		return phaseProfile{}, err
	default:
	}
	if r.err != nil {
		return phaseProfile{}, r.err
	}
	if err := os.WriteFile(path, r.b, 0o644); err != nil {
		return phaseProfile{}, err
	}
	top, err := topOf(r.b)
	if err != nil {
		return phaseProfile{}, err
	}
	cpu, err := cpuOf(r.b)
	return phaseProfile{top: top, cpu: cpu, ops: ops.Load()}, err
}

// serveProfile records serve's CPU profile through its loopback pprof
// listener at debug.
func serveProfile(ctx context.Context, hc *http.Client, debug string) func() ([]byte, error) {
	return func() ([]byte, error) {
		status, _, b, err := send(ctx, hc, "GET", fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", debug, int(profileWindow.Seconds())), "", nil, nil)
		if err == nil && status != http.StatusOK {
			err = fmt.Errorf("profiler: status %d: %s", status, b)
		}
		return b, err
	}
}

// ownProfile records this process's CPU profile.
func ownProfile() ([]byte, error) {
	var b bytes.Buffer
	if err := rpprof.StartCPUProfile(&b); err != nil {
		return nil, err
	}
	time.Sleep(profileWindow)
	rpprof.StopCPUProfile()
	return b.Bytes(), nil
}

// cpuOf is the CPU time a profile sampled.
func cpuOf(raw []byte) (time.Duration, error) {
	p, err := profile.ParseData(raw)
	if err != nil {
		return 0, err
	}
	vi := len(p.SampleType) - 1 // cpu nanoseconds
	var total int64
	for _, s := range p.Sample {
		total += s.Value[vi]
	}
	return time.Duration(total), nil
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
