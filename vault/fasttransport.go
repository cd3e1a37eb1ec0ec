package vault

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
)

// fastTransport carries transit calls, the request paths' Vault calls, over
// fasthttp's client instead of net/http's. net/http hands every call
// between the caller's goroutine and the connection's own read and write
// loops, each hand-over a wake-up that this VM charges dearly for; fasthttp
// writes and reads on the caller's goroutine. On the 2-core development
// machine (BenchmarkTransitCallClientCPU) a call through vaultapi cost the
// calling process about 150 µs of CPU over it, against 230 over net/http.
//
// It is a RoundTripper, so the calls still go through vaultapi, and under
// the failover transport when Vault has several nodes. It speaks HTTP/1.1
// alone. A request whose proxy (the environment's, through base's proxy
// function) is set goes through base, net/http's transport. Every other
// Vault call (logins, setup, the anchor, staff) keeps net/http.
type fastTransport struct {
	base    *http.Transport // proxied requests, and the TLS and dial settings
	client  *fasthttp.Client
	fresh   *fasthttp.Client // a call made again: never a kept connection
	timeout time.Duration    // a request whose context has no deadline
}

// newFastTransport builds a fastTransport with base's TLS settings and the
// dialer's timeout.
func newFastTransport(base *http.Transport, dialTimeout, timeout time.Duration) *fastTransport {
	var tlsConfig *tls.Config
	if base.TLSClientConfig != nil {
		tlsConfig = base.TLSClientConfig.Clone()
		// vaultapi's transport offers HTTP/2 too (it configures it for
		// net/http); fasthttp speaks HTTP/1.1 alone, and a node that
		// picked h2 would not understand it.
		tlsConfig.NextProtos = []string{"http/1.1"}
	}
	return &fastTransport{base: base, timeout: timeout,
		client: newFastClient(tlsConfig, dialTimeout, timeout), fresh: newFastClient(tlsConfig, dialTimeout, timeout)}
}

func newFastClient(tlsConfig *tls.Config, dialTimeout, timeout time.Duration) *fasthttp.Client {
	return &fasthttp.Client{
		TLSConfig:       tlsConfig,
		MaxConnsPerHost: 512,
		// Past that many calls in flight to one node, a call waits for a
		// connection (within its own deadline) rather than failing.
		MaxConnWaitTimeout: timeout,
		// Vault closes an idle connection after 5 minutes; one kept longer
		// than this is never found closed under a request.
		MaxIdleConnDuration: 30 * time.Second,
		// fasthttp would send a call again after any error, a timeout
		// included; RoundTrip does so itself, once, only when no answer
		// came (closedUnder).
		RetryIfErr: func(*fasthttp.Request, int, error) (bool, bool) { return false, false },
		// The dial ends at the call's deadline or the dialer's timeout,
		// whichever comes first, and its errors are the dialer's own, so
		// that failover tells a node that could not be reached (a
		// *net.OpError "dial") from any other.
		DialTimeout: func(addr string, left time.Duration) (net.Conn, error) {
			if left <= 0 || left > dialTimeout {
				left = dialTimeout
			}
			return (&net.Dialer{Timeout: left, KeepAlive: 30 * time.Second}).Dial("tcp", addr)
		},
		// Bounds a TLS handshake (fasthttp makes it under the write
		// timeout) and each write; the call's deadline bounds the rest.
		WriteTimeout:                  timeout,
		NoDefaultUserAgentHeader:      true,
		DisableHeaderNamesNormalizing: true,
		DisablePathNormalizing:        true,
	}
}

func (t *fastTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.base.Proxy != nil {
		if proxy, err := t.base.Proxy(req); err != nil || proxy != nil {
			return t.base.RoundTrip(req)
		}
	}
	ctx := req.Context()
	if err := ctx.Err(); err != nil {
		closeBody(req)
		return nil, err
	}
	freq, fresp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer release(freq, fresp)
	freq.Header.SetMethod(req.Method)
	freq.SetRequestURI(req.URL.String())
	for name, values := range req.Header {
		for _, v := range values {
			freq.Header.Add(name, v)
		}
	}
	if req.Body != nil {
		_, err := io.Copy(freq.BodyWriter(), req.Body)
		closeBody(req)
		if err != nil {
			return nil, err
		}
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(t.timeout)
	}
	err := t.client.DoDeadline(freq, fresp, deadline)
	if closedUnder(err) {
		// A kept connection the node had closed (a Vault node that died
		// or restarted): net/http's read loop would have dropped it from
		// the pool when it closed; fasthttp learns it only now. The other
		// kept connections may be as stale, so they go, and the call is
		// made once more on a connection dialled for it, whose dial tells
		// failover whether the node is down. Transit calls change nothing
		// in Vault, so one that had reached it after all and is sent
		// again changes nothing either.
		t.client.CloseIdleConnections()
		freq.SetConnectionClose() // and not kept: fresh never holds one
		err = t.fresh.DoDeadline(freq, fresp, deadline)
	}
	if err != nil {
		if errors.Is(err, fasthttp.ErrTimeout) {
			if ctxErr := ctx.Err(); ctxErr != nil {
				return nil, ctxErr
			}
			return nil, context.DeadlineExceeded
		}
		return nil, err
	}
	resp := &http.Response{
		Status:     strconv.Itoa(fresp.StatusCode()) + " " + http.StatusText(fresp.StatusCode()),
		StatusCode: fresp.StatusCode(),
		Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:  make(http.Header),
		Request: req,
	}
	for name, value := range fresp.Header.All() {
		resp.Header.Add(string(name), string(value))
	}
	// The answer is copied out of fasthttp's pooled buffer, which is
	// wiped before it goes back (a decrypt's answer holds an order's
	// shipping block), and the copy is wiped when its reader closes.
	body := bytes.Clone(fresp.Body())
	resp.ContentLength = int64(len(body))
	resp.Body = &wipedOnClose{Reader: bytes.NewReader(body), buf: body}
	return resp, nil
}

// closedUnder tells a call that got no answer at all because its
// connection was closed or reset: the first byte of the answer could not
// be read (fasthttp reports any such error so), or the request could not
// be written. An error after part of an answer is not one.
func closedUnder(err error) bool {
	var op *net.OpError
	return errors.Is(err, fasthttp.ErrConnectionClosed) || (errors.As(err, &op) && op.Op == "write")
}

// release wipes the bodies of fasthttp's pooled request and answer (a
// transit request holds plaintext, an answer may) and returns them. As
// with net/http, the connections' own read and write buffers are reused,
// not wiped.
func release(req *fasthttp.Request, resp *fasthttp.Response) {
	clear(req.Body())
	clear(resp.Body())
	fasthttp.ReleaseRequest(req)
	fasthttp.ReleaseResponse(resp)
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// wipedOnClose is an answer's body that wipes its bytes when closed.
type wipedOnClose struct {
	*bytes.Reader
	buf []byte
}

func (w *wipedOnClose) Close() error {
	clear(w.buf)
	w.Reader.Reset(nil)
	return nil
}
