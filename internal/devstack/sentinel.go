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

// SentinelMaster is the name the Sentinels monitor the primary under.
const SentinelMaster = "piivault"

// Sentinel is a Redis primary, its replicas and three Sentinels on
// loopback, all from Debian's redis-server (`--sentinel` runs a Sentinel).
type Sentinel struct {
	Primary   string
	Replica   string   // the first replica
	Replicas  []string // all of them
	Sentinels []string
	URL       string // redis+sentinel://s1?master=piivault&addr=s2&addr=s3
	dir       string
	primary   *exec.Cmd
	procs     []*exec.Cmd
}

// StartSentinel starts the primary, n replicas (at least one) and three
// Sentinels and waits until the Sentinels see every replica.
func StartSentinel(n int) (*Sentinel, error) {
	n = max(n, 1)
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New("no redis-server on PATH")
	}
	dir, err := os.MkdirTemp("", "piivault-sentinel-")
	if err != nil {
		return nil, err
	}
	s := &Sentinel{dir: dir}
	start := func(args ...string) (string, *exec.Cmd, error) {
		port, err := FreePort()
		if err != nil {
			return "", nil, err
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		cmd := exec.Command(bin, append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "",
			"--appendonly", "no", "--dir", dir, "--dbfilename", strconv.Itoa(port) + ".rdb"}, args...)...)
		cmd.SysProcAttr = childAttrs()
		if err := cmd.Start(); err != nil {
			return "", nil, err
		}
		s.procs = append(s.procs, cmd)
		return addr, cmd, nil
	}
	if s.Primary, s.primary, err = start(); err != nil {
		s.Stop()
		return nil, err
	}
	host, port := "127.0.0.1", s.Primary[len("127.0.0.1:"):]
	for i := 0; i < n; i++ {
		r, _, err := start("--replicaof", host, port)
		if err != nil {
			s.Stop()
			return nil, err
		}
		s.Replicas = append(s.Replicas, r)
	}
	s.Replica = s.Replicas[0]
	for i := 0; i < 3; i++ {
		p, err := FreePort()
		if err != nil {
			s.Stop()
			return nil, err
		}
		conf := filepath.Join(dir, fmt.Sprintf("sentinel-%d.conf", p))
		body := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor %s %s %s 2\n"+
			"sentinel down-after-milliseconds %s 1000\nsentinel failover-timeout %s 5000\n",
			p, dir, SentinelMaster, host, port, SentinelMaster, SentinelMaster)
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			s.Stop()
			return nil, err
		}
		cmd := exec.Command(bin, conf, "--sentinel")
		cmd.SysProcAttr = childAttrs()
		if err := cmd.Start(); err != nil {
			s.Stop()
			return nil, err
		}
		s.procs = append(s.procs, cmd)
		s.Sentinels = append(s.Sentinels, fmt.Sprintf("127.0.0.1:%d", p))
	}
	if err := waitPing(append(append([]string{s.Primary}, s.Replicas...), s.Sentinels...)...); err != nil {
		s.Stop()
		return nil, err
	}
	// Every replica must be synced (online) before a test counts on WAIT.
	pc := redis.NewClient(&redis.Options{Addr: s.Primary, MaxRetries: -1})
	err = waitFor(20*time.Second, func() error {
		info, err := pc.Info(context.Background(), "replication").Result()
		if err != nil {
			return err
		}
		if online := strings.Count(info, "state=online"); online < n {
			return fmt.Errorf("%d of %d replicas online", online, n)
		}
		return nil
	})
	pc.Close()
	if err != nil {
		s.Stop()
		return nil, err
	}
	// Every Sentinel must know the primary and see the replicas attached.
	for _, a := range s.Sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: a, MaxRetries: -1})
		err := waitFor(20*time.Second, func() error {
			reps, err := sc.Replicas(context.Background(), SentinelMaster).Result()
			if err != nil {
				return err
			}
			if len(reps) < n {
				return fmt.Errorf("%d of %d replicas seen", len(reps), n)
			}
			return nil
		})
		sc.Close()
		if err != nil {
			s.Stop()
			return nil, fmt.Errorf("sentinel %s: %w", a, err)
		}
	}
	s.URL = fmt.Sprintf("redis+sentinel://%s?master=%s&addr=%s&addr=%s", s.Sentinels[0], SentinelMaster, s.Sentinels[1], s.Sentinels[2])
	return s, nil
}

