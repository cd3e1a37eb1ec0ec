package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"

	"piivault/audit"
	"piivault/checkout"
	"piivault/clients"
	"piivault/compliance"
	"piivault/console"
	"piivault/inbound"
	"piivault/internal/keyseal"
	"piivault/internal/redispipe"
	"piivault/internal/replication"
	"piivault/internal/web"
	"piivault/mail"
	"piivault/monitoring"
	"piivault/orders"
	"piivault/postage"
	"piivault/privacy"
	"piivault/purge"
	"piivault/requests"
	"piivault/server"
	"piivault/staff"
	"piivault/tracking"
	"piivault/vault"
	"piivault/webhooks"
)

// Compile-time checks that the adapters fit the interfaces declared where
// they are used.
var (
	_ orders.Sealer     = (*vault.Client)(nil)
	_ orders.Opener     = (*vault.Client)(nil)
	_ staff.Directory   = (*vault.Client)(nil)
	_ purge.KeyManager  = (*vault.TransitKey)(nil)
	_ audit.Sealer      = (*vault.Client)(nil)
	_ audit.AnchorStore = (*vault.Client)(nil)
	_ compliance.Store  = (*orders.Store)(nil)
	_ compliance.Trail  = (*audit.Log)(nil)
	_ purge.Store       = (*orders.Store)(nil)
	_ webhooks.Orders   = (*orders.Store)(nil)
	_ server.ClientAuth = (*clients.Registry)(nil)
	_ server.StaffAuth  = (*staff.Service)(nil)
)

// app is the service graph `serve` and the service-side commands share.
type app struct {
	cfg       *config
	log       *slog.Logger
	redis     redis.UniversalClient
	pipe      *redispipe.Shared // hot paths' round trips, shared between requests
	vault     *vault.Client
	batcher   *orders.Batcher
	store     *orders.Store
	revealer  *orders.Revealer
	audit     *audit.Log
	replicas  *replication.Waiter // nil unless PIIVAULT_REDIS_WAIT > 0
	clients   *clients.Registry
	staff     *staff.Service
	monitor   *monitoring.Monitor
	alerter   *monitoring.Alerter
	access    *monitoring.AccessStore
	purger    *purge.Purger
	deletions *purge.Deletions
	shredder  *purge.Shredder
	lockdown  *compliance.Lockdown
	reports   *compliance.Reports
	// key is piivault's shared secret in Vault's KV: it seals console
	// sessions, and keys derived from it seal the mail outbox and customer
	// sessions.
	key []byte
	// mail is the email outbox; nil when PIIVAULT_SMTP_URL is unset.
	mail *mail.Outbox
	// requests are customers' emailed privacy requests.
	requests *requests.Service
	// now is the console's clock (time.Now when nil): tests move it past
	// the idle limit instead of waiting it out.
	now func() time.Time
}

