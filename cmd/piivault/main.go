// Command piivault is the short-lived vault for e-commerce shipping PII:
// the HTTP API and webhooks (serve), the Vault bootstrap (setup), and the
// operator's commands. Run `piivault help` for the list; cli.go declares
// them.
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

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	status := exitStatus(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(status)
}

// exitStatus runs realMain and turns its error into the CLI's contract:
// one line on stderr and status 1 (or the status an exitCode asks for),
// status 0 on success.
func exitStatus(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	err := realMain(ctx, args, stdin, stdout, stderr, getenv)
	if err == nil {
		return 0
	}
	var exit exitCode
	if errors.As(err, &exit) {
		return int(exit)
	}
	fmt.Fprintln(stderr, oneLine(err))
	return 1
}

// oneLine renders err as the single stderr line the CLI promises: Vault's
// client errors span several lines, folded here into one.
func oneLine(err error) string {
	return "piivault: " + strings.Join(strings.Fields(err.Error()), " ")
}

// exitCode ends the program with a status and no further message.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// env is what a command gets: its streams, environment and logger. Its
// arguments and flags are parsed by the command's cobra.Command (cli.go).
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
	log    *slog.Logger
}

// realMain runs one piivault command line (args without the program name)
// and returns its error, which main prints as one line. Help (`--help`,
// `-h`, `help`) is answered before any command reads the environment or
// connects anywhere.
func realMain(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) error {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv,
		log: slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	root := newRootCmd(e)
	if args == nil {
		args = []string{} // nil would make cobra read os.Args
	}
	root.SetArgs(singleDashFlags(root, args))
	return root.ExecuteContext(ctx)
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
