package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"piivault/internal/devstack"
)

// hookSecret signs the shipping webhooks the benchmark sends.
const hookSecret = "bench-shipping-secret"

// stack is a built piivault binary serving on loopback, with its own Vault
// (dev, in memory) and Redis, set up as an operator sets up a real one:
// every step (setup, clients add, staff add, serve) is that binary run as
// a subprocess, so what is measured is what ships.
type stack struct {
	bin      string          // the piivault binary
	dev      *devstack.Stack // Vault and Redis
	pass     []string        // variables every subprocess inherits (PATH, HOME, …)
	roleID   string          // the service AppRole, from `piivault setup --approle-env`
	secretID string
	base     string // serve's API: http://127.0.0.1:port
	debug    string // serve's profiler (PIIVAULT_DEBUG_LISTEN): http://127.0.0.1:port
	serve    *exec.Cmd
	exited   chan struct{} // closed when serve has exited
	serveErr *tail         // the end of serve's stderr, for a failed start
}

// passThrough names the variables of the caller's environment that the
// piivault subprocesses see; nothing else leaks in (no VAULT_TOKEN, no
// REDIS_URL of a real deployment).
var passThrough = []string{"PATH", "HOME", "TMPDIR", "GOMAXPROCS", "GOGC", "GODEBUG", "GOCOVERDIR"}

// startStack starts Vault and Redis, runs `piivault setup --approle-env`
// and starts `piivault serve` with rate limits off, the sweep out of the
// way (24h) and its profiler on a loopback port. The caller stops it.
func startStack(ctx context.Context, bin string, getenv func(string) string, say func(string, ...any)) (*stack, error) {
	if fi, err := os.Stat(bin); err != nil || fi.IsDir() {
		return nil, fmt.Errorf("no piivault binary at %s: build it first (make build) or name it with --piivault", bin)
	}
	s := &stack{bin: bin, exited: make(chan struct{}), serveErr: &tail{max: 4096}}
	for _, k := range passThrough {
		if v := getenv(k); v != "" {
			s.pass = append(s.pass, k+"="+v)
		}
	}
	say("starting Vault (dev) and Redis on loopback")
	var err error
	if s.dev, err = devstack.Start(); err != nil {
		return nil, err
	}
	if err := s.setUp(ctx, say); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

func (s *stack) setUp(ctx context.Context, say func(string, ...any)) error {
	say("piivault setup")
	out, err := s.piivault(ctx, s.operatorEnv(), "setup", "--approle-env")
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "PIIVAULT_VAULT_ROLE_ID="); ok {
			s.roleID = v
		} else if v, ok := strings.CutPrefix(line, "PIIVAULT_VAULT_SECRET_ID="); ok {
			s.secretID = v
		}
	}
	if s.roleID == "" || s.secretID == "" {
		return errors.New("piivault setup --approle-env printed no AppRole credentials")
	}

	port, err := devstack.FreePort()
	if err != nil {
		return err
	}
	debugPort, err := devstack.FreePort()
	if err != nil {
		return err
	}
	listen, debug := "127.0.0.1:"+strconv.Itoa(port), "127.0.0.1:"+strconv.Itoa(debugPort)
	s.base, s.debug = "http://"+listen, "http://"+debug
	say("piivault serve on %s", listen)
	s.serve = exec.Command(s.bin, "serve")
	s.serve.Env = append(s.serviceEnv(), "PIIVAULT_LISTEN="+listen, "PIIVAULT_DEBUG_LISTEN="+debug,
		"PIIVAULT_RATE_LIMIT=0", "PIIVAULT_LOGIN_RATE_LIMIT=0", "PIIVAULT_REVEAL_LIMIT=1000000",
		"PIIVAULT_WEBHOOK_SECRET="+hookSecret, "PIIVAULT_SWEEP_INTERVAL=24h")
	s.serve.Stderr = s.serveErr // its log (stdout, one line a request) is not kept
	if err := s.serve.Start(); err != nil {
		return fmt.Errorf("start piivault serve: %w", err)
	}
	go func() { _ = s.serve.Wait(); close(s.exited) }()
	if err := waitReady(ctx, http.DefaultClient, s.base+"/readyz", s.exited); err != nil {
		return fmt.Errorf("piivault serve: %w: %s", err, s.serveErr)
	}
	return nil
}

// operatorEnv is the environment of the operator's commands (setup, staff).
func (s *stack) operatorEnv() []string {
	return append(s.env(), "VAULT_TOKEN="+s.dev.RootToken)
}

// serviceEnv is serve's environment and that of the service-side commands.
func (s *stack) serviceEnv() []string {
	return append(s.env(), "PIIVAULT_VAULT_ROLE_ID="+s.roleID, "PIIVAULT_VAULT_SECRET_ID="+s.secretID)
}

func (s *stack) env() []string {
	return append(append([]string(nil), s.pass...), "VAULT_ADDR="+s.dev.VaultAddr, "REDIS_URL="+s.dev.RedisURL)
}

// piivault runs one piivault command to its end and returns its stdout;
// a failure carries the command's one line on stderr.
func (s *stack) piivault(ctx context.Context, env []string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, s.bin, args...)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("piivault %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// addClient makes a storefront API key with `piivault clients add`.
func (s *stack) addClient(ctx context.Context, name string) (string, error) {
	out, err := s.piivault(ctx, s.serviceEnv(), "clients", "add", name, "--json")
	if err != nil {
		return "", err
	}
	var c struct {
		APIKey string `json:"api_key"`
	}
	if err := json.Unmarshal(out, &c); err != nil || c.APIKey == "" {
		return "", fmt.Errorf("piivault clients add --json: no api_key in its output")
	}
	return c.APIKey, nil
}

// staffToken creates a staff member with `piivault staff add` and logs
// them in (password and TOTP code) through the API.
func (s *stack) staffToken(ctx context.Context, hc *http.Client, name, role string) (string, error) {
	out, err := s.piivault(ctx, s.operatorEnv(), "staff", "add", name, "--role", role, "--json")
	if err != nil {
		return "", err
	}
	var m struct {
		Password string `json:"password"`
		TOTPURL  string `json:"totp_url"`
	}
	if err := json.Unmarshal(out, &m); err != nil {
		return "", fmt.Errorf("piivault staff add --json: %w", err)
	}
	k, err := otp.NewKeyFromURL(m.TOTPURL)
	if err != nil {
		return "", err
	}
	code, err := totp.GenerateCode(k.Secret(), time.Now())
	if err != nil {
		return "", err
	}
	body, _ := json.Marshal(map[string]string{"username": name, "password": m.Password, "totp": code})
	var login struct {
		Token string `json:"token"`
	}
	if err := expect(ctx, hc, "POST", s.base+"/v1/auth/login", "", body, http.StatusOK, nil, &login); err != nil {
		return "", fmt.Errorf("login as %s: %w", name, err)
	}
	return login.Token, nil
}

// servePeakRSS is serve's resident-set high-water mark so far, in MiB.
func (s *stack) servePeakRSS() float64 { return peakRSS(s.serve.Process.Pid) }

// stop ends serve as the platform would (SIGTERM, then SIGKILL after 25s)
// and then Vault and Redis.
func (s *stack) stop() {
	if s.serve != nil && s.serve.Process != nil {
		_ = s.serve.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(25 * time.Second):
			_ = s.serve.Process.Kill()
			<-s.exited
		}
	}
	s.dev.Stop()
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = t.b[over:]
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}
