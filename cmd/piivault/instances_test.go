package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"piivault/internal/devstack"
	"piivault/webhooks"
)

// runAsPiivault makes this test binary run as the piivault command (see TestMain).
const runAsPiivault = "PIIVAULT_TEST_RUN_AS_PIIVAULT"

// instance is one `piivault serve` process: this test binary run again as
// the command, sharing nothing with the others but Vault and Redis.
type instance struct {
	url  string
	logs string // its stdout and stderr
	cmd  *exec.Cmd
}

// startInstances starts n serve processes with the given environment and
// waits until each answers /readyz.
func startInstances(t *testing.T, n int, vars map[string]string) []*instance {
	t.Helper()
	var out []*instance
	for i := 0; i < n; i++ {
		port, err := devstack.FreePort()
		require.NoError(t, err)
		in := &instance{url: fmt.Sprintf("http://127.0.0.1:%d", port),
			logs: filepath.Join(t.TempDir(), fmt.Sprintf("serve-%d.log", i))}
		logf, err := os.Create(in.logs)
		require.NoError(t, err)
		in.cmd = exec.Command(os.Args[0], "serve")
		in.cmd.Env = append(os.Environ(), runAsPiivault+"=1", fmt.Sprintf("PIIVAULT_LISTEN=127.0.0.1:%d", port))
		for k, v := range vars {
			in.cmd.Env = append(in.cmd.Env, k+"="+v)
		}
		in.cmd.Stdout, in.cmd.Stderr = logf, logf
		in.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		require.NoError(t, in.cmd.Start())
		t.Cleanup(func() {
			_ = in.cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { _ = in.cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				_ = in.cmd.Process.Kill()
				<-done
			}
			logf.Close()
			if t.Failed() {
				raw, _ := os.ReadFile(in.logs)
				t.Logf("serve %s log (last 4 KiB):\n%s", in.url, tail(raw, 4096))
			}
		})
		out = append(out, in)
	}
	for _, in := range out {
		require.Eventually(t, func() bool {
			resp, err := http.Get(in.url + "/readyz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == 200
		}, 30*time.Second, 100*time.Millisecond, "instance %s never became ready", in.url)
	}
	return out
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// logLines returns the instance's JSON log lines whose msg is msg.
func (in *instance) logLines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	f, err := os.Open(in.logs)
	require.NoError(t, err)
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) == nil && line["msg"] == msg {
			out = append(out, line)
		}
	}
	return out
}

// answer is what one request was told, and when.
type answer struct {
	id     string
	status int // 0: no answer (connection failed)
	at     time.Time
}

// send makes one request without the test's require (load runs off the
// test goroutine) and returns the status, 0 when no answer came.
func send(method, url, token string, body []byte, headers ...string) int {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return 0
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// load is steady traffic from a storefront (and shipping webhooks) that
// records every answer. Like a real caller it retries what was not
// acknowledged, with the same order id or event.
type load struct {
	mu      sync.Mutex
	orders  []answer // POST /v1/orders
	purges  []answer // shipping webhooks
	stop    chan struct{}
	wg      sync.WaitGroup
	created map[string]time.Time // order id -> first 201 or 200
	shipped map[string]time.Time // order id -> first 200
	reveals []answer             // GET /v1/orders/{id}/shipping
	// revealed counts the reveals answered 200 per order; seen[id] is the
	// first of them answered after cut (zero: none).
	revealed map[string]int
}

func newLoad() *load {
	return &load{stop: make(chan struct{}), created: map[string]time.Time{}, shipped: map[string]time.Time{},
		revealed: map[string]int{}}
}

// reveal reads the shipping blocks of ids with a fulfillment token, round
// after round, until stopped. Every 200 is a reveal the trail must hold.
func (l *load) reveal(url, token string, ids []string) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for i := 0; ; i++ {
			select {
			case <-l.stop:
				return
			default:
			}
			id := ids[i%len(ids)]
			st := send("GET", url+"/v1/orders/"+id+"/shipping?reason=label", token, nil)
			now := time.Now()
			l.mu.Lock()
			l.reveals = append(l.reveals, answer{id, st, now})
			if st == 200 {
				l.revealed[id]++
			}
			l.mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	}()
}

// ingest posts new orders to url with apiKey until stopped, one at a time.
func (l *load) ingest(url, apiKey, prefix string) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for i := 0; ; i++ {
			id := fmt.Sprintf("%s-%05d", prefix, i)
			body, _ := json.Marshal(orderBody(id))
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				st := send("POST", url+"/v1/orders", apiKey, body)
				now := time.Now()
				l.mu.Lock()
				l.orders = append(l.orders, answer{id, st, now})
				if st == 201 || st == 200 {
					if _, ok := l.created[id]; !ok {
						l.created[id] = now
					}
				}
				l.mu.Unlock()
				if st == 201 || st == 200 {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}()
}

// ship sends a signed shipping webhook for each of ids in turn until
// stopped, retrying each until it is answered 200.
func (l *load) ship(url string, ids []string) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for _, id := range ids {
			body := []byte(fmt.Sprintf(`{"event_id":"evt-%s","order_id":%q,"status":"shipped"}`, id, id))
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				st := send("POST", url+"/v1/webhooks/shipping", "", body,
					"X-Piivault-Signature", webhooks.SignShipping(testShippingSecret, time.Now(), body))
				now := time.Now()
				l.mu.Lock()
				l.purges = append(l.purges, answer{id, st, now})
				if st == 200 {
					l.shipped[id] = now
				}
				l.mu.Unlock()
				if st == 200 {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
}

func (l *load) halt() {
	close(l.stop)
	l.wg.Wait()
}

// statuses counts answers by status.
func statuses(as []answer) map[int]int {
	out := map[int]int{}
	for _, a := range as {
		out[a.status]++
	}
	return out
}

// refusedWindow returns the first and last time an answer was not 2xx.
func refusedWindow(as []answer) (first, last time.Time) {
	for _, a := range as {
		if a.status/100 == 2 {
			continue
		}
		if first.IsZero() || a.at.Before(first) {
			first = a.at
		}
		if a.at.After(last) {
			last = a.at
		}
	}
	return first, last
}

func sortedKeys(m map[string]time.Time) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
