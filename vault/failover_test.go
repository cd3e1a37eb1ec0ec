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

// node is a stand-in Vault node that answers with status and counts the
// requests (and bodies) it saw.
type node struct {
	srv    *httptest.Server
	status int
	bodies []string
}

func newNode(t *testing.T, status int) *node {
	n := &node{status: status}
	n.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		n.bodies = append(n.bodies, string(b))
		w.WriteHeader(n.status)
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
	tests := []struct {
		name     string
		statuses []int // 0: the node is down
		want     int   // status the caller sees
		seen     []int // requests each node saw
	}{
		{"first node answers", []int{200, 200, 200}, 200, []int{1, 0, 0}},
		{"down node skipped", []int{0, 200, 200}, 200, []int{0, 1, 0}},
		{"sealed node skipped", []int{503, 200, 200}, 200, []int{1, 1, 0}},
		{"a refusal is the answer", []int{403, 200, 200}, 403, []int{1, 0, 0}},
		{"a server error is not retried", []int{500, 200, 200}, 500, []int{1, 0, 0}},
		{"every node sealed: the last 503", []int{503, 503, 0}, 503, []int{1, 1, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var addrs []string
			nodes := make([]*node, len(tt.statuses))
			for i, st := range tt.statuses {
				if st == 0 {
					addrs = append(addrs, downAddr(t))
					continue
				}
				nodes[i] = newNode(t, st)
				addrs = append(addrs, nodes[i].srv.URL)
			}
			fo, err := newFailover(http.DefaultTransport, addrs)
			require.NoError(t, err)
			c := &http.Client{Transport: fo}
			resp, err := c.Post(addrs[0]+"/v1/transit/encrypt/k", "application/json", strings.NewReader(`{"plaintext":"x"}`))
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, tt.want, resp.StatusCode)
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
	a, b := newNode(t, 503), newNode(t, 200)
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

func TestSplitAddrs(t *testing.T) {
	got, err := SplitAddrs(" https://v1:8200, https://v2:8200 ,")
	require.NoError(t, err)
	require.Equal(t, []string{"https://v1:8200", "https://v2:8200"}, got)
	for _, bad := range []string{"", ",", "v1:8200", "https://v1:8200,ftp://v2"} {
		_, err := SplitAddrs(bad)
		require.Error(t, err, bad)
	}
}
