package vault

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// node is a stand-in Vault node that answers with status and Vault's error
// body for it, and counts the requests (and bodies) it saw.
type node struct {
	srv    *httptest.Server
	status int
	answer string
	bodies []string
}

// Vault's own answers (vault/http/handler.go, vault/barrier.go).
const (
	sealed   = `{"errors":["Vault is sealed"]}`
	noActive = `{"errors":["local node not active but active cluster node not found"]}`
)

func newNode(t *testing.T, status int, answer string) *node {
	n := &node{status: status, answer: answer}
	n.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		n.bodies = append(n.bodies, string(b))
		w.WriteHeader(n.status)
		_, _ = io.WriteString(w, n.answer)
	}))
	t.Cleanup(n.srv.Close)
	return n
}

// downAddr is a loopback address nothing listens on.
func downAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := "http://" + l.Addr().String()
	l.Close()
	return addr
}

func TestFailoverMovesOnOnlyWhenANodeCannotHaveActed(t *testing.T) {
	checkFailover(t, http.DefaultTransport)
}

// checkFailover runs the failover's cases over base, the transport it wraps.
func checkFailover(t *testing.T, base http.RoundTripper) {
	type reply struct {
		status int // 0: the node is down
		body   string
	}
	tests := []struct {
		name    string
		replies []reply
		want    int    // status the caller sees
		body    string // and its body
		seen    []int  // requests each node saw
	}{
		{"first node answers", []reply{{200, "ok"}, {200, ""}, {200, ""}}, 200, "ok", []int{1, 0, 0}},
		{"down node skipped", []reply{{0, ""}, {200, "ok"}, {200, ""}}, 200, "ok", []int{0, 1, 0}},
		{"sealed node skipped", []reply{{503, sealed}, {200, "ok"}, {200, ""}}, 200, "ok", []int{1, 1, 0}},
		{"standby without an active node skipped", []reply{{500, noActive}, {200, "ok"}, {200, ""}}, 200, "ok", []int{1, 1, 0}},
		{"redirecting standby skipped", []reply{{307, ""}, {200, "ok"}, {200, ""}}, 200, "ok", []int{1, 1, 0}},
		{"a refusal is the answer", []reply{{403, "denied"}, {200, ""}, {200, ""}}, 403, "denied", []int{1, 0, 0}},
		{"a server error is not retried", []reply{{500, "boom"}, {200, ""}, {200, ""}}, 500, "boom", []int{1, 0, 0}},
		{"another 503 may have acted: not retried", []reply{{503, "upstream"}, {200, ""}, {200, ""}}, 503, "upstream", []int{1, 0, 0}},
		{"every node sealed: the last answer", []reply{{503, sealed}, {503, sealed}, {0, ""}}, 503, sealed, []int{1, 1, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var addrs []string
			nodes := make([]*node, len(tt.replies))
			for i, r := range tt.replies {
				if r.status == 0 {
					addrs = append(addrs, downAddr(t))
					continue
				}
				nodes[i] = newNode(t, r.status, r.body)
				addrs = append(addrs, nodes[i].srv.URL)
			}
			fo, err := newFailover(base, addrs)
			require.NoError(t, err)
			c := &http.Client{Transport: fo}
			c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
			resp, err := c.Post(addrs[0]+"/v1/transit/encrypt/k", "application/json", strings.NewReader(`{"plaintext":"x"}`))
			require.NoError(t, err)
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.Equal(t, tt.want, resp.StatusCode)
			require.Equal(t, tt.body, string(got), "the answer's body arrives whole")
			for i, n := range nodes {
				if n == nil {
					continue
				}
				require.Len(t, n.bodies, tt.seen[i], "node %d", i)
				for _, b := range n.bodies {
					require.Equal(t, `{"plaintext":"x"}`, b, "the body goes to every node tried")
				}
			}
		})
	}
}

func TestFailoverSticksToTheNodeThatAnswered(t *testing.T) {
	a, b := newNode(t, 503, sealed), newNode(t, 200, "")
	fo, err := newFailover(http.DefaultTransport, []string{a.srv.URL, b.srv.URL})
	require.NoError(t, err)
	c := &http.Client{Transport: fo}
	for i := 0; i < 3; i++ {
		resp, err := c.Get(a.srv.URL + "/v1/sys/health")
		require.NoError(t, err)
		resp.Body.Close()
	}
	require.Len(t, a.bodies, 1, "after b answered, requests start at b")
	require.Len(t, b.bodies, 3)
}

func TestFailoverLeavesRedirectsAlone(t *testing.T) {
	active, standby := newNode(t, 200, "ok"), newNode(t, 200, "")
	fo, err := newFailover(http.DefaultTransport, []string{standby.srv.URL, active.srv.URL})
	require.NoError(t, err)
	c := &http.Client{Transport: fo}
	// A request to another host (where a standby's redirect points) goes there.
	resp, err := c.Get(active.srv.URL + "/v1/sys/health")
	require.NoError(t, err)
	resp.Body.Close()
	require.Len(t, active.bodies, 1)
	require.Empty(t, standby.bodies)
}

func TestSplitAddrs(t *testing.T) {
	got, err := SplitAddrs(" https://v1:8200, https://v2:8200 ,")
	require.NoError(t, err)
	require.Equal(t, []string{"https://v1:8200", "https://v2:8200"}, got)
	for _, bad := range []string{"", ",", "v1:8200", "https://v1:8200,ftp://v2"} {
		_, err := SplitAddrs(bad)
		require.Error(t, err, bad)
	}
}
