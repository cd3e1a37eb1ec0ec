package vault

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fastOver is the transport transit's calls take, over base's settings.
func fastOver(base *http.Transport) *fastTransport {
	return newFastTransport(base, time.Second, 5*time.Second)
}

func TestFastTransportCarriesARequestAndItsAnswerWhole(t *testing.T) {
	for _, overTLS := range []bool{false, true} {
		t.Run(map[bool]string{false: "http", true: "https"}[overTLS], func(t *testing.T) {
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				if r.Method != http.MethodPut || r.URL.Path != "/v1/transit/encrypt/k" ||
					r.Header.Get("X-Vault-Token") != "tok" || string(b) != `{"plaintext":"eA=="}` {
					w.WriteHeader(http.StatusBadRequest)
					return
				}
				w.Header().Set("Content-Type", "application/json")
				w.Header().Add("X-Seen", "a")
				w.Header().Add("X-Seen", "b")
				w.WriteHeader(http.StatusCreated)
				_, _ = io.WriteString(w, `{"data":{"ciphertext":"vault:v1:x"}}`)
			})
			srv := httptest.NewUnstartedServer(h)
			// net/http's transport as vaultapi sets it up (it offers
			// HTTP/2, as Vault's own server does).
			base := vaultapi.DefaultConfig().HttpClient.Transport.(*http.Transport)
			if overTLS {
				srv.EnableHTTP2 = true
				srv.StartTLS()
				// The environment's TLS settings (VAULT_CACERT, ...) reach
				// the fast transport through net/http's.
				base.TLSClientConfig.RootCAs = srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
			} else {
				srv.Start()
			}
			defer srv.Close()

			req, err := http.NewRequest(http.MethodPut, srv.URL+"/v1/transit/encrypt/k", strings.NewReader(`{"plaintext":"eA=="}`))
			require.NoError(t, err)
			req.Header.Set("X-Vault-Token", "tok")
			resp, err := (&http.Client{Transport: fastOver(base)}).Do(req)
			require.NoError(t, err)
			body, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			require.NoError(t, resp.Body.Close())
			require.Equal(t, http.StatusCreated, resp.StatusCode)
			require.Equal(t, "201 Created", resp.Status)
			require.Equal(t, `{"data":{"ciphertext":"vault:v1:x"}}`, string(body))
			require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
			require.Equal(t, []string{"a", "b"}, resp.Header.Values("X-Seen"))
			require.EqualValues(t, len(body), resp.ContentLength)
		})
	}
}

// A connection closed before any answer (a kept one whose node died, or a
// node that died under the call) costs one more try on a fresh connection,
// and no more: transit calls change nothing in Vault.
func TestFastTransportTriesAClosedCallOnceMore(t *testing.T) {
	var seen atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if seen.Add(1) > 2 {
			_, _ = io.WriteString(w, `{}`)
			return
		}
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close() // no answer
		}
	}))
	defer srv.Close()
	tr := fastOver(&http.Transport{})
	req, err := http.NewRequest(http.MethodPut, srv.URL+"/v1/transit/decrypt/k", strings.NewReader(`{}`))
	require.NoError(t, err)
	_, err = tr.RoundTrip(req)
	require.Error(t, err)
	require.EqualValues(t, 2, seen.Load(), "sent once more, then the error")

	// A node that answers after one dropped connection answers the call.
	seen.Store(1)
	req, err = http.NewRequest(http.MethodPut, srv.URL+"/v1/transit/decrypt/k", strings.NewReader(`{}`))
	require.NoError(t, err)
	resp, err := tr.RoundTrip(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.EqualValues(t, 3, seen.Load())
}

