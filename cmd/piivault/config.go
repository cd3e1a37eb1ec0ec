package main

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	netmail "net/mail"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/EasyPost/easypost-go/v5"
	"github.com/redis/go-redis/v9"

	"piivault/inbound"
	"piivault/mail"
	"piivault/orders"
	"piivault/vault"
)

// secret is a configuration value that never prints: not through fmt
// (any verb, %#v included), JSON (so neither through slog's JSON handler,
// which marshals a struct attribute with encoding/json), nor slog.
// TestWholeConfigNeverPrintsASecret holds it to that.
type secret string

func (secret) String() string               { return "[REDACTED]" }
func (secret) GoString() string             { return "[REDACTED]" }
func (secret) Format(f fmt.State, _ rune)   { _, _ = f.Write([]byte("[REDACTED]")) }
func (secret) LogValue() slog.Value         { return slog.StringValue("[REDACTED]") }
func (secret) MarshalJSON() ([]byte, error) { return []byte(`"[REDACTED]"`), nil }

// config is piivault's whole configuration, read from the environment once.
type config struct {
	Listen         string
	VaultAddr      string
	VaultToken     secret
	RoleID         string
	SecretID       secret
	RedisURL       secret // may carry the Redis password
	redisParsed           // REDIS_URL parsed (it holds the password: never printed)
	TransitMount   string
	TransitKey     string
	Retention      time.Duration
	AllowedOrigins []string
	TrustedProxies []string
	TLSCert        string
	TLSKey         string
	PublicURL      string // PIIVAULT_PUBLIC_URL as an origin (https://vault.shop.example); "" when unset
	StripeSecrets  []secret
	ShopifySecret  secret
	EasyPostSecret secret
	EasyPostAPIKey secret
	EasyPostAPIURL string
	// ShipFrom is the warehouse's return address for labels
	// (PIIVAULT_SHIP_FROM, EasyPost address JSON); nil when unset.
	ShipFrom       *easypost.Address
	ShippingSecret secret
	// Email out (PIIVAULT_SMTP_URL and PIIVAULT_MAIL_FROM); nil when unset:
	// no email features, inbound requests wait for a person.
	Mail *mail.Config
	// InboundSecret is PIIVAULT_INBOUND_SECRET, the basic-auth password of
	// the inbound-email webhooks ("" answers 404).
	InboundSecret secret
	// InboundAddress is the privacy address customers write to
	// (PIIVAULT_INBOUND_ADDRESS): a request runs by itself only when a
	// signed To: or Cc: names it. "" skips that check.
	InboundAddress string
	// InboundWords are the phrases that make an emailed request an access
	// or a correction request (PIIVAULT_INBOUND_WORDS; English and German).
	InboundWords inbound.Words
	// dkimLookup answers DKIM key look-ups instead of DNS (tests only; no
	// variable sets it).
	dkimLookup    func(domain string) ([]string, error)
	AlertURL      string
	SweepInterval time.Duration
	ConsoleIdle   time.Duration
	DebugListen   string // pprof, loopback only; "" is off
	MetricsListen string // /metrics on a listener of its own; "" serves it on the API's
	RevealLimit   int
	ClientRate    int
	LoginRate     int
	KeyRotation   time.Duration
	// The audit trail's life cycle: entries in Redis (hot), older ones in
	// sealed segments in AuditArchive, deleted after AuditKeep.
	AuditHot     time.Duration
	AuditArchive string
	AuditKeep    time.Duration
	BatchSize    int
	BatchWait    time.Duration
	AccessLogMax int64
	RedisWait    int // replicas an acknowledged change waits for (WAIT)
}

// redisParsed is REDIS_URL parsed into the client's options, one of the
// three set. The options carry the password, so the whole prints as
// [REDACTED] whichever way the config is printed or marshalled.
type redisParsed struct {
	redisOpts     *redis.Options         // a single Redis (redis://, rediss://)
	redisCluster  *redis.ClusterOptions  // a Redis Cluster (redis+cluster://, rediss+cluster://)
	redisFailover *redis.FailoverOptions // Redis with Sentinel (redis+sentinel://, rediss+sentinel://)
}

