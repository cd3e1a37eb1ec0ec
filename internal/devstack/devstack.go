// Package devstack starts real Vault (`vault server -dev`) and Redis
// (`redis-server`) processes on free loopback ports and stops them again.
// Tests (through internal/testenv) and `piivault bench` use it; production
// never does.
package devstack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// VaultVersion is the Vault release the Makefile builds.
const VaultVersion = "1.21.0"

// Stack is a running Vault (dev mode, in memory) and Redis pair.
type Stack struct {
	VaultAddr string
	RootToken string
	RedisAddr string
	RedisURL  string

	dir   string
	vault *exec.Cmd
	redis *exec.Cmd
	mu    sync.Mutex
}

// VaultPID is the Vault server's process id (0 when it is not running),
// for a benchmark that reads its CPU time.
func (s *Stack) VaultPID() int { return s.pid(&s.vault) }

// RedisPID is the Redis server's process id (0 when it is not running),
// for a benchmark that reads its CPU time.
func (s *Stack) RedisPID() int { return s.pid(&s.redis) }

// pid is the process id of *cmd, read under mu (a restart replaces it).
func (s *Stack) pid(cmd **exec.Cmd) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := *cmd; c != nil && c.Process != nil {
		return c.Process.Pid
	}
	return 0
}

// VaultBinary finds the vault binary: $PIIVAULT_VAULT_BIN, then `vault` on
// PATH, then the Makefile's cache (~/.cache/piivault/vault-<version>).
func VaultBinary() (string, error) {
	if p := os.Getenv("PIIVAULT_VAULT_BIN"); p != "" {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("vault"); err == nil {
		return p, nil
	}
	if cache, err := os.UserCacheDir(); err == nil {
		p := filepath.Join(cache, "piivault", "vault-"+VaultVersion)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no vault binary: run `make vault` (make test and make run build it) first")
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

// Start starts Redis and Vault on free loopback ports.
func Start() (*Stack, error) {
	dir, err := os.MkdirTemp("", "piivault-devstack-")
	if err != nil {
		return nil, err
	}
	raw := make([]byte, 16)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	s := &Stack{dir: dir, RootToken: "root-" + hex.EncodeToString(raw)}
	if err := s.startRedis(0); err != nil {
		s.Stop()
		return nil, fmt.Errorf("redis: %w", err)
	}
	if err := s.startVault(); err != nil {
		s.Stop()
		return nil, fmt.Errorf("vault: %w", err)
	}
	return s, nil
}

// StartRedis starts Redis alone, for a Stack whose Vault is elsewhere (a
// VaultCluster): the caller fills in VaultAddr and RootToken.
func StartRedis() (*Stack, error) {
	dir, err := os.MkdirTemp("", "piivault-devstack-")
	if err != nil {
		return nil, err
	}
	s := &Stack{dir: dir}
	if err := s.startRedis(0); err != nil {
		s.Stop()
		return nil, fmt.Errorf("redis: %w", err)
	}
	return s, nil
}

func (s *Stack) startVault() error {
	bin, err := VaultBinary()
	if err != nil {
		return err
	}
	port, err := FreePort()
	if err != nil {
		return err
	}
	s.VaultAddr = fmt.Sprintf("http://127.0.0.1:%d", port)
	cmd := exec.Command(bin, "server", "-dev",
		"-dev-listen-address=127.0.0.1:"+strconv.Itoa(port),
		"-dev-root-token-id="+s.RootToken, "-dev-no-store-token")
	cmd.Env = append(os.Environ(), "HOME="+s.dir, "VAULT_DISABLE_MLOCK=true")
	if err := startLogged(cmd, filepath.Join(s.dir, "vault.log")); err != nil {
		return err
	}
	s.vault = cmd
	return waitFor(30*time.Second, func() error {
		resp, err := http.Get(s.VaultAddr + "/v1/sys/health")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("health %d", resp.StatusCode)
		}
		return nil
	})
}

// startRedis starts redis-server; port 0 picks a free one, otherwise it
// restarts on the given port (fault tests bring Redis back where it was).
func (s *Stack) startRedis(port int) error {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return errors.New("no redis-server on PATH: `make test` installs the Debian package redis-server")
	}
	if port == 0 {
		if port, err = FreePort(); err != nil {
			return err
		}
	}
	s.RedisAddr = fmt.Sprintf("127.0.0.1:%d", port)
	s.RedisURL = "redis://" + s.RedisAddr + "/0"
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir, "--protected-mode", "yes")
	cmd.SysProcAttr = childAttrs()
	if err := cmd.Start(); err != nil {
		return err
	}
	s.redis = cmd
	probe := redis.NewClient(&redis.Options{Addr: s.RedisAddr, MaxRetries: -1, DialTimeout: time.Second})
	defer probe.Close()
	return waitFor(10*time.Second, func() error { return probe.Ping(context.Background()).Err() })
}

// StopRedis kills Redis (a crash, not a clean shutdown).
func (s *Stack) StopRedis() {
	s.mu.Lock()
	defer s.mu.Unlock()
	kill(s.redis)
	s.redis = nil
}

// RestartRedis starts Redis again on the same port, with empty data.
func (s *Stack) RestartRedis() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, port, _ := net.SplitHostPort(s.RedisAddr)
	p, _ := strconv.Atoi(port)
	return s.startRedis(p)
}

// StopVault kills Vault.
func (s *Stack) StopVault() {
	s.mu.Lock()
	defer s.mu.Unlock()
	kill(s.vault)
	s.vault = nil
}

// Stop stops both processes and removes their files.
func (s *Stack) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	kill(s.vault)
	kill(s.redis)
	s.vault, s.redis = nil, nil
	os.RemoveAll(s.dir)
}

func kill(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	_ = cmd.Wait()
}

// startLogged starts cmd as a child (see childAttrs) with its output
// appended to the file at path.
func startLogged(cmd *exec.Cmd, path string) error {
	log, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = childAttrs()
	if err := cmd.Start(); err != nil {
		log.Close()
		return err
	}
	// The child holds its own copy of the descriptor.
	return log.Close()
}

// childAttrs puts a child in its own process group (so kill reaches its
// children) and has the kernel kill it if this process dies first.
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
