package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"piivault/orders"
)

// mapEnv is a getenv over a map.
func mapEnv(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// piivaultBin builds cmd/piivault once per test run: the benchmark and
// seed are measured against the real binary, as make bench does.
func piivaultBin(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds piivault and starts Vault and Redis")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "piivault-bench-test-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "piivault")
		out, err := exec.Command("go", "build", "-o", builtBin, "piivault/cmd/piivault").CombinedOutput()
		if err != nil {
			buildErr = &buildError{err, string(out)}
		}
	})
	require.NoError(t, buildErr)
	return builtBin
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return "go build piivault: " + e.err.Error() + ": " + e.out }

func TestMain(m *testing.M) {
	code := m.Run()
	if builtBin != "" {
		os.RemoveAll(filepath.Dir(builtBin))
	}
	os.Exit(code)
}

func TestCommandLine(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		stdout  string // a part of stdout, on success
		wantErr string // a part of the error; "" for success
	}{
		{name: "no arguments", args: nil, stdout: "usage: piivault-bench"},
		{name: "help", args: []string{"help"}, stdout: "seed --fake N"},
		{name: "--help", args: []string{"--help"}, stdout: "never shipped"},
		{name: "seed --help", args: []string{"seed", "--help"}, stdout: "-fake"},
		{name: "run --help", args: []string{"run", "-h"}, stdout: "-piivault"},
		{name: "unknown command", args: []string{"serve"}, wantErr: `unknown command "serve"`},
		{name: "seed without --fake", args: []string{"seed"}, wantErr: "want --fake N"},
		{name: "seed with a stray argument", args: []string{"seed", "--fake", "5", "extra"}, wantErr: `unexpected argument "extra"`},
		{name: "seed without an API key", args: []string{"seed", "--fake", "5"}, wantErr: "PIIVAULT_API_KEY"},
		{name: "seed with a bad prefix", args: []string{"seed", "--fake", "5", "--prefix", "a b"}, wantErr: "--prefix"},
		{name: "run with bad levels", args: []string{"run", "--levels", "1,x"}, wantErr: "--levels"},
		{name: "run without a piivault binary", args: []string{"run", "--piivault", "/nonexistent/piivault"}, wantErr: "no piivault binary"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := realMain(context.Background(), tt.args, &stdout, &stderr, mapEnv(tt.env))
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Contains(t, stdout.String(), tt.stdout)
		})
	}
}

func TestFakeOrder(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		r := fakeOrder("t", i)
		body, err := json.Marshal(r)
		require.NoError(t, err)
		_, err = orders.DecodeRequest(body) // what POST /v1/orders accepts
		require.NoError(t, err, "order %d", i)
		require.True(t, strings.HasSuffix(r.Shipping.Email, "@example.com"), r.Shipping.Email)
		require.True(t, strings.HasPrefix(r.Shipping.Phone, "+1555"))
		require.False(t, seen[r.OrderID])
		seen[r.OrderID] = true
	}
	require.Equal(t, fakeOrder("t", 7), fakeOrder("t", 7), "order i is the same every time")
	require.NotEqual(t, fakeOrder("t", 7).Shipping, fakeOrder("t", 8).Shipping)
}