func (redisParsed) String() string               { return "[REDACTED]" }
func (redisParsed) GoString() string             { return "[REDACTED]" }
func (redisParsed) Format(f fmt.State, _ rune)   { _, _ = f.Write([]byte("[REDACTED]")) }
func (redisParsed) LogValue() slog.Value         { return slog.StringValue("[REDACTED]") }
func (redisParsed) MarshalJSON() ([]byte, error) { return []byte(`"[REDACTED]"`), nil }

// configError names the variable at fault; start-up prints it as one line.
type configError struct {
	Var, Problem string
}

func (e *configError) Error() string { return e.Var + ": " + e.Problem }

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// loadConfig reads and validates the environment. getenv is os.Getenv in
// production and a map in tests. Every secret variable may instead name a
// file in NAME_FILE (secretFiles): it is resolved here, first, so nothing
// below knows where a secret came from.
func loadConfig(getenv func(string) string) (*config, error) {
	getenv, err := secretFiles(getenv)
	if err != nil {
		return nil, err
	}
	env := func(k, def string) string {
		if v := strings.TrimSpace(getenv(k)); v != "" {
			return v
		}
		return def
	}
	c := &config{
		Listen:         env("PIIVAULT_LISTEN", "127.0.0.1:8080"),
		VaultAddr:      env("VAULT_ADDR", "http://127.0.0.1:8200"),
		VaultToken:     secret(getenv("VAULT_TOKEN")),
		RoleID:         getenv("PIIVAULT_VAULT_ROLE_ID"),
		SecretID:       secret(getenv("PIIVAULT_VAULT_SECRET_ID")),
		RedisURL:       secret(env("REDIS_URL", "redis://127.0.0.1:6379/0")),
		TransitMount:   env("PIIVAULT_TRANSIT_MOUNT", "transit"),
		TransitKey:     env("PIIVAULT_TRANSIT_KEY", "order-pii"),
		TLSCert:        getenv("PIIVAULT_TLS_CERT"),
		TLSKey:         getenv("PIIVAULT_TLS_KEY"),
		ShopifySecret:  secret(getenv("SHOPIFY_WEBHOOK_SECRET")),
		EasyPostSecret: secret(getenv("EASYPOST_WEBHOOK_SECRET")),
		EasyPostAPIKey: secret(getenv("EASYPOST_API_KEY")),
		EasyPostAPIURL: env("EASYPOST_API_URL", "https://api.easypost.com/v2"),
		ShippingSecret: secret(getenv("PIIVAULT_WEBHOOK_SECRET")),
		AlertURL:       getenv("PIIVAULT_ALERT_URL"),
	}
	for _, s := range splitList(getenv("STRIPE_WEBHOOK_SECRET")) {
		c.StripeSecrets = append(c.StripeSecrets, secret(s))
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return nil, &configError{"PIIVAULT_LISTEN", "want host:port, e.g. 127.0.0.1:8080"}
	}
	if c.DebugListen = strings.TrimSpace(getenv("PIIVAULT_DEBUG_LISTEN")); c.DebugListen != "" {
		host, _, err := net.SplitHostPort(c.DebugListen)
		if err != nil || !loopbackHost(host) {
			return nil, &configError{"PIIVAULT_DEBUG_LISTEN", "want a loopback host:port, e.g. 127.0.0.1:6060 (the profiler is never served to the network)"}
		}
	}
	if c.MetricsListen, err = metricsListen(getenv("PIIVAULT_METRICS_LISTEN"), c.Listen); err != nil {
		return nil, err
	}
	if _, err := vault.SplitAddrs(c.VaultAddr); err != nil {
		return nil, &configError{"VAULT_ADDR", "want an http(s) URL, e.g. https://vault.internal:8200, or the nodes of an HA cluster separated by commas"}
	}
	if (c.RoleID == "") != (c.SecretID == "") {
		return nil, &configError{"PIIVAULT_VAULT_ROLE_ID", "PIIVAULT_VAULT_ROLE_ID and PIIVAULT_VAULT_SECRET_ID go together"}
	}
	if err = c.parseRedisURL(); err != nil {
		return nil, err
	}
	if !namePattern.MatchString(c.TransitMount) {
		return nil, &configError{"PIIVAULT_TRANSIT_MOUNT", "want a mount name of letters, digits, _ . -"}
	}
	if !namePattern.MatchString(c.TransitKey) {
		return nil, &configError{"PIIVAULT_TRANSIT_KEY", "want a key name of letters, digits, _ . -"}
	}
	if c.Retention, err = duration(getenv, "PIIVAULT_RETENTION", orders.MaxRetention, time.Second, orders.MaxRetention); err != nil {
		return nil, err
	}
	if c.SweepInterval, err = duration(getenv, "PIIVAULT_SWEEP_INTERVAL", time.Minute, time.Second, 24*time.Hour); err != nil {
		return nil, err
	}
	if c.ConsoleIdle, err = duration(getenv, "PIIVAULT_CONSOLE_IDLE", 15*time.Minute, time.Minute, 8*time.Hour); err != nil {
		return nil, err
	}
	if c.KeyRotation, err = duration(getenv, "PIIVAULT_KEY_ROTATION", 24*time.Hour, time.Second, 24*time.Hour); err != nil {
		return nil, err
	}
	if c.BatchWait, err = duration(getenv, "PIIVAULT_BATCH_WAIT", orders.DefaultBatchWait, 0, time.Second); err != nil {
		return nil, err
	}
	const decade = 10 * 365 * 24 * time.Hour
	if c.AuditHot, err = duration(getenv, "PIIVAULT_AUDIT_HOT", 720*time.Hour, time.Minute, decade); err != nil {
		return nil, err
	}
	if c.AuditKeep, err = duration(getenv, "PIIVAULT_AUDIT_KEEP", 9504*time.Hour, time.Minute, decade); err != nil {
		return nil, err
	}
	if c.AuditKeep < c.AuditHot {
		return nil, &configError{"PIIVAULT_AUDIT_KEEP", fmt.Sprintf("%s is shorter than PIIVAULT_AUDIT_HOT (%s): the archive would delete what Redis still holds", c.AuditKeep, c.AuditHot)}
	}
	if c.AuditArchive = strings.TrimSpace(getenv("PIIVAULT_AUDIT_ARCHIVE")); c.AuditArchive != "" {
		if fi, err := os.Stat(c.AuditArchive); err != nil || !fi.IsDir() {
			return nil, &configError{"PIIVAULT_AUDIT_ARCHIVE", fmt.Sprintf("%q is not an existing directory", c.AuditArchive)}
		}
	}
	for _, o := range splitList(getenv("PIIVAULT_ALLOWED_ORIGINS")) {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Path != "" {
			return nil, &configError{"PIIVAULT_ALLOWED_ORIGINS", "want comma-separated origins like https://shop.example.com"}
		}
		c.AllowedOrigins = append(c.AllowedOrigins, o)
	}
	for _, p := range splitList(getenv("PIIVAULT_TRUSTED_PROXIES")) {
		if net.ParseIP(p) == nil {
			if _, _, err := net.ParseCIDR(p); err != nil {
				return nil, &configError{"PIIVAULT_TRUSTED_PROXIES", "want comma-separated IPs or CIDRs"}
			}
		}
		c.TrustedProxies = append(c.TrustedProxies, p)
	}
	if c.PublicURL, err = publicOrigin(getenv("PIIVAULT_PUBLIC_URL")); err != nil {
		return nil, err
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return nil, &configError{"PIIVAULT_TLS_CERT", "PIIVAULT_TLS_CERT and PIIVAULT_TLS_KEY go together"}
	}
	if c.TLSCert != "" {
		if _, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey); err != nil {
			return nil, &configError{"PIIVAULT_TLS_CERT", "cannot load the certificate and key: " + err.Error()}
		}
	}
	if u, err := url.Parse(c.EasyPostAPIURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, &configError{"EASYPOST_API_URL", "want an http(s) URL"}
	} else if ip := net.ParseIP(u.Hostname()); u.Scheme == "http" && u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
		// The API key and customers' addresses travel in this connection.
		return nil, &configError{"EASYPOST_API_URL", "plain http is only for a stand-in on this machine (a loopback host); use https"}
	}
	if c.ShipFrom, err = shipFrom(getenv("PIIVAULT_SHIP_FROM")); err != nil {
		return nil, err
	}
	if c.Mail, err = mailConfig(getenv("PIIVAULT_SMTP_URL"), getenv("PIIVAULT_MAIL_FROM")); err != nil {
		return nil, err
	}
	c.InboundSecret = secret(getenv("PIIVAULT_INBOUND_SECRET"))
	if c.InboundAddress = strings.TrimSpace(getenv("PIIVAULT_INBOUND_ADDRESS")); c.InboundAddress != "" {
		a, err := netmail.ParseAddress(c.InboundAddress)
		if err != nil || a.Name != "" {
			return nil, &configError{"PIIVAULT_INBOUND_ADDRESS", "want the bare address customers write to, e.g. privacy@shop.example"}
		}
		c.InboundAddress = a.Address
	}
	c.InboundWords = inbound.DefaultWords()
	if v := strings.TrimSpace(getenv("PIIVAULT_INBOUND_WORDS")); v != "" {
		if c.InboundWords, err = inbound.ParseWords(v); err != nil {
			return nil, &configError{"PIIVAULT_INBOUND_WORDS", err.Error() + " (e.g. access=copy of my data|auskunft;correction=wrong address|berichtigung)"}
		}
	}
	if c.AlertURL != "" {
		if u, err := url.Parse(c.AlertURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, &configError{"PIIVAULT_ALERT_URL", "want an http(s) URL"}
		}
	}
	ints := []struct {
		name     string
		dst      *int
		def, max int
	}{
		{"PIIVAULT_REVEAL_LIMIT", &c.RevealLimit, 200, 1_000_000},
		{"PIIVAULT_RATE_LIMIT", &c.ClientRate, 6000, 100_000_000},
		{"PIIVAULT_LOGIN_RATE_LIMIT", &c.LoginRate, 30, 1_000_000},
		{"PIIVAULT_BATCH_SIZE", &c.BatchSize, orders.DefaultBatchItems, 1000},
		{"PIIVAULT_REDIS_WAIT", &c.RedisWait, 0, 16},
	}
	for _, i := range ints {
		v := getenv(i.name)
		*i.dst = i.def
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > i.max {
			return nil, &configError{i.name, fmt.Sprintf("want a whole number from 0 to %d", i.max)}
		}
		*i.dst = n
	}
	c.AccessLogMax = 1_000_000
	return c, nil
}

