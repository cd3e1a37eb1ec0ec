package mail

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	netmail "net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"piivault/internal/devstack"
)

// received is one message the test relay accepted.
type received struct {
	From string
	To   []string
	Data []byte
}

// Header parses the message and returns its header field key.
func (r received) Header(tb testing.TB, key string) string {
	tb.Helper()
	m, err := netmail.ReadMessage(bytes.NewReader(r.Data))
	require.NoError(tb, err)
	return m.Header.Get(key)
}

func (r received) Body(tb testing.TB) string {
	tb.Helper()
	m, err := netmail.ReadMessage(bytes.NewReader(r.Data))
	require.NoError(tb, err)
	b, err := io.ReadAll(m.Body)
	require.NoError(tb, err)
	return string(b)
}

// relay is an in-process SMTP server (go-smtp) that records what it accepts;
// rcptErr, when set, refuses every recipient, and password, when set, is
// required (user "mailer", AUTH PLAIN).
type relay struct {
	mu       sync.Mutex
	got      []received
	rcptErr  *smtp.SMTPError
	tls      bool // the last message came over TLS
	password string
}

func (r *relay) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{relay: r, conn: c}, nil
}

func (r *relay) Messages() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

func (r *relay) usedTLS() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tls
}

func (r *relay) requirePassword(p string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.password = p
}

func (r *relay) refuse(err *smtp.SMTPError) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rcptErr = err
}

type session struct {
	relay  *relay
	conn   *smtp.Conn
	cur    received
	authed bool
}

func (s *session) Reset()        { s.cur = received{} }
func (s *session) Logout() error { return nil }
func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	s.relay.mu.Lock()
	defer s.relay.mu.Unlock()
	if s.relay.password != "" && !s.authed {
		return smtp.ErrAuthRequired
	}
	s.cur.From = from
	return nil
}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		s.relay.mu.Lock()
		defer s.relay.mu.Unlock()
		if user != "mailer" || pass != s.relay.password {
			return errors.New("invalid credentials")
		}
		s.authed = true
		return nil
	}), nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.relay.mu.Lock()
	defer s.relay.mu.Unlock()
	if s.relay.rcptErr != nil {
		return s.relay.rcptErr
	}
	s.cur.To = append(s.cur.To, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.Data = b
	s.relay.mu.Lock()
	defer s.relay.mu.Unlock()
	_, s.relay.tls = s.conn.TLSConnectionState()
	s.relay.got = append(s.relay.got, s.cur)
	return nil
}

type relayMode int

const (
	plainRelay    relayMode = iota // no TLS at all
	startTLSRelay                  // offers STARTTLS
	implicitRelay                  // TLS from the first byte
)

// startRelay serves on addr ("127.0.0.1:0" for any port) until the test ends.
func startRelay(tb testing.TB, addr string, mode relayMode, cert *tls.Certificate) (*relay, int) {
	tb.Helper()
	r := &relay{}
	s := smtp.NewServer(r)
	s.Domain = "relay.test"
	s.ReadTimeout, s.WriteTimeout = 10*time.Second, 10*time.Second
	s.ErrorLog = log.New(io.Discard, "", 0)
	s.AllowInsecureAuth = true
	ln, err := net.Listen("tcp", addr)
	require.NoError(tb, err)
	switch mode {
	case startTLSRelay:
		s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*cert}}
	case implicitRelay:
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{*cert}})
	}
	go func() { _ = s.Serve(ln) }()
	tb.Cleanup(func() { _ = s.Close() })
	return r, ln.Addr().(*net.TCPAddr).Port
}

// selfSigned is a certificate for 127.0.0.1 and the pool that trusts it.
func selfSigned(tb testing.TB) (*tls.Certificate, *x509.CertPool) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(tb, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "relay.test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(tb, err)
	leaf, err := x509.ParseCertificate(der)
	require.NoError(tb, err)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

func localConfig(port int) Config {
	return Config{Host: "127.0.0.1", Port: port, Security: Plain, From: "Shop <no-reply@shop.test>"}
}

// startRedis starts a redis-server of its own on a free loopback port.
func startRedis(tb testing.TB) *redis.Client {
	tb.Helper()
	stack, err := devstack.StartRedis()
	require.NoError(tb, err)
	tb.Cleanup(stack.Stop)
	rdb := redis.NewClient(&redis.Options{Addr: stack.RedisAddr})
	tb.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// fakeVault is a trivial reversible Encrypter: base64 behind a prefix.
// Production passes Vault transit.
type fakeVault struct{ down bool }

func (f *fakeVault) Seal(_ context.Context, p []byte) (string, error) {
	if f.down {
		return "", errors.New("vault down")
	}
	return "sealed:" + base64.StdEncoding.EncodeToString(p), nil
}

func (f *fakeVault) Open(_ context.Context, c string) ([]byte, error) {
	if f.down {
		return nil, errors.New("vault down")
	}
	b, ok := strings.CutPrefix(c, "sealed:")
	if !ok {
		return nil, errors.New("not sealed")
	}
	return base64.StdEncoding.DecodeString(b)
}
