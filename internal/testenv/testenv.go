// Package testenv starts real Vault (`vault server -dev`) and Redis
// (`redis-server`) processes on free loopback ports for tests, bootstraps
// Vault with piivault's own setup, and stops them when the test or the
// package ends. Nothing here is a mock.
//
// A package shares one environment through Main and Shared; a test that
// stops a process (fault tests) starts its own with Start.
package testenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"piivault/vault"
)

// VaultVersion is the Vault release the Makefile builds and tests expect.
const VaultVersion = "1.21.0"

const rootToken = "piivault-test-root"

// Env is a running Vault and Redis pair, set up for piivault.
type Env struct {
	VaultAddr string
	RootToken string
	RedisAddr string
	RedisURL  string
	RoleID    string
	SecretID  string

	// Redis is a client of the environment's Redis.
	Redis *redis.Client
	// Root is a Vault client with the root token (the operator).
	Root *vault.Client
	// Service is a Vault client logged in with the service AppRole.
	Service *vault.Client

	dir   string
	vault *exec.Cmd
	redis *exec.Cmd
	mu    sync.Mutex
}

// Logger is a logger for tests that discards output unless PIIVAULT_TEST_LOG is set.
func Logger() *slog.Logger {
	if os.Getenv("PIIVAULT_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// VaultBinary finds the vault binary: $PIIVAULT_VAULT_BIN, then `vault` on
// PATH, then the Makefile's cache (~/.cache/piivault/vault-<version>).
func VaultBinary() (string, error) {
	if p := os.Getenv("PIIVAULT_VAULT_BIN"); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("vault"); err == nil {
		return p, nil
	}
	cache, err := os.UserCacheDir()
	if err == nil {
		p := filepath.Join(cache, "piivault", "vault-"+VaultVersion)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no vault binary: run `make vault` (or `make test`, which builds it) first")
}

var (
	shared     *Env
	sharedErr  error
	sharedOnce sync.Once
)

// Main runs a package's tests and stops the shared environment afterwards.
// Use it as: func TestMain(m *testing.M) { testenv.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	if shared != nil {
		shared.stop()
	}
	os.Exit(code)
}

// Shared returns the package's shared environment, starting it on first use,
// with Redis flushed so the test starts from an empty store. Tests using it
// must not run in parallel with each other.
func Shared(tb testing.TB) *Env {
	tb.Helper()
	sharedOnce.Do(func() { shared, sharedErr = start() })
	require.NoError(tb, sharedErr, "start test environment")
	require.NoError(tb, shared.Redis.FlushAll(context.Background()).Err())
	return shared
}

// Start starts a private environment, stopped when tb ends.
func Start(tb testing.TB) *Env {
	tb.Helper()
	e, err := start()
	require.NoError(tb, err, "start test environment")
	tb.Cleanup(e.stop)
	return e
}

func start() (*Env, error) {
	dir, err := os.MkdirTemp("", "piivault-testenv-")
	if err != nil {
		return nil, err
	}
	e := &Env{dir: dir, RootToken: rootToken}
	if err := e.startRedis(0); err != nil {
		e.stop()
		return nil, fmt.Errorf("redis: %w", err)
	}
	if err := e.startVault(); err != nil {
		e.stop()
		return nil, fmt.Errorf("vault: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e.Root, err = vault.New(ctx, vault.Config{Addr: e.VaultAddr, Token: rootToken}, Logger())
	if err == nil {
		_, err = e.Root.Setup(ctx)
	}
	if err == nil {
		e.RoleID, e.SecretID, err = e.Root.AppRoleCredentials(ctx)
	}
	if err == nil {
		e.Service, err = vault.New(ctx, vault.Config{Addr: e.VaultAddr, RoleID: e.RoleID, SecretID: e.SecretID}, Logger())
	}
	if err != nil {
		e.stop()
		return nil, fmt.Errorf("vault setup: %w", err)
	}
	return e, nil
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (e *Env) startVault() error {
	bin, err := VaultBinary()
	if err != nil {
		return err
	}
	port, err := FreePort()
	if err != nil {
		return err
	}
	e.VaultAddr = fmt.Sprintf("http://127.0.0.1:%d", port)
	cmd := exec.Command(bin, "server", "-dev",
		"-dev-listen-address=127.0.0.1:"+strconv.Itoa(port),
		"-dev-root-token-id="+rootToken, "-dev-no-store-token")
	cmd.Env = append(os.Environ(), "HOME="+e.dir, "VAULT_DISABLE_MLOCK=true")
	log, err := os.Create(filepath.Join(e.dir, "vault.log"))
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = childAttrs()
	if err := cmd.Start(); err != nil {
		return err
	}
	e.vault = cmd
	return waitFor(30*time.Second, func() error {
		resp, err := http.Get(e.VaultAddr + "/v1/sys/health")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("health %d", resp.StatusCode)
		}
		return nil
	})
}

// startRedis starts redis-server; port 0 picks a free one, otherwise it
// restarts on the given port (fault tests bring Redis back where it was).
func (e *Env) startRedis(port int) error {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return errors.New("no redis-server on PATH: `make test` installs the Debian package redis-server")
	}
	if port == 0 {
		if port, err = FreePort(); err != nil {
			return err
		}
	}
	e.RedisAddr = fmt.Sprintf("127.0.0.1:%d", port)
	e.RedisURL = "redis://" + e.RedisAddr + "/0"
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", e.dir, "--protected-mode", "yes")
	cmd.SysProcAttr = childAttrs()
	if err := cmd.Start(); err != nil {
		return err
	}
	e.redis = cmd
	if e.Redis == nil {
		e.Redis = redis.NewClient(&redis.Options{Addr: e.RedisAddr, MaxRetries: -1,
			DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second})
	}
	return waitFor(10*time.Second, func() error { return e.Redis.Ping(context.Background()).Err() })
}

// StopRedis kills Redis (a crash, not a clean shutdown).
func (e *Env) StopRedis(tb testing.TB) {
	tb.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	kill(e.redis)
	e.redis = nil
}

// RestartRedis starts Redis again on the same port (with empty data).
func (e *Env) RestartRedis(tb testing.TB) {
	tb.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	_, port, _ := net.SplitHostPort(e.RedisAddr)
	p, _ := strconv.Atoi(port)
	require.NoError(tb, e.startRedis(p))
}

// StopVault kills Vault.
func (e *Env) StopVault(tb testing.TB) {
	tb.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	kill(e.vault)
	e.vault = nil
}

func (e *Env) stop() {
	e.mu.Lock()
	defer e.mu.Unlock()
	kill(e.vault)
	kill(e.redis)
	if e.Redis != nil {
		e.Redis.Close()
	}
	os.RemoveAll(e.dir)
}

func kill(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	_ = cmd.Wait()
}

// childAttrs puts a child in its own process group (so kill reaches its
// children) and has the kernel kill it if the test binary dies first.
func childAttrs() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

func waitFor(limit time.Duration, check func() error) error {
	deadline := time.Now().Add(limit)
	var err error
	for time.Now().Before(deadline) {
		if err = check(); err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %s: %w", limit, err)
}
