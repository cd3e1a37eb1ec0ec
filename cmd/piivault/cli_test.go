package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"
)

// noEnv is an environment with nothing in it that fails the test when a
// variable is read: help, version and completion read none.
func noEnv(t *testing.T) func(string) string {
	return func(k string) string {
		t.Errorf("read the environment variable %s", k)
		return ""
	}
}

// cli runs one command line the way main does, and returns its exit
// status, stdout and stderr.
func cli(t *testing.T, getenv func(string) string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	status := exitStatus(context.Background(), args, strings.NewReader(""), &out, &errOut, getenv)
	return status, out.String(), errOut.String()
}

// commandHelp is every command of the CLI with the flags its help must
// list; a group's help lists its subcommands instead.
// TestCLIHelpCoversEveryCommand keeps it complete.
var commandHelp = []struct {
	path  string
	flags []string
	subs  []string // a group's subcommands
}{
	{"serve", nil, nil},
	{"setup", []string{"--approle-env", "--bind-cidrs", "--audit-file"}, nil},
	{"staff", nil, []string{"add", "remove", "list", "unlock", "unsuspend"}},
	{"staff add", []string{"--role", "--json", "--password-stdin"}, nil},
	{"staff remove", nil, nil},
	{"staff list", []string{"--json"}, nil},
	{"staff unlock", nil, nil},
	{"staff unsuspend", nil, nil},
	{"clients", nil, []string{"add", "revoke", "list"}},
	{"clients add", []string{"--origin", "--json"}, nil},
	{"clients revoke", nil, nil},
	{"clients list", nil, nil},
	{"blocks", nil, []string{"list", "lift"}},
	{"blocks list", []string{"--json"}, nil},
	{"blocks lift", nil, nil},
	{"lockdown", nil, nil},
	{"report", nil, []string{"retention"}},
	{"report retention", []string{"--json"}, nil},
	{"export", nil, []string{"refs"}},
	{"export refs", nil, nil},
	{"purge", nil, nil},
	{"keys", nil, []string{"rotate"}},
	{"keys rotate", nil, nil},
	{"audit", nil, []string{"verify", "archive"}},
	{"audit verify", nil, nil},
	{"audit archive", nil, nil},
	{"version", []string{"--json"}, nil},
	{"completion", nil, nil},
}

func TestCLIHelpAnswersEveryCommandBeforeItNeedsAnything(t *testing.T) {
	for _, tt := range commandHelp {
		path := strings.Fields(tt.path)
		for _, how := range [][]string{
			append(slices.Clone(path), "--help"),
			append(slices.Clone(path), "-h"),
			append([]string{"help"}, path...),
			// Help wins over what would otherwise be an error.
			append(slices.Clone(path), "--help", "extra", "arguments"),
		} {
			t.Run(strings.Join(how, " "), func(t *testing.T) {
				status, out, errOut := cli(t, noEnv(t), how...)
				require.Equal(t, 0, status, errOut)
				require.Empty(t, errOut)
				first, _, _ := strings.Cut(out, "\n")
				require.True(t, strings.HasPrefix(first, "usage: piivault "+tt.path), "the first line names the command: %q", first)
				if tt.subs != nil {
					for _, sub := range tt.subs {
						require.Regexp(t, `(?m)^  `+sub+`\b`, out)
					}
					return
				}
				require.Contains(t, out, "\nFlags:\n")
				require.Contains(t, out, "-h, --help")
				for _, f := range tt.flags {
					require.Contains(t, out, f)
				}
			})
		}
	}
}

func TestCLIHelpCoversEveryCommand(t *testing.T) {
	var tree []string
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		for _, s := range c.Commands() {
			if !s.IsAvailableCommand() {
				continue
			}
			tree = append(tree, commandPath(s))
			walk(s)
		}
	}
	walk(newRootCmd(&env{}))
	var tested []string
	for _, tt := range commandHelp {
		tested = append(tested, tt.path)
	}
	require.ElementsMatch(t, tested, tree, "commandHelp lists every command of the CLI")
}