// publicOrigin reads PIIVAULT_PUBLIC_URL, the URL staff and customers
// use, and returns it as a browser serialises an origin (lower case, no
// default port, no trailing slash), so the console can compare a form's
// Origin header with it as a plain string. "" stays "" (unset).
func publicOrigin(v string) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return "", nil
	}
	bad := &configError{"PIIVAULT_PUBLIC_URL", "want the absolute http(s) URL staff and customers use, e.g. https://vault.shop.example (no path, query, fragment or user info)"}
	u, err := url.Parse(v)
	// "?" and "#" are looked for in the text: url.Parse drops an empty
	// query or fragment without a trace.
	if err != nil || strings.ContainsAny(v, "?#") || u.Opaque != "" || u.User != nil || u.Hostname() == "" ||
		(u.Path != "" && u.Path != "/") {
		return "", bad
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "https" && scheme != "http" {
		return "", bad
	}
	host := strings.ToLower(u.Hostname())
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if p := u.Port(); p != "" {
		port, err := strconv.Atoi(p)
		if err != nil || port < 1 || port > 65535 {
			return "", bad
		}
		if default443, default80 := scheme == "https" && port == 443, scheme == "http" && port == 80; !default443 && !default80 {
			host += ":" + strconv.Itoa(port)
		}
	}
	return scheme + "://" + host, nil
}

