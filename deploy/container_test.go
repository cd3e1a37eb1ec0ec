package deploy

// The container path: the Dockerfile, .dockerignore and compose.yaml at the
// repository root, and the compose stack's scripts in deploy/compose. No
// Docker engine runs on the development machines, so they are checked
// without one: compose.yaml through the Compose specification's own Go
// loader, the Dockerfile by a small parser here, the build stages' own go
// build commands run on a copy of the context the .dockerignore leaves, and
// the compose setup step, piivault serve and the demo storefront run as
// compose.yaml and the Dockerfile start them, against real Vault and Redis.

import (
	"bufio"
	"context"
	"debug/buildinfo"
	"debug/elf"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/require"

	"piivault/internal/devstack"
	"piivault/vault"
)

// root is the repository root, where the build context starts.
const root = ".."

// ---------------------------------------------------------------- compose

func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	// No OS environment and no .env: the file must stand on its own.
	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, "compose.yaml")},
		cli.WithWorkingDirectory(root), cli.WithEnv(nil))
	require.NoError(t, err)
	p, err := cli.ProjectFromOptions(context.Background(), opts)
	require.NoError(t, err, "compose.yaml does not load")
	return p
}

// TestComposeLoaderCatchesBrokenFiles shows the loader has teeth: a
// misspelt key, a malformed port and a dependency on no service each fail.
func TestComposeLoaderCatchesBrokenFiles(t *testing.T) {
	orig, err := os.ReadFile(filepath.Join(root, "compose.yaml"))
	require.NoError(t, err)
	for _, c := range []struct{ from, to, want string }{
		{"    healthcheck:\n      test: [\"CMD\", \"redis-cli\"", "    healthchek:\n      test: [\"CMD\", \"redis-cli\"", "healthchek"},
		{`"127.0.0.1:8080:8080"`, `"127.0.0.1:eighty:8080"`, "eighty"},
		{"      setup:\n        condition:", "      set-up:\n        condition:", "set-up"},
	} {
		t.Run(c.want, func(t *testing.T) {
			broken := strings.Replace(string(orig), c.from, c.to, 1)
			require.NotEqual(t, string(orig), broken)
			dir := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(broken), 0o600))
			opts, err := cli.NewProjectOptions([]string{filepath.Join(dir, "compose.yaml")},
				cli.WithWorkingDirectory(dir), cli.WithEnv(nil))
			require.NoError(t, err)
			_, err = cli.ProjectFromOptions(context.Background(), opts)
			require.Error(t, err)
			require.Contains(t, err.Error(), c.want)
		})
	}
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, err := p.GetService(name)
	require.NoError(t, err)
	return s
}

func env(s types.ServiceConfig, k string) string {
	if v := s.Environment[k]; v != nil {
		return *v
	}
	return ""
}