// newApp connects to Redis and Vault (the service identity) and builds the
// graph. Nothing here reads the environment: cfg holds it all.
func newApp(ctx context.Context, cfg *config, log *slog.Logger) (*app, error) {
	if err := cfg.needVault(); err != nil {
		return nil, err
	}
	// A request makes several round trips: don't queue for connections.
	rdb := cfg.redisClient(128)
	vc, err := vault.New(ctx, cfg.vaultConfig(), log)
	if err != nil {
		rdb.Close()
		return nil, fmt.Errorf("vault: %w", err)
	}
	a := &app{cfg: cfg, log: log, redis: rdb, vault: vc, pipe: redispipe.New(rdb, redispipe.Config{})}
	b := readBuildInfo() // what `piivault version` prints
	monitoring.SetBuildInfo(b.Version, b.GoVersion, b.Commit)
	a.batcher = orders.NewBatcher(vc, orders.BatchConfig{MaxItems: cfg.BatchSize, MaxWait: cfg.BatchWait})
	var sealer orders.Sealer = vc
	if cfg.BatchSize > 1 {
		sealer = a.batcher
	}
	a.replicas = replication.New(rdb, cfg.RedisWait, 0)
	a.audit = newAuditLog(rdb, vc, a.replicas, cfg.AuditArchive)
	a.store, err = orders.NewStore(rdb, sealer, vc, a.audit, orders.Config{Retention: cfg.Retention, Pipe: a.pipe})
	if err != nil {
		return nil, err
	}
	a.clients = clients.NewRegistry(rdb)
	a.staff = staff.NewService(vc, rdb)
	a.alerter = monitoring.NewAlerter(cfg.AlertURL, log)
	a.access = monitoring.NewAccessStore(rdb, cfg.AccessLogMax, log)
	limits := monitoring.DefaultThresholds
	limits.RevealsPerHour = cfg.RevealLimit
	a.monitor = monitoring.NewMonitor(rdb, a.audit, a.staff, a.alerter, limits, log)
	a.purger = purge.NewPurger(a.store, a.audit, log)
	a.deletions = purge.NewDeletions(a.purger, a.store, rdb)
	a.lockdown = compliance.NewLockdown(rdb, vc, a.audit, a.store, a.alerter, log)
	a.revealer = orders.NewRevealer(a.store, a.monitor, a.lockdown, a.monitor, log)
	a.reports = compliance.NewReports(a.store, a.audit, rdb, []compliance.KeyReader{vc.Key(), vc.MaskedKey()}, cfg.SweepInterval)
	a.shredder = purge.NewShredder([]purge.ShredKey{
		{Key: vc.Key(), Oldest: a.store.OldestKeyVersion},
		{Key: vc.MaskedKey(), Oldest: a.store.OldestMaskedKeyVersion},
	}, a.store, a.audit, log, cfg.KeyRotation)
	return a, nil
}

// customerSide builds what serves customers and sends email: the outbox
// and emailed requests, both sealing with keys derived from piivault's
// secret in Vault's KV. Only serve needs them, so CLI commands neither
// read that secret nor build them.
func (a *app) customerSide(ctx context.Context) error {
	cfg, rdb, vc, log := a.cfg, a.redis, a.vault, a.log
	var err error
	if a.key, err = vc.ConsoleKey(ctx); err != nil {
		return fmt.Errorf("console key: %w", err)
	}
	if cfg.Mail != nil {
		seal, err := keyseal.New(a.key, "mail outbox")
		if err != nil {
			return err
		}
		a.mail = mail.NewOutbox(rdb, mail.NewSender(*cfg.Mail), seal, log)
	}
	senders, err := keyseal.New(a.key, "inbound sender")
	if err != nil {
		return err
	}
	var mailer requests.Mailer // an interface holding a nil *mail.Outbox is not nil
	if a.mail != nil {
		mailer = a.mail
	}
	a.requests = requests.New(rdb, requests.Config{Secret: string(cfg.InboundSecret), Words: cfg.InboundWords,
		PublicURL: cfg.PublicURL, Retention: cfg.Retention, Verifier: inbound.Verifier{LookupTXT: cfg.dkimLookup},
		Address: cfg.InboundAddress},
		requests.Deps{Deleter: a.deletions, History: a.store, Reporter: a.reports, Mailer: mailer, Sealer: senders,
			Excerpts: vc, Audit: a.audit, Watch: a.monitor, Reveals: a.monitor, Lockdown: a.lockdown, Log: log})
	return nil
}

// runBackground runs the app's background loops until ctx ends: Vault
// token renewal, alert delivery, keeping access lines in Redis and the
// audit trail's anchor in Vault, checking the trail's newest entries
// against that anchor, and the gauges every instance reports.
func (a *app) runBackground(ctx context.Context) {
	anchor := func(ctx context.Context) {
		a.audit.RunAnchor(ctx, a.log, func(text string) { a.alerter.Notify("audit_trail_diverged", text) })
	}
	// Links to emails that earlier versions kept past an order's retention
	// (invariant 13) are deleted once, in the background.
	forget := func(ctx context.Context) {
		if n, err := a.store.ForgetLegacyEmailLinks(ctx); err != nil {
			a.log.Warn("legacy email links not cleaned up; retried at the next start", "err", err)
		} else if n > 0 {
			a.log.Info("deleted legacy email links", slog.Int("keys", n))
		}
	}
	var wg sync.WaitGroup
	for _, run := range []func(context.Context){a.vault.KeepLoggedIn, a.alerter.Run, a.access.Run, anchor, forget, a.watchAudit, a.observe, a.sendMail} {
		wg.Add(1)
		go func() { defer wg.Done(); run(ctx) }()
	}
	wg.Wait()
}