// publicHTTPS is PIIVAULT_PUBLIC_URL when it is https, "" otherwise: an
// http:// public URL changes nothing from having none.
func (c *config) publicHTTPS() string {
	if strings.HasPrefix(c.PublicURL, "https://") {
		return c.PublicURL
	}
	return ""
}

// httpsOnly reports whether browsers reach piivault over HTTPS only:
// piivault serves TLS itself, or PIIVAULT_PUBLIC_URL is https in front of
// a TLS-terminating proxy. Then cookies are Secure and HSTS is sent.
func (c *config) httpsOnly() bool {
	return c.TLSCert != "" || c.publicHTTPS() != ""
}

// parseRedisURL reads REDIS_URL: redis:// or rediss:// for one Redis;
// redis+cluster:// or rediss+cluster:// for a Cluster, with more seed nodes
// as ?addr=host:port parameters; redis+sentinel://host:port?master=NAME&addr=…
// (or rediss+sentinel://) for a primary found through Sentinels, followed
// when they fail it over. Credentials in a Sentinel URL are the Redis
// password, used for the Sentinels too.
func (c *config) parseRedisURL() error {
	u := string(c.RedisURL)
	for _, scheme := range []string{"redis", "rediss"} {
		rest, ok := strings.CutPrefix(u, scheme+"+sentinel://")
		if !ok {
			continue
		}
		bad := &configError{"REDIS_URL", "want " + scheme + "+sentinel://host:port?master=NAME&addr=host2:port2&addr=..."}
		parsed, err := url.Parse(scheme + "://" + rest)
		if err != nil {
			return bad
		}
		q := parsed.Query()
		master := q.Get("master")
		if master == "" {
			return bad
		}
		q.Del("master")
		q.Set("master_name", master)
		parsed.RawQuery = q.Encode()
		opts, err := redis.ParseFailoverURL(parsed.String())
		if err != nil {
			return bad
		}
		if opts.Password == "" {
			opts.Username, opts.Password = opts.SentinelUsername, opts.SentinelPassword
		}
		c.redisFailover = opts
		return nil
	}
	for _, scheme := range []string{"redis", "rediss"} {
		rest, ok := strings.CutPrefix(u, scheme+"+cluster://")
		if !ok {
			continue
		}
		opts, err := redis.ParseClusterURL(scheme + "://" + rest)
		if err != nil {
			return &configError{"REDIS_URL", "want " + scheme + "+cluster://host:port?addr=host2:port2&addr=..."}
		}
		c.redisCluster = opts
		return nil
	}
	opts, err := redis.ParseURL(u)
	if err != nil {
		return &configError{"REDIS_URL", "want redis://[user:password@]host:port/db, rediss://..., redis+cluster://... or redis+sentinel://..."}
	}
	c.redisOpts = opts
	return nil
}

