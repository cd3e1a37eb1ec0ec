package devstack

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// VaultCluster is a three-node Vault HA cluster on integrated storage
// (raft) on loopback, from the same binary as the dev server: initialised
// with one unseal key, unsealed, and joined. Tests stop its active node to
// see piivault through an election.
type VaultCluster struct {
	Addrs     []string // API addresses, node 0 first
	RootToken string
	UnsealKey string

	dir   string
	bin   string
	mu    sync.Mutex
	procs []*exec.Cmd
	ports [][2]int // API and cluster port of each node
}

// StartVaultCluster starts the three nodes and returns once one is active
// and the other two are unsealed standbys.
func StartVaultCluster() (*VaultCluster, error) {
	bin, err := VaultBinary()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "piivault-vaultha-")
	if err != nil {
		return nil, err
	}
	c := &VaultCluster{dir: dir, bin: bin, procs: make([]*exec.Cmd, 3)}
	for i := 0; i < 3; i++ {
		api, err := FreePort()
		if err != nil {
			c.Stop()
			return nil, err
		}
		cluster, err := FreePort()
		if err != nil {
			c.Stop()
			return nil, err
		}
		c.ports = append(c.ports, [2]int{api, cluster})
		c.Addrs = append(c.Addrs, fmt.Sprintf("http://127.0.0.1:%d", api))
	}
	for i := range c.Addrs {
		if err := c.startNode(i); err != nil {
			c.Stop()
			return nil, err
		}
	}
	// Initialise node 0 and unseal it: it becomes the active node.
	var init struct {
		Keys      []string `json:"keys"`
		RootToken string   `json:"root_token"`
	}
	if err := c.call(0, "PUT", "sys/init", "", map[string]any{"secret_shares": 1, "secret_threshold": 1}, &init); err != nil {
		c.Stop()
		return nil, fmt.Errorf("init: %w", err)
	}
	c.UnsealKey, c.RootToken = init.Keys[0], init.RootToken
	if err := c.Unseal(0); err != nil {
		c.Stop()
		return nil, err
	}
	if err := waitFor(30*time.Second, func() error { return c.healthIs(0, http.StatusOK) }); err != nil {
		c.Stop()
		return nil, fmt.Errorf("node 0 never became active: %w", err)
	}
	// Join the other two to node 0 and unseal them: they become standbys.
	for i := 1; i < 3; i++ {
		if err := c.call(i, "POST", "sys/storage/raft/join", "", map[string]any{"leader_api_addr": c.Addrs[0]}, nil); err != nil {
			c.Stop()
			return nil, fmt.Errorf("node %d join: %w", i, err)
		}
		if err := c.Unseal(i); err != nil {
			c.Stop()
			return nil, err
		}
	}
	for i := 1; i < 3; i++ {
		if err := waitFor(60*time.Second, func() error { return c.healthIs(i, http.StatusTooManyRequests) }); err != nil {
			c.Stop()
			return nil, fmt.Errorf("node %d never became a standby: %w", i, err)
		}
	}
	// Every node must be a voter before a test may stop the leader.
	if err := waitFor(60*time.Second, func() error {
		var cfg struct {
			Data struct {
				Config struct {
					Servers []struct {
						Voter bool `json:"voter"`
					} `json:"servers"`
				} `json:"config"`
			} `json:"data"`
		}
		if err := c.call(0, "GET", "sys/storage/raft/configuration", c.RootToken, nil, &cfg); err != nil {
			return err
		}
		voters := 0
		for _, s := range cfg.Data.Config.Servers {
			if s.Voter {
				voters++
			}
		}
		if voters != 3 {
			return fmt.Errorf("%d voters", voters)
		}
		return nil
	}); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

func (c *VaultCluster) startNode(i int) error {
	api, cluster := c.ports[i][0], c.ports[i][1]
	data := filepath.Join(c.dir, fmt.Sprintf("node%d", i))
	if err := os.MkdirAll(data, 0o700); err != nil {
		return err
	}
	conf := filepath.Join(c.dir, fmt.Sprintf("node%d.hcl", i))
	body := fmt.Sprintf(`storage "raft" {
  path                   = %q
  node_id                = "node%d"
  performance_multiplier = 1
}
listener "tcp" {
  address         = "127.0.0.1:%d"
  cluster_address = "127.0.0.1:%d"
  tls_disable     = true
}
api_addr      = "http://127.0.0.1:%d"
cluster_addr  = "https://127.0.0.1:%d"
disable_mlock = true
ui            = false
`, data, i, api, cluster, api, cluster)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		return err
	}
	cmd := exec.Command(c.bin, "server", "-config="+conf)
	cmd.Env = append(os.Environ(), "HOME="+c.dir)
	if err := startLogged(cmd, filepath.Join(c.dir, fmt.Sprintf("node%d.log", i))); err != nil {
		return err
	}
	c.mu.Lock()
	c.procs[i] = cmd
	c.mu.Unlock()
	return waitFor(30*time.Second, func() error {
		resp, err := http.Get(c.Addrs[i] + "/v1/sys/seal-status")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
}

// Unseal unseals node i with the cluster's key.
func (c *VaultCluster) Unseal(i int) error {
	if err := c.call(i, "PUT", "sys/unseal", "", map[string]any{"key": c.UnsealKey}, nil); err != nil {
		return fmt.Errorf("node %d unseal: %w", i, err)
	}
	return nil
}

// Active returns the index of the active node, or -1 if none answers as active.
func (c *VaultCluster) Active() int {
	for i := range c.Addrs {
		if c.healthIs(i, http.StatusOK) == nil {
			return i
		}
	}
	return -1
}

// StopNode kills node i, as a crash would.
func (c *VaultCluster) StopNode(i int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	kill(c.procs[i])
	c.procs[i] = nil
}

// RestartNode starts node i again on its ports and unseals it; it rejoins
// the cluster from its own raft data.
func (c *VaultCluster) RestartNode(i int) error {
	if err := c.startNode(i); err != nil {
		return err
	}
	return c.Unseal(i)
}

// Stop stops every node and removes their data.
func (c *VaultCluster) Stop() {
	c.mu.Lock()
	for i, p := range c.procs {
		kill(p)
		c.procs[i] = nil
	}
	c.mu.Unlock()
	os.RemoveAll(c.dir)
}

// healthIs checks sys/health's status code: 200 active, 429 standby.
func (c *VaultCluster) healthIs(i, want int) error {
	resp, err := http.Get(c.Addrs[i] + "/v1/sys/health")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != want {
		return fmt.Errorf("node %d health %d", i, resp.StatusCode)
	}
	return nil
}

func (c *VaultCluster) call(i int, method, path, token string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	req, err := http.NewRequest(method, c.Addrs[i]+"/v1/"+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		var e struct {
			Errors []string `json:"errors"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, strings.Join(e.Errors, "; "))
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return errors.New(path + ": " + err.Error())
	}
	return nil
}
