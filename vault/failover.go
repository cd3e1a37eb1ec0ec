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
// the next one only when a node cannot have acted on it: the connection
// could not be made (the node is down; the dialer gives up after a second),
// the node is sealed, it is a standby that knows no active node, or it
// redirects to the active node instead of forwarding. Any live, unsealed
// node will do: standbys forward requests to the active node, so after an
// election the client follows the new active node without knowing which
// one it is. A request that may have reached a working node (a timeout, a
// reset, any other answer) is never sent again.
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
	// Only requests to the configured address are ours to place; one that
	// follows a redirect goes where the redirect says.
	if req.URL.Host != f.nodes[0].Host {
		return f.base.RoundTrip(req)
	}
	getBody := req.GetBody
	if req.Body != nil && getBody == nil {
		// Vault requests are small: keep the body to send it again.
		body, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		getBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	} else if req.Body != nil {
		req.Body.Close() // each try sends its own copy
	}
	start := int(f.cur.Load())
	var lastResp *http.Response
	var lastErr error
	discard := func() {
		if lastResp != nil {
			lastResp.Body.Close()
			lastResp = nil
		}
	}
	for i := range f.nodes {
		if err := req.Context().Err(); err != nil {
			discard()
			return nil, err
		}
		n := (start + i) % len(f.nodes)
		try := req.Clone(req.Context())
		try.URL.Scheme, try.URL.Host, try.Host = f.nodes[n].Scheme, f.nodes[n].Host, f.nodes[n].Host
		if getBody != nil {
			body, err := getBody()
			if err != nil {
				discard()
				return nil, err
			}
			try.Body, try.GetBody = body, getBody
		}
		resp, err := f.base.RoundTrip(try)
		if err != nil {
			if !dialFailed(err) {
				discard()
				return nil, err // it may have reached the node: never send it twice
			}
			lastErr = err
			continue
		}
		if i < len(f.nodes)-1 && notActed(resp) {
			discard()
			lastResp = resp
			continue
		}
		discard()
		f.cur.Store(int32(n))
		return resp, nil
	}
	if lastResp != nil {
		return lastResp, nil
	}
	return nil, lastErr
}

// dialFailed tells a request that never reached a node: the connection
// could not be made.
func dialFailed(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// notActed reads what a node says when it did not act on a request: sealed
// (503 "Vault is sealed"), a standby that knows no active node (500 "local
// node not active but active cluster node not found"), or a standby that
// redirects rather than forwards (307). Up to 4 KiB of an error body is
// read to tell, and put back for the caller.
func notActed(resp *http.Response) bool {
	switch resp.StatusCode {
	case http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	case http.StatusServiceUnavailable, http.StatusInternalServerError:
	default:
		return false
	}
	peek, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body = readCloser{io.MultiReader(bytes.NewReader(peek), resp.Body), resp.Body}
	text := string(peek)
	if resp.StatusCode == http.StatusServiceUnavailable {
		return strings.Contains(text, "Vault is sealed")
	}
	return strings.Contains(text, "active cluster node not found")
}

type readCloser struct {
	io.Reader
	io.Closer
}