// A node that dies leaves the connections kept to it closed: the next call
// neither fails on one of them nor waits, but goes to a fresh connection,
// whose dial failure failover reads as "down" and moves on.
func TestFailoverOverTheFastTransportLeavesADeadNodesKeptConnections(t *testing.T) {
	answering := func(name string) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, name)
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	a, b := answering("a"), answering("b")
	fo, err := newFailover(fastOver(&http.Transport{}), []string{a.URL, b.URL})
	require.NoError(t, err)
	c := &http.Client{Transport: fo}
	post := func() (string, error) {
		resp, err := c.Post(a.URL+"/v1/transit/encrypt/k", "application/json", strings.NewReader(`{"plaintext":"x"}`))
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return string(body), err
	}
	// Several connections kept to a, as under load.
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := post()
			assert.NoError(t, err)
			assert.Equal(t, "a", got)
		}()
	}
	wg.Wait()
	a.CloseClientConnections()
	a.Close()
	for range 8 {
		got, err := post()
		require.NoError(t, err)
		require.Equal(t, "b", got)
	}
}

func TestFastTransportEndsAtTheContextsDeadline(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release // a Vault that hangs
	}))
	defer srv.Close()
	defer close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, srv.URL+"/v1/transit/encrypt/k", strings.NewReader(`{}`))
	require.NoError(t, err)
	start := time.Now()
	_, err = fastOver(&http.Transport{}).RoundTrip(req)
	require.ErrorIs(t, err, context.DeadlineExceeded, "the outage mapping reads a deadline as Vault unavailable")
	require.Less(t, time.Since(start), 2*time.Second)

	// A context already ended sends nothing.
	req, err = http.NewRequestWithContext(ctx, http.MethodPut, srv.URL+"/v1/transit/encrypt/k", strings.NewReader(`{}`))
	require.NoError(t, err)
	_, err = fastOver(&http.Transport{}).RoundTrip(req)
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

// A node that takes the connection and then says nothing (an overloaded or
// frozen node, a stuck load balancer) costs a TLS call its timeout, not
// forever.
func TestFastTransportEndsAStalledTLSHandshake(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			defer conn.Close() // held open, silent
		}
	}()
	base := &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12}}
	tr := newFastTransport(base, time.Second, 300*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, "https://"+l.Addr().String()+"/v1/transit/encrypt/k", strings.NewReader(`{}`))
	require.NoError(t, err)
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := tr.RoundTrip(req)
		done <- err
	}()
	select {
	case err := <-done:
		require.Error(t, err)
		require.Less(t, time.Since(start), 2*time.Second)
	case <-time.After(5 * time.Second):
		t.Fatal("the call never ended")
	}
}

// A proxy named by the environment is net/http's to use: the request goes
// through it, not around it.
func TestFastTransportLeavesProxiedRequestsToNetHTTP(t *testing.T) {
	var proxied atomic.Int32
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxied.Add(1)
		_, _ = io.WriteString(w, `{"via":"proxy"}`)
	}))
	defer proxy.Close()
	proxyURL, err := url.Parse(proxy.URL)
	require.NoError(t, err)
	base := &http.Transport{Proxy: http.ProxyURL(proxyURL)}
	req, err := http.NewRequest(http.MethodGet, "http://vault.invalid:8200/v1/sys/health", nil)
	require.NoError(t, err)
	resp, err := fastOver(base).RoundTrip(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, `{"via":"proxy"}`, string(body))
	require.EqualValues(t, 1, proxied.Load())
}

// A decrypt's answer holds an order's shipping block: the copy handed to
// vaultapi is wiped as soon as its reader is closed.
func TestFastTransportWipesAnAnswerWhenItIsClosed(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"data":{"plaintext":"SmFuZSBEb2UsIDEgTWFpbiBTdA=="}}`)
	}))
	defer srv.Close()
	req, err := http.NewRequest(http.MethodPut, srv.URL+"/v1/transit/decrypt/k", strings.NewReader(`{}`))
	require.NoError(t, err)
	resp, err := fastOver(&http.Transport{}).RoundTrip(req)
	require.NoError(t, err)
	_, err = io.ReadAll(resp.Body)
	require.NoError(t, err)
	w, ok := resp.Body.(*wipedOnClose)
	require.True(t, ok)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, make([]byte, len(w.buf)), w.buf)
}

// Failover goes over the fast transport as over net/http's: a node that
// cannot be reached is told from one that may have acted.
func TestFailoverOverTheFastTransport(t *testing.T) {
	checkFailover(t, fastOver(&http.Transport{}))
}