// mailEvery is how often the outbox is drained: a customer waits for
// their code about this long at most, plus the relay's own time.
const mailEvery = time.Second

// sendMail drains the email outbox until ctx ends (every instance drains:
// each message is claimed with a lease, so none is sent twice).
func (a *app) sendMail(ctx context.Context) {
	if a.mail == nil {
		return
	}
	t := time.NewTicker(mailEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := a.mail.Drain(ctx); err != nil && ctx.Err() == nil {
				a.log.Warn("email outbox not drained; retried", "err", err)
			}
		}
	}
}

func (a *app) close() {
	a.batcher.Close()
	a.redis.Close()
}

// easyPostTimeout bounds each call to EasyPost's API.
const easyPostTimeout = 20 * time.Second

// handler builds the HTTP API.
func (a *app) handler() (*gin.Engine, error) {
	write := func(c *gin.Context, err error) { web.WriteError(c, a.log, err) }
	stripe := make([]string, len(a.cfg.StripeSecrets))
	for i, s := range a.cfg.StripeSecrets {
		stripe[i] = string(s)
	}
	var easypost webhooks.ShipmentLookup
	var labels *postage.Service
	if a.cfg.EasyPostAPIKey != "" {
		ep, err := postage.NewClient(a.cfg.EasyPostAPIURL, string(a.cfg.EasyPostAPIKey), easyPostTimeout)
		if err != nil {
			return nil, err
		}
		easypost = postage.References{EP: ep}
		if a.cfg.ShipFrom != nil {
			labels = postage.New(ep, a.store, a.revealer, a.lockdown, tracking.NewLinks(a.redis),
				postage.Config{From: *a.cfg.ShipFrom, Timeout: easyPostTimeout, Verify: a.staff.Authenticate}, a.log)
		} else {
			a.log.Info("label buying is off: set PIIVAULT_SHIP_FROM (the warehouse's return address) to buy labels with EASYPOST_API_KEY")
		}
	}
	postageHTTP := postage.NewHandler(labels, write)
	var consolePostage console.Postage // an interface holding a nil *Service is not nil
	if labels != nil {
		consolePostage = labels
	}
	var clientLimit, loginLimit server.Limiter
	if a.cfg.ClientRate > 0 {
		clientLimit = monitoring.NewLimiter(a.redis, "client", a.cfg.ClientRate, time.Minute)
	}
	if a.cfg.LoginRate > 0 {
		loginLimit = monitoring.NewLimiter(a.redis, "login", a.cfg.LoginRate, time.Minute)
	}
	if err := a.customerSide(context.Background()); err != nil {
		return nil, err
	}
	key := a.key
	ordersHTTP := orders.NewHandler(a.store, a.revealer, write, a.log)
	staffHTTP := staff.NewHandler(a.staff, a.audit, a.monitor, a.lockdown, write)
	con, err := console.New(console.Deps{Log: a.log, Key: key, HTTPS: a.cfg.httpsOnly(), PublicOrigin: a.cfg.publicHTTPS(),
		TrustedProxies: a.cfg.TrustedProxies, Idle: a.cfg.ConsoleIdle, Now: a.now,
		Staff: staffHTTP, Auth: a.staff, Orders: a.revealer, Store: a.store, Purger: a.purger, Deletions: a.deletions,
		Reports: a.reports, Lockdown: a.lockdown, Trail: a.audit, Blocks: a.monitor, StaffList: a.vault,
		Postage: consolePostage, Requests: a.requests})
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	var privacyMail privacy.Mailer // an interface holding a nil *mail.Outbox is not nil
	if a.mail != nil {
		privacyMail = a.mail
	}
	customers, err := privacy.New(privacy.Deps{Log: a.log, Key: a.key, Redis: a.redis, HTTPS: a.cfg.httpsOnly(),
		PublicURL: a.cfg.PublicURL, Store: a.store, Deleter: a.deletions, Mail: privacyMail,
		IPLimit:    monitoring.NewLimiter(a.redis, "privacy-ip", 30, time.Minute),
		EmailLimit: monitoring.NewLimiter(a.redis, "privacy-email", 10, time.Hour),
		Now:        a.now, Retention: a.cfg.Retention})
	if err != nil {
		return nil, fmt.Errorf("privacy pages: %w", err)
	}
	var replicas server.Replicas
	if a.replicas != nil {
		replicas = a.replicas
	}
	return server.New(server.Deps{
		Replicas:  replicas,
		Log:       a.log,
		Redis:     a.redis,
		Pipe:      a.pipe,
		Vault:     a.vault,
		Clients:   a.clients,
		Staff:     a.staff,
		Monitor:   a.monitor,
		Orders:    ordersHTTP,
		Purge:     purge.NewHandler(a.purger, a.deletions, a.store, write),
		StaffHTTP: staffHTTP,
		Console:   con,
		Postage:   postageHTTP,
		Requests:  a.requests,
		Privacy:   customers,
		Checkout: checkout.NewHandler(checkout.NewSessions(a.redis), a.store, a.clients,
			monitoring.NewLimiter(a.redis, "checkout-ip", 30, time.Minute),
			monitoring.NewLimiter(a.redis, "checkout-session", 10, time.Minute), write, a.log),
		Compliance: compliance.NewHandler(a.reports, a.lockdown, a.revealer, write),
		Lockdown:   a.lockdown,
		Audit:      audit.NewHandler(a.audit, write),
		Blocks:     monitoring.NewHandler(a.monitor, write),
		Webhooks: webhooks.NewHandler(webhooks.Deps{
			Secrets: webhooks.Secrets{Stripe: stripe, Shopify: string(a.cfg.ShopifySecret),
				EasyPost: string(a.cfg.EasyPostSecret), Shipping: string(a.cfg.ShippingSecret)},
			Orders: a.store, Purger: a.purger, Bulk: a.deletions, Audit: a.audit, Watch: a.monitor,
			Redis: a.redis, Pipe: a.pipe, Log: a.log, Write: write, EasyPost: easypost, Alerts: a.alerter, Reports: a.reports,
		}),
		LoginLimit:       loginLimit,
		ClientLimit:      clientLimit,
		TrustedProxies:   a.cfg.TrustedProxies,
		AllowedOrigins:   a.cfg.AllowedOrigins,
		HTTPS:            a.cfg.httpsOnly(),
		AccessLog:        a.access,
		MetricsElsewhere: a.cfg.MetricsListen != "",
	})
}

