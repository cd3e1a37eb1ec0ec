// Package testenv gives tests a real Vault and Redis (from internal/devstack)
// bootstrapped with piivault's own setup, and stops them when the test or
// the package ends. Nothing here is a mock.
//
// A package shares one environment through Main and Shared; a test that
// stops a process (fault tests) starts its own with Start.
package testenv

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"piivault/internal/devstack"
	"piivault/vault"
)

// Env is a running Vault and Redis pair, set up for piivault.
type Env struct {
	*devstack.Stack
	RoleID   string
	SecretID string

	// Redis is a client of the environment's Redis.
	Redis *redis.Client
	// Root is Vault as the operator, with the root token.
	Root *vault.Operator
	// Service is a Vault client logged in with the service AppRole.
	Service *vault.Client
}

// Logger is a logger for tests that discards output unless PIIVAULT_TEST_LOG is set.
func Logger() *slog.Logger {
	if os.Getenv("PIIVAULT_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
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
// with Redis flushed and the audit anchor in Vault reset, so the test starts
// from an empty store and an empty trail. Tests using it must not run in
// parallel with each other.
func Shared(tb testing.TB) *Env {
	tb.Helper()
	sharedOnce.Do(func() { shared, sharedErr = start() })
	require.NoError(tb, sharedErr, "start test environment")
	require.NoError(tb, shared.Redis.FlushAll(context.Background()).Err())
	require.NoError(tb, shared.Root.ResetAuditAnchor(context.Background()))
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
	stack, err := devstack.Start()
	if err != nil {
		return nil, err
	}
	return setUp(stack)
}

// StartHA starts Redis and a three-node Vault raft cluster, runs setup
// against the cluster, and stops them when tb ends. The Env's VaultAddr
// lists all three nodes, as an operator would set VAULT_ADDR.
func StartHA(tb testing.TB) (*Env, *devstack.VaultCluster) {
	tb.Helper()
	cluster, err := devstack.StartVaultCluster()
	require.NoError(tb, err, "start the Vault cluster")
	tb.Cleanup(cluster.Stop)
	stack, err := devstack.StartRedis()
	require.NoError(tb, err, "start Redis")
	stack.VaultAddr, stack.RootToken = strings.Join(cluster.Addrs, ","), cluster.RootToken
	e, err := setUp(stack)
	require.NoError(tb, err, "set up the Vault cluster")
	tb.Cleanup(e.stop)
	return e, cluster
}

// setUp runs piivault's setup on the stack's Vault and connects to both.
func setUp(stack *devstack.Stack) (*Env, error) {
	var err error
	e := &Env{Stack: stack}
	e.Redis = redis.NewClient(&redis.Options{Addr: stack.RedisAddr, MaxRetries: -1,
		DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e.Root, err = vault.NewOperator(ctx, vault.Config{Addr: stack.VaultAddr, Token: stack.RootToken}, Logger())
	if err == nil {
		_, err = e.Root.Setup(ctx, vault.SetupOptions{BindCIDRs: []string{"127.0.0.0/8"}})
	}
	if err == nil {
		e.RoleID, e.SecretID, err = e.Root.AppRoleCredentials(ctx)
	}
	if err == nil {
		e.Service, err = vault.New(ctx, vault.Config{Addr: stack.VaultAddr, RoleID: e.RoleID, SecretID: e.SecretID}, Logger())
	}
	if err != nil {
		e.stop()
		return nil, fmt.Errorf("vault setup: %w", err)
	}
	return e, nil
}

// StopRedis kills Redis (a crash, not a clean shutdown).
func (e *Env) StopRedis(tb testing.TB) { tb.Helper(); e.Stack.StopRedis() }

// RestartRedis starts Redis again on the same port (with empty data).
func (e *Env) RestartRedis(tb testing.TB) { tb.Helper(); require.NoError(tb, e.Stack.RestartRedis()) }

// StopVault kills Vault.
func (e *Env) StopVault(tb testing.TB) { tb.Helper(); e.Stack.StopVault() }

func (e *Env) stop() {
	if e.Redis != nil {
		e.Redis.Close()
	}
	e.Stack.Stop()
}