// StopPrimary kills the primary, as a crash would; the Sentinels then
// promote a replica.
func (s *Sentinel) StopPrimary() { kill(s.primary) }

// CutReplicas cuts every replica off the primary, as a network partition
// would: each is given a wrong masterauth and its link is killed, so it
// keeps trying and failing to resync (the primary has no password, and
// refuses AUTH). The primary goes on answering writes. HealReplicas undoes it.
func (s *Sentinel) CutReplicas(ctx context.Context) error {
	for _, r := range s.Replicas {
		c := redis.NewClient(&redis.Options{Addr: r, MaxRetries: -1})
		err := c.ConfigSet(ctx, "masterauth", "partitioned").Err()
		if err == nil {
			err = c.Do(ctx, "CLIENT", "KILL", "TYPE", "master").Err()
		}
		c.Close()
		if err != nil {
			return fmt.Errorf("cut replica %s: %w", r, err)
		}
	}
	// The primary must see them gone before the partition counts.
	p := redis.NewClient(&redis.Options{Addr: s.Primary, MaxRetries: -1})
	defer p.Close()
	return waitFor(10*time.Second, func() error {
		info, err := p.Info(ctx, "replication").Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "connected_slaves:0") {
			return errors.New("replicas still connected")
		}
		return nil
	})
}

// HealReplicas clears the wrong masterauth, so the replicas can sync with
// whichever primary the Sentinels point them at.
func (s *Sentinel) HealReplicas(ctx context.Context) error {
	for _, r := range s.Replicas {
		c := redis.NewClient(&redis.Options{Addr: r, MaxRetries: -1})
		err := c.ConfigSet(ctx, "masterauth", "").Err()
		c.Close()
		if err != nil {
			return fmt.Errorf("heal replica %s: %w", r, err)
		}
	}
	return nil
}

// Stop stops every process and removes their files.
func (s *Sentinel) Stop() {
	for _, p := range s.procs {
		kill(p)
	}
	os.RemoveAll(s.dir)
}

// Describe reports each node's role and link and each Sentinel's view of
// the primary, for a failed test's log.
func (s *Sentinel) Describe(ctx context.Context) string {
	var b strings.Builder
	for _, a := range append([]string{s.Primary}, s.Replicas...) {
		c := redis.NewClient(&redis.Options{Addr: a, MaxRetries: -1, DialTimeout: time.Second})
		info, err := c.Info(ctx, "replication").Result()
		c.Close()
		if err != nil {
			fmt.Fprintf(&b, "%s: %v\n", a, err)
			continue
		}
		var keep []string
		for _, l := range strings.Split(info, "\r\n") {
			if strings.HasPrefix(l, "role:") || strings.HasPrefix(l, "master_port:") || strings.HasPrefix(l, "master_link_status:") ||
				strings.HasPrefix(l, "connected_slaves:") || strings.HasPrefix(l, "slave") {
				keep = append(keep, l)
			}
		}
		fmt.Fprintf(&b, "%s: %s\n", a, strings.Join(keep, " "))
	}
	for _, a := range s.Sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: a, MaxRetries: -1, DialTimeout: time.Second})
		addr, err := sc.GetMasterAddrByName(ctx, SentinelMaster).Result()
		sc.Close()
		fmt.Fprintf(&b, "sentinel %s: primary %v %v\n", a, addr, err)
	}
	return b.String()
}
