package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"piivault/purge"
)

// cmdServe runs the API until SIGINT/SIGTERM, then lets in-flight requests
// finish (up to 20s) before stopping the scheduler and closing clients.
func cmdServe(ctx context.Context, e *env) error {
	// A server's log, access lines included, is its output: JSON lines on
	// stdout for the platform's log shipper. Other commands keep stdout for
	// their results and log on stderr.
	e.log = slog.New(slog.NewJSONHandler(e.stdout, &slog.HandlerOptions{Level: slog.LevelInfo}))
	a, err := e.service(ctx)
	if err != nil {
		return err
	}
	defer a.close()
	// Invariant 2: the service encrypts and HMACs but never decrypts.
	if can, err := a.vault.CanDecrypt(ctx); err != nil {
		return fmt.Errorf("vault: check the service identity: %w", err)
	} else if can {
		return &configError{"PIIVAULT_VAULT_ROLE_ID", "the service's Vault identity can decrypt order PII; use the piivault AppRole (piivault setup --approle-env), not an operator token"}
	}
	h, err := a.handler()
	if err != nil {
		return fmt.Errorf("routes: %w", err)
	}
	srv := &http.Server{
		Addr:              a.cfg.Listen,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    32 << 10,
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12},
		// net/http's own errors (TLS handshakes, panics) join the JSON log.
		ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", a.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s (PIIVAULT_LISTEN): %w", a.cfg.Listen, err)
	}
	var metricsLn net.Listener
	if a.cfg.MetricsListen != "" {
		if metricsLn, err = net.Listen("tcp", a.cfg.MetricsListen); err != nil {
			ln.Close()
			return fmt.Errorf("listen on %s (PIIVAULT_METRICS_LISTEN): %w", a.cfg.MetricsListen, err)
		}
	}

	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	runs := []func(){
		func() { a.runBackground(bg) },
		func() {
			locker := purge.NewRedisLocker(a.redis, 10*time.Minute, a.cfg.SweepInterval/2)
			if err := purge.Schedule(bg, a.purger, a.shredder, locker, a.cfg.SweepInterval, a.log, a.auditJobs()...); err != nil {
				a.log.Error("scheduler stopped", "err", err)
			}
		},
	}
	if a.cfg.DebugListen != "" {
		runs = append(runs, func() { runDebug(bg, debugServer(a.cfg.DebugListen, a.log), a.log) })
	}
	if metricsLn != nil {
		runs = append(runs, func() { runMetrics(bg, metricsServer(a.log), metricsLn, a.log) })
	}
	for _, run := range runs {
		wg.Add(1)
		go func() { defer wg.Done(); run() }()
	}

	errc := make(chan error, 1)
	go func() {
		if a.cfg.TLSCert != "" {
			errc <- srv.ServeTLS(ln, a.cfg.TLSCert, a.cfg.TLSKey)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	a.log.Info("piivault serving", "addr", ln.Addr().String(), "tls", a.cfg.TLSCert != "", "public_url", a.cfg.PublicURL,
		"retention", a.cfg.Retention.String(), "sweep_interval", a.cfg.SweepInterval.String())

	select {
	case err = <-errc:
	case <-ctx.Done():
		a.log.Info("shutting down: finishing in-flight requests")
		sctx, scancel := context.WithTimeout(context.Background(), 20*time.Second)
		err = srv.Shutdown(sctx)
		scancel()
	}
	cancel()
	wg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}