// redisClient connects to the configured Redis or Redis Cluster. No
// command is retried by the client: a resent script could store or append
// twice, so a failure answers 503 and the caller retries the whole request.
func (c *config) redisClient(poolSize int) redis.UniversalClient {
	switch {
	case c.redisFailover != nil:
		o := *c.redisFailover
		tuneRedis(&o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.MaxRetries, &o.PoolSize, poolSize)
		return redis.NewFailoverClient(&o)
	case c.redisCluster != nil:
		o := *c.redisCluster
		tuneRedis(&o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.MaxRetries, &o.PoolSize, poolSize)
		return redis.NewClusterClient(&o)
	}
	o := *c.redisOpts
	tuneRedis(&o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.MaxRetries, &o.PoolSize, poolSize)
	return redis.NewClient(&o)
}

// tuneRedis sets what every kind of Redis client shares: 2 s timeouts, no
// retries, and poolSize connections unless the URL chose a pool size.
func tuneRedis(dial, read, write *time.Duration, retries, pool *int, poolSize int) {
	*dial, *read, *write = 2*time.Second, 2*time.Second, 2*time.Second
	*retries = -1
	if *pool == 0 {
		*pool = poolSize
	}
}

// needVault checks the service has Vault credentials (serve and friends).
func (c *config) needVault() error {
	if c.VaultToken == "" && c.RoleID == "" {
		return &configError{"PIIVAULT_VAULT_ROLE_ID", "set PIIVAULT_VAULT_ROLE_ID and PIIVAULT_VAULT_SECRET_ID (or VAULT_TOKEN)"}
	}
	return nil
}

