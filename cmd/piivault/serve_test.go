package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"piivault/internal/devstack"
)

// selfSigned writes a throwaway certificate for 127.0.0.1 and returns its
// files and a pool that trusts it.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "piivault-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	kb, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600))
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestServeOverTLSAndShutsDownCleanly(t *testing.T) {
	h := newHarness(t, nil, nil) // for its Vault and Redis
	certFile, keyFile, pool := selfSigned(t)
	port, err := devstack.FreePort()
	require.NoError(t, err)
	vars := baseEnv(h.env)
	vars["PIIVAULT_LISTEN"] = fmt.Sprintf("127.0.0.1:%d", port)
	vars["PIIVAULT_TLS_CERT"], vars["PIIVAULT_TLS_KEY"] = certFile, keyFile
	debugPort, err := devstack.FreePort()
	require.NoError(t, err)
	vars["PIIVAULT_DEBUG_LISTEN"] = fmt.Sprintf("127.0.0.1:%d", debugPort)

	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	go func() { done <- realMain(ctx, []string{"serve"}, nil, stdout, stderr, envOf(vars)) }()

	url := fmt.Sprintf("https://127.0.0.1:%d/readyz", port)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	require.Eventually(t, func() bool {
		resp, err := client.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, 15*time.Second, 100*time.Millisecond)

	resp, err := client.Get(url)
	require.NoError(t, err)
	resp.Body.Close()
	require.Contains(t, resp.Header.Get("Strict-Transport-Security"), "max-age=")

	// The profiler answers on its own loopback listener, not on the API's.
	prof, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/", debugPort))
	require.NoError(t, err)
	prof.Body.Close()
	require.Equal(t, 200, prof.StatusCode)
	onAPI, err := client.Get(fmt.Sprintf("https://127.0.0.1:%d/debug/pprof/", port))
	require.NoError(t, err)
	onAPI.Body.Close()
	require.Equal(t, 404, onAPI.StatusCode)

	old := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: pool, MaxVersion: tls.VersionTLS11}}}
	_, err = old.Get(url)
	require.Error(t, err, "TLS 1.1 must be refused")

	stop() // what SIGTERM does
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not shut down")
	}
	// The server's log, access lines included, is JSON on stdout.
	require.Contains(t, stdout.String(), `"msg":"access"`)
	require.Contains(t, stdout.String(), `"route":"/readyz"`)
	require.Contains(t, stdout.String(), `"msg":"piivault serving"`)
	require.Empty(t, stderr.String())
}

func TestServeRefusesAnIdentityThatCanDecrypt(t *testing.T) {
	h := newHarness(t, nil, nil)
	vars := map[string]string{"VAULT_ADDR": h.env.VaultAddr, "VAULT_TOKEN": h.env.RootToken, "REDIS_URL": h.env.RedisURL}
	err := realMain(context.Background(), []string{"serve"}, nil, io.Discard, io.Discard, envOf(vars))
	require.ErrorContains(t, err, "can decrypt")

	// With AppRole configured, a leftover operator VAULT_TOKEN is ignored.
	both := baseEnv(h.env)
	both["VAULT_TOKEN"] = h.env.RootToken
	cfg, err := loadConfig(envOf(both))
	require.NoError(t, err)
	a, err := newApp(context.Background(), cfg, discardLogger())
	require.NoError(t, err)
	defer a.close()
	can, err := a.vault.CanDecrypt(context.Background())
	require.NoError(t, err)
	require.False(t, can)
}

func TestProfilerRefusesCallersOffLoopback(t *testing.T) {
	srv := debugServer("127.0.0.1:0", discardLogger())
	for _, c := range []struct {
		remote string
		status int
	}{{"127.0.0.1:50000", 200}, {"[::1]:50000", 200}, {"10.1.2.3:50000", 403}, {"203.0.113.9:443", 403}} {
		req := httptest.NewRequest("GET", "/debug/pprof/", nil)
		req.RemoteAddr = c.remote
		w := httptest.NewRecorder()
		srv.Handler.ServeHTTP(w, req)
		require.Equal(t, c.status, w.Code, c.remote)
	}
}