func TestCLIRootHelpListsEveryCommand(t *testing.T) {
	for _, args := range [][]string{nil, {"help"}, {"--help"}, {"-h"}} {
		status, out, errOut := cli(t, noEnv(t), args...)
		require.Equal(t, 0, status, errOut)
		require.True(t, strings.HasPrefix(out, "usage: piivault <command> [arguments]\n"), out)
		for _, tt := range commandHelp {
			if tt.subs != nil {
				continue // a group: its commands are listed
			}
			require.Regexp(t, `(?m)^  `+regexp.QuoteMeta(tt.path)+`\b`, out)
		}
		require.Contains(t, out, "NAME_FILE")
	}
}

func TestCLIErrorsAreOneLineAndNonZero(t *testing.T) {
	none := map[string]string{}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"unknown command", []string{"sevre"}, none, `unknown command "sevre" (did you mean serve? see piivault --help)`},
		{"unknown command, no suggestion", []string{"frobnicate"}, none, `unknown command "frobnicate"`},
		{"unknown subcommand", []string{"staff", "ad"}, none, `staff: unknown subcommand "ad" (did you mean add? see piivault staff --help)`},
		{"group without subcommand", []string{"staff"}, none, "staff: want add, list, remove, unlock or unsuspend"},
		{"keys without rotate", []string{"keys"}, none, "keys: want rotate"},
		{"missing NAME", []string{"staff", "add", "--role", "admin"}, none, "staff add: missing NAME"},
		{"missing NAME to remove", []string{"staff", "remove"}, none, "staff remove: missing NAME"},
		{"missing NAME to unlock", []string{"staff", "unlock"}, none, "staff unlock: missing NAME"},
		{"missing NAME to unsuspend", []string{"staff", "unsuspend"}, none, "staff unsuspend: missing NAME"},
		{"missing client NAME", []string{"clients", "add", "--json"}, none, "clients add: missing NAME"},
		{"missing client to revoke", []string{"clients", "revoke"}, none, "clients revoke: missing NAME"},
		{"missing IP", []string{"blocks", "lift"}, none, "blocks lift: missing IP"},
		{"empty NAME", []string{"staff", "remove", ""}, none, "staff remove: missing NAME"},
		{"extra argument", []string{"clients", "revoke", "a", "b"}, none, `clients revoke: unexpected argument "b"`},
		{"argument to serve", []string{"serve", "now"}, none, `serve: unexpected argument "now"`},
		{"argument to purge", []string{"purge", "all"}, none, `purge: unexpected argument "all"`},
		{"argument to a list", []string{"staff", "list", "x"}, none, `staff list: unexpected argument "x"`},
		{"unknown flag", []string{"staff", "add", "x", "--bogus"}, none, "staff add: unknown flag: --bogus"},
		{"unknown flag of piivault", []string{"--version"}, none, "unknown flag: --version\n"},
		{"flag without its value", []string{"staff", "add", "x", "--role"}, none, "staff add: flag needs an argument: --role"},
		{"bad bool flag", []string{"staff", "list", "--json=maybe"}, none, `staff list: invalid argument "maybe" for "--json" flag`},
		{"lockdown without action", []string{"lockdown"}, none, "lockdown: want on, off or status"},
		{"lockdown bad action", []string{"lockdown", "maybe"}, none, `lockdown: unknown argument "maybe" (want on, off or status)`},
		{"completion without shell", []string{"completion"}, none, "completion: want bash, zsh or fish"},
		{"completion unknown shell", []string{"completion", "tcsh"}, none, `completion: unknown argument "tcsh"`},
		{"help on nothing", []string{"help", "nosuch"}, none, `help: no command "nosuch"`},
		{"bad role, before Vault", []string{"staff", "add", "alice", "--role", "janitor"}, none, "staff add: --role must be fulfillment, support, admin or auditor"},
		{"bad name, before Vault", []string{"staff", "add", "A", "--role", "admin"}, none, "staff add: NAME must be"},
		{"no operator token", []string{"staff", "add", "alice", "--role", "admin"}, none, "VAULT_TOKEN: this command needs a Vault operator token"},
		{"no operator token to list", []string{"staff", "list", "--json"}, none, "VAULT_TOKEN: this command needs a Vault operator token"},
		{"bad CIDR, before Vault", []string{"setup", "--bind-cidrs", "10.0.0.0/8,bogus"}, none, `setup: --bind-cidrs: "bogus" is not a CIDR`},
		{"not an IP, before Redis", []string{"blocks", "lift", "nowhere"}, none, `blocks lift: "nowhere" is not an IP address`},
		{"no archive directory", []string{"audit", "archive"}, none, "audit archive: PIIVAULT_AUDIT_ARCHIVE is not set"},
		{"bad configuration", []string{"purge"}, map[string]string{"PIIVAULT_RETENTION": "1000h"}, "PIIVAULT_RETENTION: 1000h0m0s is outside"},
		{"no service identity", []string{"clients", "list"}, none, "PIIVAULT_VAULT_ROLE_ID: set PIIVAULT_VAULT_ROLE_ID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, out, errOut := cli(t, envOf(tt.env), tt.args...)
			require.NotEqual(t, 0, status)
			require.Empty(t, out, "an error writes nothing on stdout")
			require.Equal(t, 1, strings.Count(errOut, "\n"), "one line: %q", errOut)
			require.True(t, strings.HasPrefix(errOut, "piivault: "+tt.want), "%q", errOut)
		})
	}
}

