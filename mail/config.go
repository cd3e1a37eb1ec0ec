package mail

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	netmail "net/mail"
	"net/url"
	"strconv"
	"strings"
)

// Security is how the connection to the SMTP relay is protected.
type Security int

const (
	// StartTLS upgrades the connection with STARTTLS and fails if the relay
	// does not offer it.
	StartTLS Security = iota
	// ImplicitTLS speaks TLS from the first byte (smtps).
	ImplicitTLS
	// Plain sends in the clear. It is honoured for loopback hosts only (a
	// dev mail server, tests); any other host gets StartTLS.
	Plain
)

func (s Security) String() string {
	switch s {
	case StartTLS:
		return "starttls"
	case ImplicitTLS:
		return "tls"
	case Plain:
		return "plain"
	}
	return "unknown"
}

const (
	submissionPort = 587
	smtpsPort      = 465
)

// Config is where and as whom mail is sent. Its String and LogValue leave
// out the user name and the password.
type Config struct {
	Host     string
	Port     int
	Security Security
	Username string
	Password string `json:"-"`
	// From is the sender: an address, or "Name <address>".
	From string
	// RootCAs verifies the relay's certificate; nil means the system's roots.
	RootCAs *x509.CertPool
}

// ParseConfig reads the values of PIIVAULT_SMTP_URL and PIIVAULT_MAIL_FROM:
// smtp://user:pass@host[:587] (STARTTLS, mandatory unless the host is a
// loopback address or "localhost") or smtps://user:pass@host[:465] (implicit
// TLS). Its errors name the variable at fault and never hold the password or
// the From address.
func ParseConfig(smtpURL, from string) (Config, error) {
	const urlVar, fromVar = "PIIVAULT_SMTP_URL", "PIIVAULT_MAIL_FROM"
	if strings.TrimSpace(smtpURL) == "" {
		return Config{}, fmt.Errorf("%s is empty", urlVar)
	}
	u, err := url.Parse(smtpURL)
	if err != nil {
		// url.Error quotes the whole URL, password and all: keep only its cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return Config{}, fmt.Errorf("%s is not a URL: %w", urlVar, err)
	}
	var c Config
	switch u.Scheme {
	case "smtp":
		c.Security, c.Port = StartTLS, submissionPort
	case "smtps":
		c.Security, c.Port = ImplicitTLS, smtpsPort
	default:
		return Config{}, fmt.Errorf("%s: scheme %q is neither smtp nor smtps", urlVar, u.Scheme)
	}
	c.Host = u.Hostname()
	if c.Host == "" {
		return Config{}, fmt.Errorf("%s has no host", urlVar)
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return Config{}, fmt.Errorf("%s: port %q is not a port number", urlVar, p)
		}
		c.Port = n
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		// Nothing is read from them: refuse rather than ignore a setting
		// such as ?tls=false.
		return Config{}, fmt.Errorf("%s has a path, query or fragment; only scheme, user, password, host and port are read", urlVar)
	}
	if u.User != nil {
		c.Username = u.User.Username()
		c.Password, _ = u.User.Password()
		if c.Username == "" {
			return Config{}, fmt.Errorf("%s has a password but no user", urlVar)
		}
	}
	if c.Security == StartTLS && isLoopback(c.Host) {
		c.Security = Plain
	}
	if strings.TrimSpace(from) == "" {
		return Config{}, fmt.Errorf("%s is empty", fromVar)
	}
	addr, err := netmail.ParseAddress(from)
	if err != nil {
		return Config{}, fmt.Errorf("%s is not an email address (an address, or \"Name <address>\")", fromVar)
	}
	c.From = addr.String()
	return c, nil
}

// isLoopback reports whether host is "localhost" or an address in
// 127.0.0.0/8 or ::1; a name that merely starts with 127. is not.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// security is what NewSender uses: Plain only where it is allowed.
func (c Config) security() Security {
	if c.Security == Plain && !isLoopback(c.Host) {
		return StartTLS
	}
	return c.Security
}

func (c Config) port() int {
	switch {
	case c.Port != 0:
		return c.Port
	case c.security() == ImplicitTLS:
		return smtpsPort
	}
	return submissionPort
}

// String is the relay as a URL without its credentials.
func (c Config) String() string {
	scheme := "smtp"
	if c.security() == ImplicitTLS {
		scheme = "smtps"
	}
	user := ""
	if c.Username != "" {
		user = "[REDACTED]:[REDACTED]@"
	}
	return fmt.Sprintf("%s://%s%s (%s)", scheme, user, net.JoinHostPort(c.Host, strconv.Itoa(c.port())), c.security())
}

// GoString keeps %#v from printing the password.
func (c Config) GoString() string { return c.String() }

// LogValue logs where mail goes, not as whom.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("host", c.Host),
		slog.Int("port", c.port()),
		slog.String("security", c.security().String()),
		slog.Bool("auth", c.Username != ""),
	)
}