// TestComposeFileLoads loads compose.yaml as `docker compose` would and
// checks the stack it describes: the services and their images, ports on
// loopback only, build contexts, Dockerfiles and targets that exist, an
// order of start that waits for health, and the hand-over from setup to
// piivault and the storefront.
func TestComposeFileLoads(t *testing.T) {
	p := loadCompose(t)
	require.ElementsMatch(t, []string{"vault", "redis", "setup", "piivault", "storefront"}, p.ServiceNames())

	vaultSvc, redisSvc := service(t, p, "vault"), service(t, p, "redis")
	require.Equal(t, "hashicorp/vault:1.21", vaultSvc.Image)
	require.Equal(t, "redis:7", redisSvc.Image)
	_, tag, _ := strings.Cut(vaultSvc.Image, ":")
	require.True(t, strings.HasPrefix(devstack.VaultVersion, tag+"."),
		"compose runs the Vault release the tests run against (%s)", devstack.VaultVersion)
	require.Contains(t, []string(vaultSvc.Command), "-dev", "the try-it stack's Vault is in dev mode")
	raw, err := os.ReadFile(filepath.Join(root, "compose.yaml"))
	require.NoError(t, err)
	require.Contains(t, string(raw), "NOT FOR PRODUCTION")

	// Published ports: loopback only, and only piivault's network namespace.
	for _, s := range p.Services {
		for _, port := range s.Ports {
			require.Equal(t, "127.0.0.1", port.HostIP, "%s publishes %s:%d beyond loopback", s.Name, port.Published, port.Target)
		}
		if s.Name != "piivault" {
			require.Empty(t, s.Ports, "%s publishes a port", s.Name)
		}
	}

	// Builds: a context that exists, a Dockerfile in it, a stage of it.
	built := 0
	for _, s := range p.Services {
		if s.Build == nil {
			continue
		}
		built++
		ctxDir := s.Build.Context
		if !filepath.IsAbs(ctxDir) {
			ctxDir = filepath.Join(root, ctxDir)
		}
		st, err := os.Stat(ctxDir)
		require.NoError(t, err, "%s: build context", s.Name)
		require.True(t, st.IsDir())
		dockerfile := s.Build.Dockerfile
		if dockerfile == "" {
			dockerfile = "Dockerfile"
		}
		if !filepath.IsAbs(dockerfile) {
			dockerfile = filepath.Join(ctxDir, dockerfile)
		}
		df := parseDockerfile(t, dockerfile)
		require.NotEmpty(t, s.Build.Target, "%s names its stage", s.Name)
		require.NotNil(t, df.stage(s.Build.Target), "%s: no stage %q in %s", s.Name, s.Build.Target, dockerfile)
	}
	require.Equal(t, 3, built, "setup, piivault and storefront are built here")
	require.Equal(t, "piivault", service(t, p, "piivault").Build.Target,
		"compose runs the image `docker build .` makes")

	// Start order: what a service waits to be healthy has a healthcheck.
	wants := map[string]map[string]string{
		"setup":      {"vault": types.ServiceConditionHealthy, "redis": types.ServiceConditionHealthy},
		"piivault":   {"vault": types.ServiceConditionHealthy, "redis": types.ServiceConditionHealthy, "setup": types.ServiceConditionCompletedSuccessfully},
		"storefront": {"piivault": types.ServiceConditionStarted},
	}
	for name, deps := range wants {
		s := service(t, p, name)
		for dep, cond := range deps {
			require.Contains(t, s.DependsOn, dep, "%s waits for %s", name, dep)
			require.Equal(t, cond, s.DependsOn[dep].Condition, "%s waits for %s", name, dep)
		}
	}
	for _, s := range p.Services {
		for dep, d := range s.DependsOn {
			if d.Condition == types.ServiceConditionHealthy {
				hc := service(t, p, dep).HealthCheck
				require.True(t, hc != nil && len(hc.Test) > 1 && hc.Test[0] == "CMD", "%s waits for %s's health, which has no check", s.Name, dep)
			}
		}
	}

	// Addresses name the services.
	setup, pv, shop := service(t, p, "setup"), service(t, p, "piivault"), service(t, p, "storefront")
	for _, s := range []types.ServiceConfig{setup, pv} {
		require.Equal(t, "vault:8200", hostOf(t, env(s, "VAULT_ADDR")), s.Name)
		require.Equal(t, "redis:6379", hostOf(t, env(s, "REDIS_URL")), s.Name)
	}
	require.Equal(t, env(vaultSvc, "VAULT_DEV_ROOT_TOKEN_ID"), env(setup, "VAULT_TOKEN"), "setup is Vault's operator")
	require.Empty(t, env(pv, "VAULT_TOKEN"), "piivault runs as its AppRole, not with a token")

	// setup → piivault: the role id compose names, the secret id as a file
	// on a volume setup writes and piivault only reads.
	require.NotEmpty(t, env(pv, "PIIVAULT_VAULT_ROLE_ID"))
	require.Equal(t, env(setup, "PIIVAULT_DEMO_ROLE_ID"), env(pv, "PIIVAULT_VAULT_ROLE_ID"))
	require.Empty(t, env(pv, "PIIVAULT_VAULT_SECRET_ID"), "the secret id is never in compose.yaml")
	runDir := env(setup, "PIIVAULT_DEMO_DIR")
	require.Equal(t, runDir+"/secret_id", env(pv, "PIIVAULT_VAULT_SECRET_ID_FILE"))
	require.Equal(t, runDir, env(shop, "PIIVAULT_DEMO_DIR"))
	setupVol := volumeAt(t, setup, runDir)
	require.Equal(t, types.VolumeTypeVolume, setupVol.Type)
	require.False(t, setupVol.ReadOnly, "setup writes the run volume")
	require.Contains(t, p.Volumes, setupVol.Source)
	for _, s := range []types.ServiceConfig{pv, shop} {
		v := volumeAt(t, s, runDir)
		require.Equal(t, setupVol.Source, v.Source, "%s reads setup's volume", s.Name)
		require.True(t, v.ReadOnly, "%s mounts the run volume read-only", s.Name)
	}

	// The storefront shares piivault's network namespace: one address is
	// piivault for its server and for the browser, and its own port is
	// published by piivault at the origin its publishable key names.
	require.Equal(t, "service:piivault", shop.NetworkMode)
	published := map[uint32]string{}
	for _, port := range pv.Ports {
		published[port.Target] = port.Published
	}
	pvURL, err := url.Parse(env(shop, "PIIVAULT_URL"))
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1", pvURL.Hostname())
	pvPort := mustPort(t, pvURL.Port())
	require.Equal(t, strconv.Itoa(int(pvPort)), published[pvPort], "piivault's port, published as itself")
	_, shopPort, err := splitHostPort(env(shop, "STOREFRONT_LISTEN"))
	require.NoError(t, err)
	require.Equal(t, strconv.Itoa(int(shopPort)), published[shopPort], "the storefront's port, published as itself")
	require.Contains(t, strings.Fields(env(setup, "STOREFRONT_ORIGINS")), fmt.Sprintf("http://127.0.0.1:%d", shopPort))

	// The image's listen address is piivault's published container port.
	df := parseDockerfile(t, filepath.Join(root, "Dockerfile"))
	_, listenPort, err := splitHostPort(df.stage("piivault").env()["PIIVAULT_LISTEN"])
	require.NoError(t, err)
	require.Equal(t, pvPort, listenPort)

	// What runs the project's code gets no privileges and no writable root.
	for _, s := range []types.ServiceConfig{setup, pv, shop} {
		require.True(t, s.ReadOnly, "%s: read_only", s.Name)
		require.Equal(t, []string{"ALL"}, s.CapDrop, "%s: cap_drop", s.Name)
		require.Contains(t, s.SecurityOpt, "no-new-privileges:true", s.Name)
	}

	// The commands compose runs in the demo image are files it copies in.
	demo := df.stage("demo")
	for _, s := range []types.ServiceConfig{setup, shop} {
		require.Len(t, s.Command, 1, s.Name)
		require.NotEmpty(t, demo.fileAt(path.Join("/usr/local/bin", s.Command[0])), "%s: %s is not in the demo image", s.Name, s.Command[0])
	}
}

func hostOf(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	require.NoError(t, err, raw)
	return u.Host
}

func volumeAt(t *testing.T, s types.ServiceConfig, target string) types.ServiceVolumeConfig {
	t.Helper()
	for _, v := range s.Volumes {
		if v.Target == target {
			return v
		}
	}
	t.Fatalf("%s mounts nothing at %s", s.Name, target)
	return types.ServiceVolumeConfig{}
}

func splitHostPort(hp string) (string, uint32, error) {
	i := strings.LastIndexByte(hp, ':')
	if i < 0 {
		return "", 0, fmt.Errorf("%q is not host:port", hp)
	}
	n, err := strconv.ParseUint(hp[i+1:], 10, 16)
	return hp[:i], uint32(n), err
}

func mustPort(t *testing.T, s string) uint32 {
	t.Helper()
	n, err := strconv.ParseUint(s, 10, 16)
	require.NoError(t, err, s)
	return uint32(n)
}

// ------------------------------------------------------------- Dockerfile

// instruction is one Dockerfile instruction: its keyword, its --flags, and
// its arguments (the JSON array of the exec form, or the shell text).
type instruction struct {
	line  int
	cmd   string
	flags map[string]string
	args  string
	exec  []string // exec form, when args is a JSON array
}

// words splits the arguments of a COPY-like instruction.
func (in instruction) words() []string {
	if in.exec != nil {
		return in.exec
	}
	return strings.Fields(in.args)
}