// TestCLIFlagsAroundTheName: flags go before or after NAME, as --flag or
// -flag (Go's flag package took both, and scripts may use either). The
// command gets as far as wanting the operator's token, so every line here
// parsed.
func TestCLIFlagsAroundTheName(t *testing.T) {
	for _, args := range [][]string{
		{"staff", "add", "alice", "--role", "admin", "--json"},
		{"staff", "add", "--json", "alice", "--role=admin"},
		{"staff", "add", "--role", "admin", "alice", "--password-stdin", "--json=true"},
		{"staff", "add", "-role", "admin", "alice", "-json"},
		{"staff", "add", "-role=admin", "-password-stdin", "alice"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			status, _, errOut := cli(t, envOf(nil), args...)
			require.Equal(t, 1, status)
			require.Equal(t, "piivault: VAULT_TOKEN: this command needs a Vault operator token\n", errOut)
		})
	}
}

func TestSingleDashFlags(t *testing.T) {
	root := newRootCmd(&env{})
	tests := []struct {
		name     string
		in, want []string
	}{
		{"long flags", []string{"setup", "-approle-env", "-bind-cidrs=10.0.0.0/8"}, []string{"setup", "--approle-env", "--bind-cidrs=10.0.0.0/8"}},
		{"help", []string{"staff", "-help"}, []string{"staff", "--help"}},
		{"shorthand kept", []string{"staff", "-h"}, []string{"staff", "-h"}},
		{"double dash kept", []string{"staff", "list", "--json"}, []string{"staff", "list", "--json"}},
		{"not a flag of piivault", []string{"staff", "add", "-xyz"}, []string{"staff", "add", "-xyz"}},
		{"after --", []string{"clients", "revoke", "--", "-json"}, []string{"clients", "revoke", "--", "-json"}},
		{"no arguments", []string{}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, singleDashFlags(root, tt.in))
		})
	}
}

func TestCLIVersion(t *testing.T) {
	status, out, errOut := cli(t, noEnv(t), "version")
	require.Equal(t, 0, status, errOut)
	require.Equal(t, "piivault "+version+" ("+runtime.Version()+", commit unknown)\n", out,
		"a test binary carries no vcs.revision")

	status, out, errOut = cli(t, noEnv(t), "version", "--json")
	require.Equal(t, 0, status, errOut)
	var got map[string]string
	require.NoError(t, json.Unmarshal([]byte(out), &got))
	require.Equal(t, map[string]string{"version": version, "go_version": runtime.Version(), "commit": "unknown"}, got)
}

