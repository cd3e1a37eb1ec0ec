package vault

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
)

// SplitAddrs reads VAULT_ADDR, which may list the nodes of an HA cluster
// separated by commas. Each must be an http(s) URL with a host.
func SplitAddrs(v string) ([]string, error) {
	var out []string
	for _, a := range strings.Split(v, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		u, err := url.Parse(a)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("%q is not an http(s) URL", a)
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		return nil, errors.New("no address")
	}
	return out, nil
}

// failover sends each request to the node that last answered and moves to
// the next one only when a node cannot have acted on it: the connection was
// refused (the node is down) or the node answered 503 (sealed, or a standby
// that knows no active node). Any live, unsealed node will do: standbys
// forward requests to the active node, so after an election the client
// follows the new active node without knowing which one it is.
type failover struct {
	base  http.RoundTripper
	nodes []*url.URL
	cur   atomic.Int32
}

func newFailover(base http.RoundTripper, addrs []string) (*failover, error) {
	f := &failover{base: base}
	for _, a := range addrs {
		u, err := url.Parse(a)
		if err != nil {
			return nil, err
		}
		f.nodes = append(f.nodes, u)
	}
	return f, nil
}

func (f *failover) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil && req.GetBody == nil {
		// Vault requests are small: keep the body to send it again.
		body, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		req.Body, _ = req.GetBody()
	}
	start := int(f.cur.Load())
	var lastResp *http.Response
	var lastErr error
	for i := range f.nodes {
		n := (start + i) % len(f.nodes)
		try := req.Clone(req.Context())
		try.URL.Scheme, try.URL.Host, try.Host = f.nodes[n].Scheme, f.nodes[n].Host, f.nodes[n].Host
		if req.GetBody != nil && i > 0 {
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			try.Body = body
		}
		resp, err := f.base.RoundTrip(try)
		if err != nil {
			if !refused(err) {
				return nil, err // it may have reached the node: never send it twice
			}
			lastErr = err
			continue
		}
		if resp.StatusCode == http.StatusServiceUnavailable && i < len(f.nodes)-1 {
			if lastResp != nil {
				lastResp.Body.Close()
			}
			lastResp = resp
			continue
		}
		if lastResp != nil {
			lastResp.Body.Close()
		}
		f.cur.Store(int32(n))
		return resp, nil
	}
	if lastResp != nil {
		return lastResp, nil
	}
	return nil, lastErr
}

// refused tells a request that never reached a node: the dial failed.
func refused(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
