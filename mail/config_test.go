package mail

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseConfig(t *testing.T) {
	const from = "Shop <no-reply@shop.example>"
	tests := []struct {
		name    string
		url     string
		from    string
		want    Config
		wantErr string
	}{
		{name: "submission, STARTTLS required", url: "smtp://user:pw@mail.example.com", from: from,
			want: Config{Host: "mail.example.com", Port: 587, Security: StartTLS, Username: "user", Password: "pw", From: `"Shop" <no-reply@shop.example>`}},
		{name: "explicit port", url: "smtp://mail.example.com:2525", from: "no-reply@shop.example",
			want: Config{Host: "mail.example.com", Port: 2525, Security: StartTLS, From: "<no-reply@shop.example>"}},
		{name: "smtps, implicit TLS", url: "smtps://u:p@mail.example.com", from: from,
			want: Config{Host: "mail.example.com", Port: 465, Security: ImplicitTLS, Username: "u", Password: "p", From: `"Shop" <no-reply@shop.example>`}},
		{name: "smtps on a loopback host stays TLS", url: "smtps://127.0.0.1:1465", from: from,
			want: Config{Host: "127.0.0.1", Port: 1465, Security: ImplicitTLS, From: `"Shop" <no-reply@shop.example>`}},
		{name: "loopback v4 is plain", url: "smtp://127.0.0.1:1025", from: from,
			want: Config{Host: "127.0.0.1", Port: 1025, Security: Plain, From: `"Shop" <no-reply@shop.example>`}},
		{name: "all of 127/8 is plain", url: "smtp://127.3.2.1", from: from,
			want: Config{Host: "127.3.2.1", Port: 587, Security: Plain, From: `"Shop" <no-reply@shop.example>`}},
		{name: "loopback v6 is plain", url: "smtp://[::1]:25", from: from,
			want: Config{Host: "::1", Port: 25, Security: Plain, From: `"Shop" <no-reply@shop.example>`}},
		{name: "localhost is plain", url: "smtp://LocalHost:1025", from: from,
			want: Config{Host: "LocalHost", Port: 1025, Security: Plain, From: `"Shop" <no-reply@shop.example>`}},
		{name: "a name starting 127. is not loopback", url: "smtp://127.0.0.1.example.com", from: from,
			want: Config{Host: "127.0.0.1.example.com", Port: 587, Security: StartTLS, From: `"Shop" <no-reply@shop.example>`}},
		{name: "uppercase scheme", url: "SMTP://mail.example.com", from: from,
			want: Config{Host: "mail.example.com", Port: 587, Security: StartTLS, From: `"Shop" <no-reply@shop.example>`}},

		{name: "empty url", url: "", from: from, wantErr: "PIIVAULT_SMTP_URL is empty"},
		{name: "other scheme", url: "http://mail.example.com", from: from, wantErr: `PIIVAULT_SMTP_URL: scheme "http" is neither smtp nor smtps`},
		{name: "no scheme", url: "mail.example.com:587", from: from, wantErr: "PIIVAULT_SMTP_URL"},
		{name: "no host", url: "smtp://:587", from: from, wantErr: "PIIVAULT_SMTP_URL has no host"},
		{name: "opaque", url: "smtp:mail.example.com", from: from, wantErr: "PIIVAULT_SMTP_URL has no host"},
		{name: "bad port", url: "smtp://mail.example.com:99999", from: from, wantErr: "PIIVAULT_SMTP_URL: port"},
		{name: "query", url: "smtp://mail.example.com?tls=false", from: from, wantErr: "PIIVAULT_SMTP_URL has a path, query or fragment"},
		{name: "password without user", url: "smtp://:pw@mail.example.com", from: from, wantErr: "PIIVAULT_SMTP_URL has a password but no user"},
		{name: "bad url keeps the password out", url: "smtp://user:s3cret@mail example.com", from: from, wantErr: "PIIVAULT_SMTP_URL is not a URL"},
		{name: "empty from", url: "smtp://mail.example.com", from: " ", wantErr: "PIIVAULT_MAIL_FROM is empty"},
		{name: "bad from", url: "smtp://mail.example.com", from: "no-reply", wantErr: "PIIVAULT_MAIL_FROM is not an email address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseConfig(tt.url, tt.from)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				require.NotContains(t, err.Error(), "s3cret")
				require.NotContains(t, err.Error(), "no-reply")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

// TestSenderSecurity: what NewSender does with each Config. STARTTLS is
// mandatory for every host that is not loopback, whatever Security says.
func TestSenderSecurity(t *testing.T) {
	tests := []struct {
		name     string
		cfg      Config
		want     Security
		wantPort int
	}{
		{name: "plain refused off loopback", cfg: Config{Host: "mail.example.com", Security: Plain}, want: StartTLS, wantPort: 587},
		{name: "plain on loopback", cfg: Config{Host: "127.0.0.1", Port: 1025, Security: Plain}, want: Plain, wantPort: 1025},
		{name: "starttls", cfg: Config{Host: "mail.example.com", Security: StartTLS}, want: StartTLS, wantPort: 587},
		{name: "implicit default port", cfg: Config{Host: "mail.example.com", Security: ImplicitTLS}, want: ImplicitTLS, wantPort: 465},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, tt.cfg.security())
			require.Equal(t, tt.wantPort, tt.cfg.port())
		})
	}
}

func TestConfigRedacted(t *testing.T) {
	cfg, err := ParseConfig("smtps://mailer@shop.example:hunter2@mail.example.com", "no-reply@shop.example")
	require.NoError(t, err)
	var logged strings.Builder
	slog.New(slog.NewTextHandler(&logged, nil)).Info("config", "smtp", cfg)
	js, err := json.Marshal(cfg)
	require.NoError(t, err)
	for _, out := range []string{cfg.String(), fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), logged.String(), string(js)} {
		require.NotContains(t, out, "hunter2")
	}
	require.Equal(t, "smtps://[REDACTED]:[REDACTED]@mail.example.com:465 (tls)", cfg.String())
	require.Contains(t, logged.String(), "smtp.host=mail.example.com smtp.port=465 smtp.security=tls smtp.auth=true")
}

func TestMessageRedacted(t *testing.T) {
	m := Message{ID: "receipt:r1", To: "jane@example.com", Subject: "Your request", Text: "Dear Jane"}
	var logged strings.Builder
	slog.New(slog.NewTextHandler(&logged, nil)).Info("m", "msg", m)
	for _, out := range []string{fmt.Sprintf("%v", m), fmt.Sprintf("%+v", m), fmt.Sprintf("%#v", m), logged.String()} {
		require.NotContains(t, out, "jane@example.com")
		require.NotContains(t, out, "Your request")
		require.NotContains(t, out, "Dear Jane")
		require.Contains(t, out, "receipt:r1")
	}
}
