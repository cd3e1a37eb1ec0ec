// Command piivault is the short-lived vault for e-commerce shipping PII:
// the HTTP API and webhooks (serve), the Vault bootstrap (setup), and the
// operator's commands. Run `piivault help` for the list.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

const usage = `usage: piivault <command> [arguments]

Service (environment as for serve):
  serve                         run the API, webhooks and purge scheduler
  purge                         run one retention sweep now and print the count
  keys rotate                   rotate the transit key and retire versions past retention
  audit verify                  check the audit trail's hash chain, archived segments included
  audit archive                 move entries older than PIIVAULT_AUDIT_HOT to sealed segments now
  clients add NAME [--origin URL ...] [--json]
                                make a storefront API key (shown once), and with --origin a
                                publishable key for the browser checkout on those origins
  clients revoke NAME           revoke a storefront API key at once
  clients list                  list storefront clients and their checkout origins
  blocks list [--json]          IPs the intrusion monitor blocked, with when each block ends
  blocks lift IP                lift a block now (no admin login needed)
  lockdown on|off|status        incident lockdown: refuse reveals and logins, revoke every staff token
  report retention [--json]     proof of retention: held PII by age, outlived orders, purges, keys
  export refs                   purchase references and the audit trail as JSON lines (no PII)

Operator (VAULT_ADDR and VAULT_TOKEN of a Vault operator):
  setup [--approle-env] [--bind-cidrs CIDRs] [--audit-file PATH]
                                bootstrap Vault for piivault (idempotent)
  staff add NAME --role R [--json] [--password-stdin]
  staff remove NAME             delete a staff account and revoke its tokens at once
  staff list [--json]
  staff unsuspend NAME          lift a suspension made by the intrusion monitor
  staff unlock NAME             lift Vault's userpass lockout of NAME
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := realMain(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	if err != nil {
		var exit exitCode
		if errors.As(err, &exit) {
			os.Exit(int(exit))
		}
		fmt.Fprintln(os.Stderr, oneLine(err))
		os.Exit(1)
	}
}

// oneLine renders err as the single stderr line the CLI promises: Vault's
// client errors span several lines, folded here into one.
func oneLine(err error) string {
	return "piivault: " + strings.Join(strings.Fields(err.Error()), " ")
}

// exitCode ends the program with a status and no further message.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// env is what a command gets: its arguments, streams and environment.
type env struct {
	args   []string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
	log    *slog.Logger
}

func realMain(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, usage)
		return nil
	}
	e := &env{args: args[1:], stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv,
		log: slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	commands := map[string]func(context.Context, *env) error{
		"serve":    cmdServe,
		"setup":    cmdSetup,
		"staff":    cmdStaff,
		"clients":  cmdClients,
		"purge":    cmdPurge,
		"keys":     cmdKeys,
		"audit":    cmdAudit,
		"blocks":   cmdBlocks,
		"lockdown": cmdLockdown,
		"report":   cmdReport,
		"export":   cmdExport,
	}
	cmd, ok := commands[args[0]]
	if !ok {
		return fmt.Errorf("unknown command %q (see piivault help)", args[0])
	}
	return cmd(ctx, e)
}

// config loads the service configuration for a command.
func (e *env) config() (*config, error) {
	cfg, err := loadConfig(e.getenv)
	if err != nil {
		return nil, err
	}
	return cfg, nil
}

// service builds the service graph for commands that act as the service.
func (e *env) service(ctx context.Context) (*app, error) {
	cfg, err := e.config()
	if err != nil {
		return nil, err
	}
	return newApp(ctx, cfg, e.log)
}
