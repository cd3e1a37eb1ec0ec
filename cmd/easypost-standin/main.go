// Command easypost-standin serves a local stand-in for EasyPost's API on
// loopback, for piivault's `make run` demo: piivault's EasyPost client is
// pointed at it and no label is ever bought for real. It is a development
// tool, not part of the piivault binary.
//
//	easypost-standin -listen 127.0.0.1:0 -key "$EASYPOST_API_KEY" -port-file .run/easypost.url
//
// Once listening it prints one line, "easypost stand-in listening on
// http://127.0.0.1:PORT/v2/", and serves until SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"piivault/internal/easypoststandin"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "easypost-standin:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("easypost-standin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "loopback `address` to listen on")
	key := fs.String("key", "", "API `key` clients must send (default $EASYPOST_API_KEY)")
	portFile := fs.String("port-file", "", "write the API base URL to this `file` once listening (removed on exit)")
	fixtures := fs.String("fixtures", "", "answer with EasyPost's published bodies from this `folder`")
	hook := fs.String("webhook-url", "", "deliver the demo's tracker events (POST /_demo/ship/{shipment_id}) to this `URL`")
	hookSecret := fs.String("webhook-secret", "", "sign them with this `secret` (default $EASYPOST_WEBHOOK_SECRET)")
	verbose := fs.Bool("v", false, "log every request (method, path, status; never bodies)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *key == "" {
		*key = os.Getenv("EASYPOST_API_KEY")
	}
	if *key == "" {
		return errors.New("no API key: give -key or set EASYPOST_API_KEY")
	}
	if *hookSecret == "" {
		*hookSecret = os.Getenv("EASYPOST_WEBHOOK_SECRET")
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	srv, err := easypoststandin.New(easypoststandin.Options{APIKey: *key, FixturesDir: *fixtures, Log: log,
		Webhook: easypoststandin.Webhook{URL: *hook, Secret: *hookSecret}})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := srv.Start(*listen); err != nil {
		return err
	}
	defer srv.Close()
	if *portFile != "" {
		if err := writeAtomic(*portFile, srv.URL()+"\n"); err != nil {
			return err
		}
		defer os.Remove(*portFile)
	}
	fmt.Fprintln(stdout, "easypost stand-in listening on", srv.URL())
	<-ctx.Done()
	return nil
}

// writeAtomic writes content so that a reader never sees half of it.
func writeAtomic(path, content string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".easypost-standin-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(content); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
