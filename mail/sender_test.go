package mail

import (
	"context"
	"errors"
	"testing"

	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/require"
)

func TestSend(t *testing.T) {
	cert, pool := selfSigned(t)
	tests := []struct {
		name    string
		mode    relayMode
		cfg     func(port int) Config
		wantTLS bool
		wantErr string
	}{
		{name: "plain on loopback", mode: plainRelay, cfg: localConfig},
		{name: "STARTTLS", mode: startTLSRelay, wantTLS: true, cfg: func(port int) Config {
			c := localConfig(port)
			c.Security, c.RootCAs = StartTLS, pool
			return c
		}},
		{name: "implicit TLS", mode: implicitRelay, wantTLS: true, cfg: func(port int) Config {
			c := localConfig(port)
			c.Security, c.RootCAs = ImplicitTLS, pool
			return c
		}},
		{name: "STARTTLS required but not offered", mode: plainRelay, wantErr: "STARTTLS", cfg: func(port int) Config {
			c := localConfig(port)
			c.Security = StartTLS
			return c
		}},
		{name: "untrusted certificate", mode: startTLSRelay, wantErr: "certificate", cfg: func(port int) Config {
			c := localConfig(port)
			c.Security = StartTLS
			return c
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			relay, port := startRelay(t, "127.0.0.1:0", tt.mode, cert)
			m := Message{ID: "receipt:r1", To: "jane@example.com", Subject: "Ihre Anfrage – erledigt", Text: "Wir haben Ihre Daten gelöscht.\n"}
			err := NewSender(tt.cfg(port)).Send(context.Background(), m)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				require.Empty(t, relay.Messages())
				return
			}
			require.NoError(t, err)
			got := relay.Messages()
			require.Len(t, got, 1)
			require.Equal(t, tt.wantTLS, relay.usedTLS())
			require.Equal(t, "no-reply@shop.test", got[0].From)
			require.Equal(t, []string{"jane@example.com"}, got[0].To)
			require.Equal(t, "<jane@example.com>", got[0].Header(t, "To"))
			require.Equal(t, `"Shop" <no-reply@shop.test>`, got[0].Header(t, "From"))
			require.Equal(t, "=?UTF-8?q?Ihre_Anfrage_=E2=80=93_erledigt?=", got[0].Header(t, "Subject"))
			require.Equal(t, "auto-generated", got[0].Header(t, "Auto-Submitted"))
			require.Equal(t, "<"+messageID("receipt:r1", "shop.test")+">", got[0].Header(t, "Message-ID"))
			require.Contains(t, got[0].Header(t, "Content-Type"), "text/plain")
			require.Empty(t, got[0].Header(t, "User-Agent"))
			require.Contains(t, got[0].Body(t), "Wir haben Ihre Daten gel=C3=B6scht.")
		})
	}
}

// TestSendSameMessageID: a retried send of one id carries the same
// Message-ID, and another id another one.
func TestSendSameMessageID(t *testing.T) {
	relay, port := startRelay(t, "127.0.0.1:0", plainRelay, nil)
	s := NewSender(localConfig(port))
	for _, id := range []string{"receipt:r1", "receipt:r1", "receipt:r2"} {
		require.NoError(t, s.Send(context.Background(), Message{ID: id, To: "jane@example.com", Subject: "s", Text: "t"}))
	}
	got := relay.Messages()
	require.Len(t, got, 3)
	require.Equal(t, got[0].Header(t, "Message-ID"), got[1].Header(t, "Message-ID"))
	require.NotEqual(t, got[0].Header(t, "Message-ID"), got[2].Header(t, "Message-ID"))
}

// TestSendAuth: credentials from the URL reach the relay; a loopback dev
// server without TLS gets them too.
func TestSendAuth(t *testing.T) {
	cert, pool := selfSigned(t)
	tests := []struct {
		name     string
		mode     relayMode
		security Security
		password string
		wantErr  bool
	}{
		{name: "plain loopback", mode: plainRelay, security: Plain, password: "pw"},
		{name: "STARTTLS", mode: startTLSRelay, security: StartTLS, password: "pw"},
		{name: "wrong password", mode: startTLSRelay, security: StartTLS, password: "nope", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			relay, port := startRelay(t, "127.0.0.1:0", tt.mode, cert)
			relay.requirePassword("pw")
			cfg := localConfig(port)
			cfg.Security, cfg.RootCAs, cfg.Username, cfg.Password = tt.security, pool, "mailer", tt.password
			err := NewSender(cfg).Send(context.Background(), Message{ID: "x", To: "jane@example.com", Subject: "s", Text: "t"})
			if tt.wantErr {
				require.Error(t, err)
				require.NotContains(t, err.Error(), "nope")
				require.Empty(t, relay.Messages())
				return
			}
			require.NoError(t, err)
			require.Len(t, relay.Messages(), 1)
		})
	}
}

func TestSendErrors(t *testing.T) {
	relay, port := startRelay(t, "127.0.0.1:0", plainRelay, nil)
	relay.refuse(&smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "<jane@example.com>: no such user"})
	s := NewSender(localConfig(port))

	err := s.Send(context.Background(), Message{ID: "receipt:r1", To: "jane@example.com", Subject: "s", Text: "t"})
	var de *DeliveryError
	require.ErrorAs(t, err, &de)
	require.Equal(t, 550, de.Code)
	require.Equal(t, "5.1.1", de.Status)
	require.False(t, de.Temporary)
	require.NotContains(t, err.Error(), "jane", "the relay's reply quotes the address; the error must not")

	tests := []struct {
		name string
		m    Message
	}{
		{name: "no id", m: Message{To: "jane@example.com"}},
		{name: "bad recipient", m: Message{ID: "x", To: "jane.example.com"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Send(context.Background(), tt.m)
			require.True(t, errors.Is(err, ErrInvalid), err)
			require.NotContains(t, err.Error(), "jane")
		})
	}
}