// vaultConfig is how piivault reaches Vault: the service's AppRole (or
// VAULT_TOKEN) and the transit key. vault.NewOperator uses the token alone.
func (c *config) vaultConfig() vault.Config {
	return vault.Config{Addr: c.VaultAddr, Token: string(c.VaultToken), RoleID: c.RoleID,
		SecretID: string(c.SecretID), TransitMount: c.TransitMount, TransitKey: c.TransitKey}
}

func duration(getenv func(string) string, name string, def, min, max time.Duration) (time.Duration, error) {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, &configError{name, fmt.Sprintf("%q is not a Go duration like 720h or 90s", v)}
	}
	if d < min || d > max {
		return 0, &configError{name, fmt.Sprintf("%s is outside the allowed range %s to %s", d, min, max)}
	}
	return d, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// shipFrom reads PIIVAULT_SHIP_FROM: the warehouse's address in EasyPost's
// address fields. It is the merchant's own address, not customer PII.
func shipFrom(v string) (*easypost.Address, error) {
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	var a struct {
		Name    string `json:"name"`
		Company string `json:"company"`
		Street1 string `json:"street1"`
		Street2 string `json:"street2"`
		City    string `json:"city"`
		State   string `json:"state"`
		Zip     string `json:"zip"`
		Country string `json:"country"`
		Phone   string `json:"phone"`
		Email   string `json:"email"`
	}
	dec := json.NewDecoder(strings.NewReader(v))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		return nil, &configError{"PIIVAULT_SHIP_FROM", "want a JSON object of EasyPost address fields (name, company, street1, street2, city, state, zip, country, phone, email): " + err.Error()}
	}
	var missing []string
	for _, f := range []struct{ name, v string }{{"street1", a.Street1}, {"city", a.City}, {"zip", a.Zip}, {"country", a.Country}} {
		if strings.TrimSpace(f.v) == "" {
			missing = append(missing, f.name)
		}
	}
	if a.Name == "" && a.Company == "" {
		missing = append(missing, "name or company")
	}
	if len(missing) > 0 {
		return nil, &configError{"PIIVAULT_SHIP_FROM", "missing " + strings.Join(missing, ", ")}
	}
	return &easypost.Address{Name: a.Name, Company: a.Company, Street1: a.Street1, Street2: a.Street2, City: a.City,
		State: a.State, Zip: a.Zip, Country: a.Country, Phone: a.Phone, Email: a.Email}, nil
}

// mailConfig reads PIIVAULT_SMTP_URL and PIIVAULT_MAIL_FROM: both or
// neither (nil: no email).
func mailConfig(smtpURL, from string) (*mail.Config, error) {
	smtpURL, from = strings.TrimSpace(smtpURL), strings.TrimSpace(from)
	switch {
	case smtpURL == "" && from == "":
		return nil, nil
	case from == "":
		return nil, &configError{"PIIVAULT_MAIL_FROM", "set it with PIIVAULT_SMTP_URL: the address piivault's emails come from"}
	case smtpURL == "":
		return nil, &configError{"PIIVAULT_SMTP_URL", "set it with PIIVAULT_MAIL_FROM: smtp://user:pass@host:587 or smtps://user:pass@host:465"}
	}
	c, err := mail.ParseConfig(smtpURL, from)
	if err != nil {
		// Its messages start with the variable's name and never hold the password.
		msg := err.Error()
		for _, v := range []string{"PIIVAULT_SMTP_URL", "PIIVAULT_MAIL_FROM"} {
			if strings.HasPrefix(msg, v) {
				return nil, &configError{v, strings.TrimLeft(strings.TrimPrefix(msg, v), ": ")}
			}
		}
		return nil, &configError{"PIIVAULT_SMTP_URL", msg}
	}
	return &c, nil
}