// auditJobs is the audit trail's archiver, on the sweep's schedule, when
// PIIVAULT_AUDIT_ARCHIVE is set. Without it the trail stays whole in
// Redis, and start-up says so in one line once entries are due.
func (a *app) auditJobs() []purge.Job {
	if a.cfg.AuditArchive == "" {
		if hot, err := a.audit.HotStart(context.Background()); err == nil && !hot.IsZero() && time.Since(hot) > a.cfg.AuditHot {
			a.log.Error("PIIVAULT_AUDIT_ARCHIVE is not set: audit entries older than PIIVAULT_AUDIT_HOT stay in Redis until it is",
				"oldest", hot, "hot", a.cfg.AuditHot.String())
		}
		return nil
	}
	return []purge.Job{{Name: "audit-archive", Every: a.cfg.SweepInterval, Run: func(ctx context.Context) error {
		res, deleted, err := a.audit.LifeCycle(ctx, time.Now(), a.cfg.AuditHot, a.cfg.AuditKeep)
		if res.Entries > 0 || deleted > 0 {
			a.log.Info("audit archive", slog.Int("entries", res.Entries), slog.Int("segments", res.Segments),
				slog.Int("deleted_segments", deleted))
		}
		return err
	}}}
}

// newAuditLog is the trail sealed and anchored by vc; with replicas (nil:
// PIIVAULT_REDIS_WAIT is 0) its anchor waits for them; with archive
// (PIIVAULT_AUDIT_ARCHIVE), its older entries live in sealed segments there.
func newAuditLog(rdb redis.UniversalClient, vc *vault.Client, replicas *replication.Waiter, archive string) *audit.Log {
	var opts []audit.Option
	if replicas != nil {
		opts = append(opts, audit.AnchorAfterReplicas(replicas))
	}
	if archive != "" {
		opts = append(opts, audit.WithArchive(archive))
	}
	return audit.NewLog(rdb, vc, vc, opts...)
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