// TestVersionAgreesWithTheChangelog: `piivault version` is the newest
// release in CHANGELOG.md.
func TestVersionAgreesWithTheChangelog(t *testing.T) {
	f, err := os.Open(filepath.Join("..", "..", "CHANGELOG.md"))
	require.NoError(t, err)
	defer f.Close()
	release := regexp.MustCompile(`^## \[?(\d+\.\d+\.\d+[^\] ]*)\]? `)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := release.FindStringSubmatch(sc.Text()); m != nil {
			require.Equal(t, m[1], version, "the newest CHANGELOG.md entry is the version")
			return
		}
	}
	require.NoError(t, sc.Err())
	t.Fatal("CHANGELOG.md has no release entry (## 1.2.3 — date)")
}

// TestVersionOfABuiltBinaryNamesItsCommit builds piivault in this git
// checkout and expects `version --json` to name HEAD.
func TestVersionOfABuiltBinaryNamesItsCommit(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("not a git checkout with git on PATH: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "piivault")
	build := exec.Command("go", "build", "-buildvcs=true", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "version", "--json")
	cmd.Env = []string{}
	out, err := cmd.Output()
	require.NoError(t, err)
	var got buildInfo
	require.NoError(t, json.Unmarshal(out, &got))
	require.Equal(t, strings.TrimSpace(string(head)), got.Commit)
	require.Equal(t, version, got.Version)
	require.Equal(t, runtime.Version(), got.GoVersion)
}

func TestCLICompletion(t *testing.T) {
	tests := []struct{ shell, want string }{
		{"bash", "__start_piivault"},
		{"zsh", "#compdef piivault"},
		{"fish", "complete -c piivault"},
	}
	for _, tt := range tests {
		t.Run(tt.shell, func(t *testing.T) {
			status, out, errOut := cli(t, noEnv(t), "completion", tt.shell)
			require.Equal(t, 0, status, errOut)
			require.Contains(t, out, tt.want)
			require.Greater(t, strings.Count(out, "\n"), 20, "a whole script")
		})
	}
	// The scripts call `piivault __complete …`, answered from the same tree.
	status, out, _ := cli(t, noEnv(t), "__complete", "staff", "add", "alice", "--role", "")
	require.Equal(t, 0, status)
	for _, role := range []string{"fulfillment", "support", "admin", "auditor"} {
		require.Contains(t, out, role+"\n")
	}
	status, out, _ = cli(t, noEnv(t), "__complete", "lockdown", "")
	require.Equal(t, 0, status)
	require.Regexp(t, `(?s)^on\noff\nstatus\n`, out)
	status, out, _ = cli(t, noEnv(t), "__complete", "st")
	require.Equal(t, 0, status)
	require.Contains(t, out, "staff\t")
}

// TestCLIProcessExitStatus runs this test binary as piivault (see
// TestMain) with an empty environment: the exit status and stderr are the
// process's own.
func TestCLIProcessExitStatus(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		status int
		stdout string // a prefix
		stderr string // the whole of it
	}{
		{"help", []string{"staff", "add", "--help"}, 0, "usage: piivault staff add NAME", ""},
		{"root help", nil, 0, "usage: piivault <command>", ""},
		{"version", []string{"version"}, 0, "piivault " + version + " (", ""},
		{"unknown command", []string{"nosuch"}, 1, "", "piivault: unknown command \"nosuch\" (see piivault --help)\n"},
		{"missing argument", []string{"clients", "revoke"}, 1, "", "piivault: clients revoke: missing NAME\n"},
		{"needs Vault", []string{"staff", "list"}, 1, "", "piivault: VAULT_TOKEN: this command needs a Vault operator token\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], tt.args...)
			cmd.Env = []string{runAsPiivault + "=1"}
			var out, errOut bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errOut
			err := cmd.Run()
			status := 0
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				status = exit.ExitCode()
			} else {
				require.NoError(t, err)
			}
			require.Equal(t, tt.status, status, errOut.String())
			require.True(t, strings.HasPrefix(out.String(), tt.stdout), out.String())
			require.Equal(t, tt.stderr, errOut.String())
		})
	}
}
