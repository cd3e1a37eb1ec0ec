package devstack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster is a Redis Cluster of masters on loopback (no replicas), to show
// that piivault's key layout and scripts work where keys live on several
// nodes.
type Cluster struct {
	Addrs []string
	URL   string // redis+cluster://first?addr=second&addr=...
	dir   string
	procs []*exec.Cmd
}

// StartRedisCluster starts n cluster-enabled redis-servers and joins them.
func StartRedisCluster(n int) (*Cluster, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New("no redis-server on PATH")
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		return nil, errors.New("no redis-cli on PATH")
	}
	dir, err := os.MkdirTemp("", "piivault-cluster-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir}
	for i := 0; i < n; i++ {
		port, err := FreePort()
		if err != nil {
			c.Stop()
			return nil, err
		}
		nodeDir := filepath.Join(dir, strconv.Itoa(port))
		if err := os.MkdirAll(nodeDir, 0o700); err != nil {
			c.Stop()
			return nil, err
		}
		cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf", "--save", "", "--appendonly", "no", "--dir", nodeDir)
		cmd.SysProcAttr = childAttrs()
		if err := cmd.Start(); err != nil {
			c.Stop()
			return nil, err
		}
		c.procs = append(c.procs, cmd)
		c.Addrs = append(c.Addrs, fmt.Sprintf("127.0.0.1:%d", port))
	}
	if err := waitPing(c.Addrs...); err != nil {
		c.Stop()
		return nil, err
	}
	args := append([]string{"--cluster", "create"}, c.Addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		c.Stop()
		return nil, fmt.Errorf("redis-cli --cluster create: %v: %s", err, out)
	}
	// Every node must see the whole cluster up (each learns the slot map on
	// its own): a client may ask any of them first.
	for _, a := range c.Addrs {
		probe := redis.NewClient(&redis.Options{Addr: a, MaxRetries: -1})
		err := waitFor(20*time.Second, func() error {
			info, err := probe.ClusterInfo(context.Background()).Result()
			if err != nil {
				return err
			}
			if !strings.Contains(info, "cluster_state:ok") {
				return errors.New("cluster not ok yet at " + a)
			}
			return nil
		})
		probe.Close()
		if err != nil {
			c.Stop()
			return nil, err
		}
	}
	c.URL = "redis+cluster://" + c.Addrs[0]
	for i, a := range c.Addrs[1:] {
		sep := "&"
		if i == 0 {
			sep = "?"
		}
		c.URL += sep + "addr=" + a
	}
	return c, nil
}

// Stop stops every node and removes their files.
func (c *Cluster) Stop() {
	for _, p := range c.procs {
		kill(p)
	}
	os.RemoveAll(c.dir)
}

// waitPing waits until every Redis (or Sentinel) at addrs answers PING.
func waitPing(addrs ...string) error {
	for _, a := range addrs {
		probe := redis.NewClient(&redis.Options{Addr: a, MaxRetries: -1})
		err := waitFor(10*time.Second, func() error { return probe.Ping(context.Background()).Err() })
		probe.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", a, err)
		}
	}
	return nil
}
