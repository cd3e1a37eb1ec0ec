// Command piivault-bench is piivault's development tool: it stores
// invented orders in a running piivault (seed) and measures a built
// bin/piivault against the bare Vault+Redis pipeline (run). It is never
// shipped: the binary that holds PII has no command that writes made-up
// orders, and carries neither the fake-data generator nor the process
// harness this one needs.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

const usage = `usage: piivault-bench <command> [arguments]

A development tool, never shipped with piivault.

  seed --fake N [--prefix P] [--concurrency C]
        store N realistic fake orders (never real data) in a running piivault
        through POST /v1/orders, as a storefront: PIIVAULT_URL (default
        http://127.0.0.1:8080) and PIIVAULT_API_KEY (from piivault clients add)
  run [flags]
        the benchmark make bench runs: starts its own Vault (dev) and Redis on
        loopback, runs the built bin/piivault (setup, clients add, staff add,
        serve) and measures it against the bare Vault+Redis pipeline;
        writes bench/results.json and CPU profiles of serve to bench/profiles/

Run piivault-bench <command> --help for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := realMain(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "piivault-bench: "+strings.Join(strings.Fields(err.Error()), " "))
		os.Exit(1)
	}
}

// env is what a command gets: its arguments, streams and environment.
type env struct {
	args   []string
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
}

func realMain(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, usage)
		return nil
	}
	commands := map[string]func(context.Context, *env) error{
		"seed": cmdSeed,
		"run":  cmdRun,
	}
	cmd, ok := commands[args[0]]
	if !ok {
		return fmt.Errorf("unknown command %q (see piivault-bench help)", args[0])
	}
	return cmd(ctx, &env{args: args[1:], stdout: stdout, stderr: stderr, getenv: getenv})
}

// parseFlags parses a command's flags; positional arguments are refused.
// --help prints the flags on stdout and reports done, so the command ends
// with status 0 before it needs a server or a stack.
func (e *env) parseFlags(fs *flag.FlagSet) (done bool, err error) {
	fs.SetOutput(io.Discard)
	err = fs.Parse(e.args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(e.stdout, "usage: piivault-bench %s [flags]\n", fs.Name())
		fs.SetOutput(e.stdout)
		fs.PrintDefaults()
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("%s: %w", fs.Name(), err)
	}
	if fs.NArg() > 0 {
		return false, fmt.Errorf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	return false, nil
}
