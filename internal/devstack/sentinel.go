package devstack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelMaster is the name the Sentinels monitor the primary under.
const SentinelMaster = "piivault"

// Sentinel is a Redis primary, one replica and three Sentinels on
// loopback, all from Debian's redis-server (`--sentinel` runs a Sentinel).
type Sentinel struct {
	Primary   string
	Replica   string
	Sentinels []string
	URL       string // redis+sentinel://s1?master=piivault&addr=s2&addr=s3
	dir       string
	primary   *exec.Cmd
	procs     []*exec.Cmd
}

// StartSentinel starts the primary, the replica and three Sentinels and
// waits until the Sentinels agree on the primary.
func StartSentinel() (*Sentinel, error) {
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
	if s.Replica, _, err = start("--replicaof", host, port); err != nil {
		s.Stop()
		return nil, err
	}
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
	if err := waitPing(append([]string{s.Primary, s.Replica}, s.Sentinels...)...); err != nil {
		s.Stop()
		return nil, err
	}
	// Every Sentinel must know the primary and see the replica attached.
	for _, a := range s.Sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: a, MaxRetries: -1})
		err := waitFor(20*time.Second, func() error {
			reps, err := sc.Replicas(context.Background(), SentinelMaster).Result()
			if err != nil {
				return err
			}
			if len(reps) == 0 {
				return errors.New("no replica seen yet")
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
// promote the replica.
func (s *Sentinel) StopPrimary() { kill(s.primary) }

// Stop stops every process and removes their files.
func (s *Sentinel) Stop() {
	for _, p := range s.procs {
		kill(p)
	}
	os.RemoveAll(s.dir)
}