type stage struct {
	index  int
	name   string
	base   string
	parent *stage // the earlier stage named by FROM, if any
	instrs []instruction
}

type dockerfile struct {
	globalArgs []string
	stages     []*stage
}

func (d *dockerfile) stage(name string) *stage {
	for _, s := range d.stages {
		if s.name == name || strconv.Itoa(s.index) == name {
			return s
		}
	}
	return nil
}

func (d *dockerfile) final() *stage { return d.stages[len(d.stages)-1] }

// env is the stage's ENV, its parent stages' included.
func (s *stage) env() map[string]string {
	m := map[string]string{}
	if s.parent != nil {
		m = s.parent.env()
	}
	for _, in := range s.of("ENV") {
		f := strings.Fields(in.args)
		if len(f) == 2 && !strings.Contains(f[0], "=") { // ENV K V
			m[f[0]] = f[1]
			continue
		}
		for _, kv := range f {
			k, v, _ := strings.Cut(kv, "=")
			m[k] = strings.Trim(v, `"`)
		}
	}
	return m
}

func (s *stage) of(cmd string) []instruction {
	var out []instruction
	for _, in := range s.instrs {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

func (s *stage) last(cmd string) (instruction, bool) {
	ins := s.of(cmd)
	if len(ins) == 0 {
		return instruction{}, false
	}
	return ins[len(ins)-1], true
}

// fileAt is the source COPY puts at dst in this stage ("" when none):
// "stage:path", "image:path" or a context path.
func (s *stage) fileAt(dst string) string {
	for _, in := range s.of("COPY") {
		w := in.words()
		to := w[len(w)-1]
		for _, src := range w[:len(w)-1] {
			p := to
			if strings.HasSuffix(to, "/") {
				p = to + path.Base(src)
			}
			if p == dst {
				if from := in.flags["from"]; from != "" {
					return from + ":" + src
				}
				return src
			}
		}
	}
	return ""
}

// parseDockerfile reads a Dockerfile: comments and blank lines dropped,
// backslash continuations joined, each instruction's --flags split off.
func parseDockerfile(t *testing.T, file string) *dockerfile {
	t.Helper()
	f, err := os.Open(file)
	require.NoError(t, err)
	defer f.Close()
	d := &dockerfile{}
	var cur *stage
	var text strings.Builder
	start, n := 0, 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") {
			if n == 1 || text.Len() == 0 {
				if k, _, ok := strings.Cut(strings.TrimPrefix(line, "#"), "="); ok && strings.TrimSpace(k) == "escape" {
					t.Fatalf("%s: an escape directive is not understood here", file)
				}
			}
			continue
		}
		if line == "" && text.Len() == 0 {
			continue
		}
		if text.Len() == 0 {
			start = n
		}
		if cont, ok := strings.CutSuffix(line, `\`); ok {
			text.WriteString(cont + " ")
			continue
		}
		text.WriteString(line)
		in := parseInstruction(t, start, text.String())
		text.Reset()
		if in.cmd == "FROM" {
			w := strings.Fields(in.args)
			cur = &stage{index: len(d.stages), base: w[0]}
			if len(w) == 3 && strings.EqualFold(w[1], "AS") {
				cur.name = w[2]
			} else {
				require.Len(t, w, 1, "line %d: FROM image [AS name]", start)
			}
			cur.parent = d.stage(cur.base)
			d.stages = append(d.stages, cur)
			continue
		}
		if cur == nil {
			require.Equal(t, "ARG", in.cmd, "line %d: only ARG comes before the first FROM", start)
			d.globalArgs = append(d.globalArgs, argName(in.args))
			continue
		}
		cur.instrs = append(cur.instrs, in)
	}
	require.NoError(t, sc.Err())
	require.Zero(t, text.Len(), "%s ends inside a continued line", file)
	require.NotEmpty(t, d.stages, "%s has no FROM", file)
	return d
}

func parseInstruction(t *testing.T, line int, text string) instruction {
	t.Helper()
	cmd, rest, _ := strings.Cut(text, " ")
	in := instruction{line: line, cmd: strings.ToUpper(cmd), flags: map[string]string{}}
	require.Equal(t, in.cmd, cmd, "line %d: instructions are written in capitals here", line)
	rest = strings.TrimSpace(rest)
	for strings.HasPrefix(rest, "--") {
		flag, after, _ := strings.Cut(rest, " ")
		k, v, _ := strings.Cut(strings.TrimPrefix(flag, "--"), "=")
		if k == "mount" {
			in.flags[k] += v + ";"
		} else {
			in.flags[k] = v
		}
		rest = strings.TrimSpace(after)
	}
	in.args = rest
	if strings.HasPrefix(rest, "[") {
		require.NoError(t, json.Unmarshal([]byte(rest), &in.exec), "line %d: exec form is a JSON array", line)
		if in.exec == nil {
			in.exec = []string{}
		}
	}
	return in
}

func argName(args string) string {
	k, _, _ := strings.Cut(strings.TrimSpace(args), "=")
	return k
}

// varRef finds $NAME and ${NAME...} in Dockerfile or shell text.
var varRef = regexp.MustCompile(`\$(?:\{([A-Za-z_][A-Za-z0-9_]*)|([A-Za-z_][A-Za-z0-9_]*))`)

// predefinedArgs are the build arguments BuildKit defines itself.
var predefinedArgs = []string{"TARGETPLATFORM", "TARGETOS", "TARGETARCH", "TARGETVARIANT",
	"BUILDPLATFORM", "BUILDOS", "BUILDARCH", "BUILDVARIANT"}

func refs(text string) []string {
	var out []string
	for _, m := range varRef.FindAllStringSubmatch(text, -1) {
		out = append(out, m[1]+m[2])
	}
	return out
}

// goLine is the `go` directive of go.mod.
func goLine(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, "go.mod"))
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(raw)
	require.NotNil(t, m, "go.mod has a go line")
	return string(m[1])
}

// goBuilds are the `go build` commands of a stage's RUN instructions, one
// string each (continuations joined, split at &&).
func goBuilds(s *stage) []string {
	var out []string
	for _, in := range s.of("RUN") {
		for _, part := range strings.Split(in.args, "&&") {
			if p := strings.TrimSpace(part); strings.HasPrefix(p, "go build ") {
				out = append(out, p)
			}
		}
	}
	return out
}

// outputOf is the -o path of the go build that builds pkg in stage s or
// its parents.
func outputOf(s *stage, pkg string) string {
	for ; s != nil; s = s.parent {
		for _, b := range goBuilds(s) {
			f := strings.Fields(b)
			if f[len(f)-1] != pkg {
				continue
			}
			if i := slices.Index(f, "-o"); i >= 0 && i+1 < len(f) {
				return f[i+1]
			}
		}
	}
	return ""
}

// producedIn reports whether stage s (or a parent) writes path: a go
// build's -o, or a COPY destination.
func producedIn(s *stage, p string) bool {
	for ; s != nil; s = s.parent {
		for _, b := range goBuilds(s) {
			f := strings.Fields(b)
			if i := slices.Index(f, "-o"); i >= 0 && i+1 < len(f) && f[i+1] == p {
				return true
			}
		}
		if s.fileAt(p) != "" {
			return true
		}
	}
	return false
}

// TestDockerfileIsSound checks the Dockerfile without an engine: the Go
// toolchain is go.mod's, every build argument used is declared, every
// COPY source is in the build context (or made by an earlier stage), the
// binary is static and trimmed, and the final image runs piivault serve as
// a non-root user on the port compose publishes.
func TestDockerfileIsSound(t *testing.T) {
	d := parseDockerfile(t, filepath.Join(root, "Dockerfile"))
	require.Empty(t, dockerfileProblems(t, d, loadDockerignore(t)))
}

// TestDockerfileCheckCatchesMistakes shows the check has teeth: each of
// these edits of a copy of the Dockerfile is reported.
func TestDockerfileCheckCatchesMistakes(t *testing.T) {
	orig, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	require.NoError(t, err)
	for _, c := range []struct{ from, to, want string }{
		{"FROM golang:" + goLine(t) + " AS build", "FROM golang:1.25 AS build", "go.mod's go line"},
		{"ARG VERSION\nRUN", "RUN", "uses $VERSION"},
		{"deploy/compose/setup.sh /usr", "deploy/compose/setup.bash /usr", "does not exist"},
		{"COPY . .", "COPY .git .", "excluded by .dockerignore"},
		{"COPY --from=build /out/piivault /piivault", "COPY --from=build /out/piivaul /piivault", "makes no /out/piivaul"},
		{"-X main.version=", "-X main.versoin=", "names no string variable"},
		{"USER 65532:65532\nEXPOSE", "USER root\nEXPOSE", "runs as root"},
		{`ENTRYPOINT ["/piivault"]`, `ENTRYPOINT /piivault`, "exec form"},
		{"-trimpath -buildvcs=false \\\n", "-buildvcs=false \\\n", "-trimpath"},
		{"ENV PIIVAULT_LISTEN=0.0.0.0:8080", "ENV PIIVAULT_LISTEN=127.0.0.1:8080", "0.0.0.0"},
	} {
		t.Run(c.want, func(t *testing.T) {
			broken := strings.Replace(string(orig), c.from, c.to, 1)
			require.NotEqual(t, string(orig), broken)
			p := filepath.Join(t.TempDir(), "Dockerfile")
			require.NoError(t, os.WriteFile(p, []byte(broken), 0o600))
			problems := dockerfileProblems(t, parseDockerfile(t, p), loadDockerignore(t))
			require.NotEmpty(t, problems)
			require.Contains(t, strings.Join(problems, "\n"), c.want)
		})
	}
}

// dockerfileProblems lists what is wrong with the Dockerfile d, whose
// build context is the repository root.
func dockerfileProblems(t *testing.T, d *dockerfile, ign dockerignore) []string {
	t.Helper()
	var problems []string
	check := func(ok bool, format string, args ...any) bool {
		if !ok {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
		return ok
	}

	// The build stage's Go is go.mod's go line, exactly.
	build := d.stage("build")
	if !check(build != nil, "no build stage") {
		return problems
	}
	img, tag, ok := strings.Cut(build.base, ":")
	v, _, _ := strings.Cut(tag, "-")
	check(ok && img == "golang" && v == goLine(t), "build stage is FROM %s, not golang:<go.mod's go line %s>", build.base, goLine(t))
	check(build.env()["GOTOOLCHAIN"] == "local", "GOTOOLCHAIN=local: no toolchain download behind go.mod's back")
	check(build.env()["CGO_ENABLED"] == "0", "CGO_ENABLED=0: a static binary")

	names := map[string]bool{}
	for _, s := range d.stages {
		if s.name != "" {
			check(!names[s.name], "stage %s named twice", s.name)
			names[s.name] = true
		}
		// Build arguments: FROM sees the global ones, the rest those
		// declared in the stage (ENV values are visible too).
		for _, r := range refs(s.base) {
			check(slices.Contains(d.globalArgs, r) || slices.Contains(predefinedArgs, r), "FROM %s: %s is not a global ARG", s.base, r)
		}
		declared := map[string]bool{}
		for k := range s.env() {
			declared[k] = true
		}
		for _, a := range predefinedArgs {
			declared[a] = true
		}
		for _, in := range s.instrs {
			if in.cmd == "ARG" {
				declared[argName(in.args)] = true
				continue
			}
			for _, r := range refs(in.args) {
				check(declared[r], "line %d: %s uses $%s, declared by no ARG or ENV before it in stage %s", in.line, in.cmd, r, s.name)
			}
			if in.cmd == "ENV" {
				for k := range (&stage{instrs: []instruction{in}}).env() {
					declared[k] = true
				}
			}
		}
		// COPY/ADD: from the context (present, not ignored), an earlier
		// stage that makes the file, or an image.
		for _, in := range append(s.of("COPY"), s.of("ADD")...) {
			w := in.words()
			if !check(len(w) >= 2, "line %d: %s SRC... DST", in.line, in.cmd) {
				continue
			}
			from := in.flags["from"]
			if from == "" {
				for _, src := range w[:len(w)-1] {
					problems = append(problems, contextProblems(t, ign, src, in.line)...)
				}
				continue
			}
			if fs := d.stage(from); fs != nil {
				check(fs.index < s.index, "line %d: --from=%s is not an earlier stage", in.line, from)
				for _, src := range w[:len(w)-1] {
					check(producedIn(fs, src), "line %d: stage %s makes no %s", in.line, from, src)
				}
				continue
			}
			check(strings.ContainsAny(from, ":/"), "line %d: --from=%s is neither a stage nor an image", in.line, from)
		}
	}

	// go build: trimmed, no VCS probe (.git is not in the context), and
	// every -X names a string variable of the package it builds.
	for _, s := range d.stages {
		for _, b := range goBuilds(s) {
			check(strings.Contains(b, "-trimpath"), "%s: no -trimpath", b)
			check(strings.Contains(b, "-buildvcs=false"), "%s: no -buildvcs=false", b)
			f := strings.Fields(b)
			pkg := f[len(f)-1]
			for _, m := range regexp.MustCompile(`-X main\.([A-Za-z_][A-Za-z0-9_]*)=`).FindAllStringSubmatch(b, -1) {
				check(hasStringVar(t, filepath.Join(root, pkg), m[1]), "%s: -X main.%s names no string variable of %s", b, m[1], pkg)
			}
		}
	}

	// The final stage is the service image.
	final := d.final()
	check(final.name == "piivault", "the last stage (what a plain `docker build .` makes) is %q, not piivault", final.name)
	check(strings.HasPrefix(final.base, "gcr.io/distroless/static") && strings.HasSuffix(final.base, ":nonroot"),
		"final stage is FROM %s, not distroless static (CA certificates, no shell) :nonroot", final.base)
	if user, ok := final.last("USER"); check(ok, "the final stage says no USER") {
		uid, _, _ := strings.Cut(user.args, ":")
		check(uid != "0" && uid != "root", "the image runs as root")
	}
	ep, _ := final.last("ENTRYPOINT")
	check(slices.Equal(ep.exec, []string{"/piivault"}), "ENTRYPOINT is %q, not [\"/piivault\"] in exec form", ep.args)
	cmd, _ := final.last("CMD")
	check(slices.Equal(cmd.exec, []string{"serve"}), "CMD is %q, not [\"serve\"]", cmd.args)
	src := final.fileAt("/piivault")
	stageName, p, ok := strings.Cut(src, ":")
	if check(ok && d.stage(stageName) != nil, "/piivault is copied from %q, not a build stage", src) {
		check(p == outputOf(d.stage(stageName), "./cmd/piivault"), "/piivault is not the build of ./cmd/piivault")
	}
	expose, _ := final.last("EXPOSE")
	host, port, err := splitHostPort(final.env()["PIIVAULT_LISTEN"])
	if check(err == nil, "the image sets no PIIVAULT_LISTEN (piivault's default is loopback)") {
		check(host == "0.0.0.0", "PIIVAULT_LISTEN=%s: the image listens on 0.0.0.0", final.env()["PIIVAULT_LISTEN"])
		check(strconv.Itoa(int(port)) == expose.args, "EXPOSE %s, but PIIVAULT_LISTEN's port is %d", expose.args, port)
	}

	// The demo stage takes its vault CLI from the image compose runs Vault from.
	vaultImage := service(t, loadCompose(t), "vault").Image
	if demo := d.stage("demo"); check(demo != nil, "no demo stage") {
		check(demo.fileAt("/usr/local/bin/vault") == vaultImage+":/bin/vault", "the demo stage's vault CLI is not from %s", vaultImage)
	}
	return problems
}

// hasStringVar reports whether the Go package in dir (tests aside)
// declares a package-level string variable name.
func hasStringVar(t *testing.T, dir, name string) bool {
	t.Helper()
	pkgs, err := parser.ParseDir(token.NewFileSet(), dir, func(fi fs.FileInfo) bool {
		return !strings.HasSuffix(fi.Name(), "_test.go")
	}, 0)
	require.NoError(t, err)
	for _, pkg := range pkgs {
		for _, f := range pkg.Files {
			for _, decl := range f.Decls {
				g, ok := decl.(*ast.GenDecl)
				if !ok || g.Tok != token.VAR {
					continue
				}
				for _, spec := range g.Specs {
					vs := spec.(*ast.ValueSpec)
					for i, id := range vs.Names {
						if id.Name != name {
							continue
						}
						if id, ok := vs.Type.(*ast.Ident); ok && id.Name == "string" {
							return true
						}
						if vs.Type == nil && i < len(vs.Values) {
							if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
								return true
							}
						}
					}
				}
			}
		}
	}
	return false
}

// ------------------------------------------------------------ .dockerignore

// ignorePattern is one .dockerignore line, as Docker reads it: anchored at
// the context root, * and ? within a path element, ** across them, a
// match on a directory covering what is under it, the last match winning.
type ignorePattern struct {
	re      *regexp.Regexp
	exclude bool // false for a "!" exception
}

type dockerignore []ignorePattern

func loadDockerignore(t *testing.T) dockerignore {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	require.NoError(t, err)
	var out dockerignore
	for _, l := range strings.Split(string(raw), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		p := ignorePattern{exclude: true}
		if rest, ok := strings.CutPrefix(l, "!"); ok {
			p.exclude, l = false, rest
		}
		l = strings.TrimPrefix(path.Clean("/"+l), "/")
		var re strings.Builder
		re.WriteString("^")
		for i := 0; i < len(l); i++ {
			switch c := l[i]; {
			case strings.HasPrefix(l[i:], "**/"):
				re.WriteString("(.*/)?")
				i += 2
			case strings.HasPrefix(l[i:], "**"):
				re.WriteString(".*")
				i++
			case c == '*':
				re.WriteString("[^/]*")
			case c == '?':
				re.WriteString("[^/]")
			default:
				re.WriteString(regexp.QuoteMeta(string(c)))
			}
		}
		re.WriteString("(/.*)?$")
		p.re = regexp.MustCompile(re.String())
		out = append(out, p)
	}
	return out
}

// ignored reports whether the context path rel (slash-separated) is left
// out of the build context.
func (d dockerignore) ignored(rel string) bool {
	out := false
	for _, p := range d {
		if p.re.MatchString(rel) {
			out = p.exclude
		}
	}
	return out
}

// contextProblems reports a COPY source (src) that names no file in the
// build context left after .dockerignore.
func contextProblems(t *testing.T, ign dockerignore, src string, line int) []string {
	t.Helper()
	rel := strings.TrimPrefix(path.Clean("/"+src), "/")
	if rel == "" {
		return nil // the whole context
	}
	matches, err := filepath.Glob(filepath.Join(root, filepath.FromSlash(rel)))
	require.NoError(t, err)
	if len(matches) == 0 {
		return []string{fmt.Sprintf("line %d: COPY source %s does not exist", line, src)}
	}
	var out []string
	for _, m := range matches {
		r, err := filepath.Rel(root, m)
		require.NoError(t, err)
		if ign.ignored(filepath.ToSlash(r)) {
			out = append(out, fmt.Sprintf("line %d: COPY source %s is excluded by .dockerignore", line, src))
		}
	}
	return out
}

// TestDockerignoreKeepsTheSourceOnly: local state, credentials and built
// binaries stay out of the context; every file the image's packages are
// compiled or embedded from stays in.
func TestDockerignoreKeepsTheSourceOnly(t *testing.T) {
	ign := loadDockerignore(t)
	for _, p := range []string{".run/approle.env", ".run/demo-staff.txt", ".env", ".git/HEAD", "bin/piivault",
		"piivault", "piivault-bench", "tools/vault/vault", "orders/orders.test", "cover.out"} {
		require.True(t, ign.ignored(p), "%s is in the build context", p)
	}
	for _, p := range []string{"go.mod", "go.sum", "cmd/piivault/main.go", "cmd/piivault-bench/main.go",
		"deploy/compose/setup.sh", "deploy/compose/storefront.sh"} {
		require.False(t, ign.ignored(p), "%s is left out of the build context", p)
	}

	for _, f := range sourceFiles(t) {
		require.False(t, ign.ignored(f), "%s is compiled into an image but left out of the build context", f)
	}
}

// sourceFiles are the module's files the Dockerfile's go build commands
// read: go.mod, go.sum and the Go and embedded files of every package of
// this module the built commands import, relative to the root.
func sourceFiles(t *testing.T) []string {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-json=Dir,GoFiles,EmbedFiles,Module", "./cmd/piivault", "./examples/storefront", "./scripts/totp")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.Output()
	require.NoError(t, err)
	abs, err := filepath.Abs(root)
	require.NoError(t, err)
	files := []string{"go.mod", "go.sum"}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p struct {
			Dir                 string
			GoFiles, EmbedFiles []string
			Module              *struct{ Main bool }
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else {
			require.NoError(t, err)
		}
		if p.Module == nil || !p.Module.Main {
			continue
		}
		rel, err := filepath.Rel(abs, p.Dir)
		require.NoError(t, err)
		for _, f := range append(p.GoFiles, p.EmbedFiles...) {
			files = append(files, filepath.ToSlash(filepath.Join(rel, f)))
		}
	}
	require.Greater(t, len(files), 20)
	return files
}

// ------------------------------------------------ build stages, for real

var (
	buildOnce sync.Once
	buildOut  string
	buildErr  error
	buildLog  string
)

// testVersion is the VERSION build argument the build test passes.
const testVersion = "9.9.9-container-test"

// builtImages runs the go build commands of the Dockerfile's build and
// demo-build stages, as written (cache mounts aside), in a copy of the
// build context the .dockerignore leaves, with the stages' ENV and
// VERSION set, and returns the directory standing for /out.
func builtImages(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the image's binaries (not in -short)")
	}
	buildOnce.Do(func() {
		d := parseDockerfile(t, filepath.Join(root, "Dockerfile"))
		ign := loadDockerignore(t)
		work, err := os.MkdirTemp("", "piivault-docker-context-")
		if err != nil {
			buildErr = err
			return
		}
		ctxDir := filepath.Join(work, "src")
		if buildErr = copyContext(ctxDir, ign); buildErr != nil {
			return
		}
		buildOut = filepath.Join(work, "out")
		var log strings.Builder
		for _, name := range []string{"build", "demo-build"} {
			s := d.stage(name)
			for _, in := range s.of("RUN") {
				script := strings.ReplaceAll(in.args, "/out/", buildOut+"/")
				c := exec.Command("sh", "-c", script)
				c.Dir = ctxDir // WORKDIR /src, where COPY . . put the context
				c.Env = append(os.Environ(), "GOFLAGS=", "VERSION="+testVersion)
				for k, v := range s.env() {
					c.Env = append(c.Env, k+"="+v)
				}
				out, err := c.CombinedOutput()
				fmt.Fprintf(&log, "$ %s\n%s", script, out)
				if err != nil {
					buildErr, buildLog = fmt.Errorf("stage %s, line %d: %w", name, in.line, err), log.String()
					return
				}
			}
		}
	})
	require.NoError(t, buildErr, buildLog)
	return buildOut
}

// copyContext copies the repository into dir as `docker build` sends it:
// regular files not excluded by the .dockerignore.
func copyContext(dir string, ign dockerignore) error {
	abs, err := filepath.Abs(root)
	if err != nil {
		return err
	}
	return filepath.WalkDir(abs, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(abs, p)
		rel = filepath.ToSlash(rel)
		if rel == "." {
			return os.MkdirAll(dir, 0o755)
		}
		if ign.ignored(rel) {
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		dst := filepath.Join(dir, filepath.FromSlash(rel))
		switch {
		case e.IsDir():
			return os.MkdirAll(dst, 0o755)
		case e.Type().IsRegular():
			raw, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			info, err := e.Info()
			if err != nil {
				return err
			}
			return os.WriteFile(dst, raw, info.Mode().Perm())
		}
		return nil
	})
}

// TestDockerBuildStagesBuild: the build stages' commands succeed on the
// context Docker would send, and make static, trimmed binaries stamped
// with VERSION and without VCS information.
func TestDockerBuildStagesBuild(t *testing.T) {
	out := builtImages(t)
	for _, name := range []string{"piivault", "storefront", "totp"} {
		bin := filepath.Join(out, name)
		info, err := buildinfo.ReadFile(bin)
		require.NoError(t, err, name)
		settings := map[string]string{}
		for _, s := range info.Settings {
			settings[s.Key] = s.Value
		}
		require.Equal(t, "0", settings["CGO_ENABLED"], name)
		require.Equal(t, "true", settings["-trimpath"], name)
		require.NotContains(t, settings, "vcs.revision", name)
		require.Equal(t, "go"+goLine(t), info.GoVersion, name)

		f, err := elf.Open(bin)
		require.NoError(t, err, name)
		for _, p := range f.Progs {
			require.NotEqual(t, elf.PT_INTERP, p.Type, "%s is dynamically linked", name)
		}
		libs, err := f.ImportedLibraries()
		require.NoError(t, err)
		require.Empty(t, libs, name)
		f.Close()
		if name == "piivault" {
			// (-trimpath keeps -ldflags out of the build information.)
			raw, err := os.ReadFile(bin)
			require.NoError(t, err)
			require.Contains(t, string(raw), testVersion, "VERSION reaches the binary")
		}
	}
}

// ----------------------------------- the compose stack's start, for real

// TestComposeStackStartsAgainstRealVault runs what `docker compose up`
// runs, without Docker: the setup service's command, with compose.yaml's
// environment, against a real dev-mode Vault and Redis; then the image's
// ENTRYPOINT and CMD with the piivault service's environment, which must
// reach /readyz with the AppRole credentials setup handed over; setup
// again (a second `up`); then the storefront service's command. The
// addresses compose gives (service names, the run volume) are mapped to
// the local ones; the programs are the binaries the Dockerfile's stages
// build, placed where the demo stage copies them.
func TestComposeStackStartsAgainstRealVault(t *testing.T) {
	out := builtImages(t)
	p := loadCompose(t)
	d := parseDockerfile(t, filepath.Join(root, "Dockerfile"))

	stack, err := devstack.Start()
	require.NoError(t, err)
	t.Cleanup(stack.Stop)
	vaultBin, err := devstack.VaultBinary()
	require.NoError(t, err)

	// /usr/local/bin of the demo image, from its COPY instructions.
	binDir := t.TempDir()
	for _, in := range d.stage("demo").of("COPY") {
		w := in.words()
		to := w[len(w)-1]
		for _, src := range w[:len(w)-1] {
			dst := to
			if strings.HasSuffix(to, "/") {
				dst = to + path.Base(src)
			}
			require.Equal(t, "/usr/local/bin", path.Dir(dst), "line %d", in.line)
			var from string
			switch f := in.flags["from"]; {
			case f == "":
				from, err = filepath.Abs(filepath.Join(root, src))
				require.NoError(t, err)
			case d.stage(f) != nil:
				require.True(t, strings.HasPrefix(src, "/out/"), src)
				from = filepath.Join(out, strings.TrimPrefix(src, "/out/"))
			case strings.HasPrefix(f, "hashicorp/vault:"):
				from = vaultBin
			default:
				t.Fatalf("line %d: no local stand-in for --from=%s", in.line, f)
			}
			require.NoError(t, os.Symlink(from, filepath.Join(binDir, path.Base(dst))))
		}
	}

	vaultSvc, setup := service(t, p, "vault"), service(t, p, "setup")
	runDir := filepath.Join(t.TempDir(), "run")
	require.NoError(t, os.Mkdir(runDir, 0o700)) // as the demo image makes it
	auditFile := filepath.Join(t.TempDir(), "vault-audit.log")
	replacer := strings.NewReplacer(
		"http://vault:8200", stack.VaultAddr,
		"redis://redis:6379/0", stack.RedisURL,
		env(setup, "PIIVAULT_DEMO_DIR"), runDir,
		env(setup, "VAULT_AUDIT_FILE"), auditFile,
	)
	localEnv := func(s types.ServiceConfig, extra ...string) []string {
		e := []string{"PATH=" + binDir + ":/usr/bin:/bin", "HOME=" + t.TempDir()}
		for k, v := range s.Environment {
			val := replacer.Replace(*v)
			if *v == env(vaultSvc, "VAULT_DEV_ROOT_TOKEN_ID") {
				val = stack.RootToken
			}
			require.NotContains(t, val, "vault:8200", "%s: %s not mapped", s.Name, k)
			e = append(e, k+"="+val)
		}
		return append(e, extra...)
	}

	runSetup := func() string {
		t.Helper()
		c := exec.Command(filepath.Join(binDir, setup.Command[0]))
		c.Env = localEnv(setup)
		outp, err := c.CombinedOutput()
		require.NoError(t, err, "setup:\n%s", outp)
		return string(outp)
	}
	first := runSetup()
	require.Contains(t, first, "ready for piivault serve")
	for _, f := range []string{"secret_id", "storefront_api_key", "storefront_publishable_key", "demo-staff.txt"} {
		st, err := os.Stat(filepath.Join(runDir, f))
		require.NoError(t, err, f)
		require.Equal(t, fs.FileMode(0o600), st.Mode().Perm(), "%s is for its owner only", f)
		require.NotZero(t, st.Size(), f)
	}
	entries, err := os.ReadDir(runDir)
	require.NoError(t, err)
	require.Len(t, entries, 4, "setup leaves no temporary files")
	_, err = os.Stat(auditFile)
	require.NoError(t, err, "Vault's audit device writes where compose.yaml says")

	// piivault: the image's ENTRYPOINT + CMD, the image's ENV, compose's
	// environment; listening on a free loopback port instead of 0.0.0.0:8080.
	final := d.final()
	ep, _ := final.last("ENTRYPOINT")
	cmdIn, _ := final.last("CMD")
	argv := append(slices.Clone(ep.exec), cmdIn.exec...)
	require.Equal(t, "/piivault", argv[0])
	port, err := devstack.FreePort()
	require.NoError(t, err)
	pvAddr := fmt.Sprintf("127.0.0.1:%d", port)
	var imageEnv []string
	for k, v := range final.env() {
		imageEnv = append(imageEnv, k+"="+v)
	}
	pvEnv := append(imageEnv, localEnv(service(t, p, "piivault"))...)
	pvEnv = append(pvEnv, "PIIVAULT_LISTEN="+pvAddr)
	startProcess(t, "piivault", filepath.Join(out, "piivault"), argv[1:], pvEnv)
	pvURL := "http://" + pvAddr
	waitOK(t, pvURL+"/readyz")

	// A second `docker compose up` runs setup again: it keeps what works.
	again := runSetup()
	require.Contains(t, again, "kept: they are in Vault")
	require.Contains(t, again, "kept: demo-shop")
	waitOK(t, pvURL+"/readyz")

	// The storefront, with the keys setup left, on piivault's address.
	shop := service(t, p, "storefront")
	sport, err := devstack.FreePort()
	require.NoError(t, err)
	shopAddr := fmt.Sprintf("127.0.0.1:%d", sport)
	startProcess(t, "storefront", filepath.Join(binDir, shop.Command[0]), nil,
		localEnv(shop, "PIIVAULT_URL="+pvURL, "STOREFRONT_LISTEN="+shopAddr))
	waitOK(t, "http://"+shopAddr+"/")

	// The demo storefront's key stores an order; a demo staff member signs
	// in with the password and TOTP code setup made.
	apiKey, err := os.ReadFile(filepath.Join(runDir, "storefront_api_key"))
	require.NoError(t, err)
	order := `{"order_id":"ord_compose_1","payment_ref":"pi_compose_1","shipping":{"name":"Jane Doe","email":"jane@example.com","phone":"+15550100","address":{"line1":"1 Main St","line2":"","city":"Springfield","state":"IL","postal_code":"62701","country":"US"}}}`
	req, err := http.NewRequest(http.MethodPost, pvURL+"/v1/orders", strings.NewReader(order))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(apiKey)))
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	require.Equal(t, http.StatusCreated, res.StatusCode, string(body))

	staffRaw, err := os.ReadFile(filepath.Join(runDir, "demo-staff.txt"))
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(staffRaw)), "\n")
	require.Len(t, lines, len(vault.Roles))
	f := strings.Fields(lines[0])
	require.Len(t, f, 3)
	require.Equal(t, "demo-fulfillment", f[0])
	code, err := exec.Command(filepath.Join(binDir, "totp"), f[2]).Output()
	require.NoError(t, err)
	login, _ := json.Marshal(map[string]string{"username": f[0], "password": f[1], "totp": strings.TrimSpace(string(code))})
	res, err = http.Post(pvURL+"/v1/auth/login", "application/json", strings.NewReader(string(login)))
	require.NoError(t, err)
	body, _ = io.ReadAll(res.Body)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode, string(body))
	require.Contains(t, string(body), `"token"`)
}

// TestComposeScriptsParse: the compose scripts are POSIX sh (the demo
// image's shell is BusyBox's), and setup gives the AppRole piivault's
// setup makes its role id.
func TestComposeScriptsParse(t *testing.T) {
	for _, s := range []string{"setup.sh", "storefront.sh"} {
		out, err := exec.Command("sh", "-n", filepath.Join("compose", s)).CombinedOutput()
		require.NoError(t, err, "%s: %s", s, out)
	}
	raw, err := os.ReadFile(filepath.Join("compose", "setup.sh"))
	require.NoError(t, err)
	require.Contains(t, string(raw), "auth/"+vault.AppRoleMount+"/role/"+vault.AppRoleName+"/role-id")
}

// startProcess starts a long-running program for the test and stops it at
// the end; its output goes to the test log on failure.
func startProcess(t *testing.T, name, bin string, args, env []string) {
	t.Helper()
	c := exec.Command(bin, args...)
	c.Env = env
	logf, err := os.Create(filepath.Join(t.TempDir(), name+".log"))
	require.NoError(t, err)
	c.Stdout, c.Stderr = logf, logf
	require.NoError(t, c.Start(), name)
	done := make(chan struct{})
	go func() { _ = c.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = c.Process.Kill()
		<-done
		if t.Failed() {
			raw, _ := os.ReadFile(logf.Name())
			t.Logf("%s log:\n%s", name, raw)
		}
		logf.Close()
	})
}

// waitOK polls url until it answers 200, for up to 30 seconds.
func waitOK(t *testing.T, u string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		res, err := http.Get(u)
		if err == nil {
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
			last = fmt.Sprintf("%d %s", res.StatusCode, body)
		} else {
			last = err.Error()
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s never answered 200: %s", u, last)
}

// TestImageFitsTheKubernetesDeployment: the Kubernetes example runs this
// image as it is built: the same non-root user, the ENTRYPOINT kept (no
// command override) with serve as its argument, and the exposed port.
func TestImageFitsTheKubernetesDeployment(t *testing.T) {
	final := parseDockerfile(t, filepath.Join(root, "Dockerfile")).final()
	var dep struct {
		Spec struct {
			Template struct {
				Spec struct {
					SecurityContext struct {
						RunAsUser  int64 `json:"runAsUser"`
						RunAsGroup int64 `json:"runAsGroup"`
					} `json:"securityContext"`
					Containers []struct {
						Name    string   `json:"name"`
						Command []string `json:"command"`
						Args    []string `json:"args"`
						Ports   []struct {
							Name          string `json:"name"`
							ContainerPort int    `json:"containerPort"`
						} `json:"ports"`
					} `json:"containers"`
				} `json:"spec"`
			} `json:"template"`
		} `json:"spec"`
	}
	decodeFile(t, filepath.Join("kubernetes", "deployment.yaml"), &dep)
	pod := dep.Spec.Template.Spec
	user, ok := final.last("USER")
	require.True(t, ok)
	uid, gid, _ := strings.Cut(user.args, ":")
	require.Equal(t, uid, strconv.FormatInt(pod.SecurityContext.RunAsUser, 10))
	require.Equal(t, gid, strconv.FormatInt(pod.SecurityContext.RunAsGroup, 10))
	cmd, _ := final.last("CMD")
	expose, _ := final.last("EXPOSE")
	found := false
	for _, c := range pod.Containers {
		if c.Name != "piivault" {
			continue
		}
		found = true
		require.Empty(t, c.Command, "the image's ENTRYPOINT runs")
		require.Equal(t, cmd.exec, c.Args)
		ports := map[string]int{}
		for _, p := range c.Ports {
			ports[p.Name] = p.ContainerPort
		}
		require.Equal(t, expose.args, strconv.Itoa(ports["http"]))
	}
	require.True(t, found)
}
