package requests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"piivault/inbound"
	"piivault/internal/apperr"
	"piivault/internal/devstack"
	"piivault/internal/keyseal"
	"piivault/internal/web"
	"piivault/mail"
)

var rdb *redis.Client

func TestMain(m *testing.M) {
	gin.SetMode(gin.TestMode)
	stack, err := devstack.StartRedis()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start redis:", err)
		os.Exit(1)
	}
	rdb = redis.NewClient(&redis.Options{Addr: stack.RedisAddr})
	code := m.Run()
	rdb.Close()
	stack.Stop()
	os.Exit(code)
}

const (
	secret    = "inbound-secret"
	jane      = "jane@shop.example"
	publicURL = "https://vault.shop.example/"
	retention = 48 * time.Hour
)

type harness struct {
	t       *testing.T
	svc     *Service
	router  *gin.Engine
	world   *world
	mailer  *fakeMailer
	trail   *fakeTrail
	watch   *fakeWatch
	dns     *dns
	now     time.Time
	transit *fakeTransit
}

type option func(*Config, *Deps)

func withoutMail(c *Config, d *Deps) { d.Mailer = nil }

// newHarness builds a Service on a flushed Redis with fakes around it and
// the routes as the integrator registers them; a test middleware plays
// the staff login (X-Test-Role names the role).
func newHarness(t *testing.T, opts ...option) *harness {
	t.Helper()
	require.NoError(t, rdb.FlushAll(context.Background()).Err())
	h := &harness{t: t, world: &world{orders: map[string][]string{jane: {"ord-1", "ord-2"}}}, mailer: &fakeMailer{},
		trail: &fakeTrail{}, watch: &fakeWatch{}, dns: newDNS(t, "shop.example", "attacker.example"),
		now: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC), transit: newFakeTransit(t, "tok-support")}
	master := make([]byte, 32)
	for i := range master {
		master[i] = byte(i)
	}
	sealer, err := keyseal.New(master, "inbound sender")
	require.NoError(t, err)
	cfg := Config{Secret: secret, Verifier: verifierOf(h.dns), PublicURL: publicURL, Retention: retention}
	deps := Deps{Deleter: fakeDeleter{h.world}, History: fakeHistory{h.world}, Reporter: fakeReporter{h.world},
		Mailer: h.mailer, Sealer: sealer, Excerpts: h.transit, Audit: h.trail, Watch: h.watch,
		Now: func() time.Time { return h.now }}
	for _, o := range opts {
		o(&cfg, &deps)
	}
	h.svc = New(rdb, cfg, deps)
	h.router = gin.New()
	h.svc.RegisterInbound(h.router)
	staff := h.router.Group("", func(c *gin.Context) {
		if role := c.GetHeader("X-Test-Role"); role != "" {
			web.SetPrincipal(c, web.Principal{Kind: web.KindStaff, Name: "sam", Role: role, Token: web.Secret("tok-" + role)})
		}
	})
	staff.GET("/v1/deletion-requests", h.svc.Pending)
	staff.POST("/v1/deletion-requests/:id/confirm", h.svc.Confirm)
	staff.POST("/v1/deletion-requests/:id/reject", h.svc.Reject)
	return h
}

func verifierOf(d *dns) inbound.Verifier { return inbound.Verifier{LookupTXT: d.LookupTXT} }

func (h *harness) do(method, path string, body []byte, header http.Header) *httptest.ResponseRecorder {
	h.t.Helper()
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	for k, v := range header {
		req.Header[k] = v
	}
	w := httptest.NewRecorder()
	h.router.ServeHTTP(w, req)
	return w
}

func basic(user, pass string) http.Header {
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	r.SetBasicAuth(user, pass)
	return r.Header
}

// postmark posts raw (as RawEmail, or the JSON summary only when noRaw).
func (h *harness) postmark(raw string, noRaw bool) *httptest.ResponseRecorder {
	h.t.Helper()
	return h.do(http.MethodPost, "/v1/inbound/postmark", postmarkBody(h.t, raw, noRaw), basic("postmark", secret))
}

func postmarkBody(t *testing.T, raw string, noRaw bool) []byte {
	t.Helper()
	body := map[string]any{
		"From": jane, "FromFull": map[string]string{"Email": jane, "Name": "Jane"},
		"To": "privacy@shop.example", "Subject": "Delete my data", "MessageID": "73e6d360-66eb-11e1-8e72-a8904824019b",
		"Date": "Mon, 2 Mar 2026 10:00:00 +0100", "TextBody": "Please delete my data.", "MessageStream": "inbound",
		"Headers": []map[string]string{{"Name": "Message-ID", "Value": "<summary-1@shop.example>"}},
	}
	if !noRaw {
		body["RawEmail"] = raw
	}
	b, err := json.Marshal(body)
	require.NoError(t, err)
	return b
}

// sendgrid posts raw as SendGrid's Inbound Parse does with "send raw".
func (h *harness) sendgrid(raw string) *httptest.ResponseRecorder {
	h.t.Helper()
	body, ctype := sendgridBody(h.t, raw)
	header := basic("sendgrid", secret)
	header.Set("Content-Type", ctype)
	return h.do(http.MethodPost, "/v1/inbound/sendgrid", body, header)
}

func sendgridBody(t *testing.T, raw string) ([]byte, string) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for _, f := range [][2]string{{"to", "privacy@shop.example"}, {"from", jane}, {"subject", "x"},
		{"dkim", "{@shop.example : pass}"}, {"SPF", "pass"}, {"charsets", `{"to":"UTF-8"}`}, {"email", raw}} {
		require.NoError(t, w.WriteField(f[0], f[1]))
	}
	require.NoError(t, w.Close())
	return b.Bytes(), w.FormDataContentType()
}

func (h *harness) staff(method, path, role string) *httptest.ResponseRecorder {
	h.t.Helper()
	header := http.Header{}
	if role != "" {
		header.Set("X-Test-Role", role)
	}
	return h.do(method, path, nil, header)
}

func decode[T any](t *testing.T, w *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &v), w.Body.String())
	return v
}

func (h *harness) record(id string) map[string]string {
	h.t.Helper()
	m, err := rdb.HGetAll(context.Background(), reqKey(id)).Result()
	require.NoError(h.t, err)
	return m
}

func TestInbound(t *testing.T) {
	tests := []struct {
		name     string
		provider string // postmark (default) or sendgrid
		signer   string // DKIM signing domain, "" unsigned
		from     string
		subject  string
		body     string
		noRaw    bool // Postmark without "Include raw email content"
		opts     []option

		wantOutcome string
		wantReason  string
		wantDKIM    string
		wantKind    string
		wantDeleted bool
		wantAccess  bool
	}{
		{name: "postmark, signed deletion runs", signer: "shop.example", subject: "Delete my data", body: "Please delete everything.",
			wantOutcome: OutcomeDeleted, wantDKIM: "pass", wantKind: "deletion", wantDeleted: true},
		{name: "sendgrid raw, signed deletion runs", provider: "sendgrid", signer: "shop.example", subject: "Löschung", body: "Bitte löschen Sie meine Daten.",
			wantOutcome: OutcomeDeleted, wantDKIM: "pass", wantKind: "deletion", wantDeleted: true},
		{name: "forged From signed by another domain waits", signer: "attacker.example", subject: "Delete my data",
			wantOutcome: OutcomePending, wantReason: ReasonUnauthenticated, wantDKIM: "fail", wantKind: "deletion"},
		{name: "unsigned waits", subject: "Delete my data", body: "Please delete.",
			wantOutcome: OutcomePending, wantReason: ReasonUnauthenticated, wantDKIM: "none", wantKind: "deletion"},
		{name: "sendgrid unsigned waits", provider: "sendgrid", subject: "Delete my data",
			wantOutcome: OutcomePending, wantReason: ReasonUnauthenticated, wantDKIM: "none", wantKind: "deletion"},
		{name: "postmark without the raw message waits", signer: "shop.example", noRaw: true,
			wantOutcome: OutcomePending, wantReason: ReasonUnauthenticated, wantDKIM: "none", wantKind: "deletion"},
		{name: "no orders waits", signer: "shop.example", from: "max@shop.example", subject: "Delete my data",
			wantOutcome: OutcomePending, wantReason: ReasonNoOrders, wantDKIM: "pass", wantKind: "deletion"},
		{name: "German Auskunft mails the link", signer: "shop.example", subject: "Auskunft nach Art. 15", body: "Guten Tag,\nbitte um Auskunft.",
			wantOutcome: OutcomeAccessSent, wantDKIM: "pass", wantKind: "access", wantAccess: true},
		{name: "sendgrid access mails the link", provider: "sendgrid", signer: "shop.example", subject: "Copy of my data",
			wantOutcome: OutcomeAccessSent, wantDKIM: "pass", wantKind: "access", wantAccess: true},
		{name: "correction waits", signer: "shop.example", subject: "Wrong address", body: "My street is misspelt.",
			wantOutcome: OutcomePending, wantReason: ReasonCorrection, wantDKIM: "pass", wantKind: "correction"},
		{name: "email off: deletion waits", signer: "shop.example", subject: "Delete my data", opts: []option{withoutMail},
			wantOutcome: OutcomePending, wantReason: ReasonEmailOff, wantDKIM: "pass", wantKind: "deletion"},
		{name: "email off as a nil *mail.Outbox", signer: "shop.example", subject: "Copy of my data",
			opts:        []option{func(_ *Config, d *Deps) { d.Mailer = (*mail.Outbox)(nil) }},
			wantOutcome: OutcomePending, wantReason: ReasonEmailOff, wantDKIM: "pass", wantKind: "access"},
		{name: "no public URL: access waits", signer: "shop.example", subject: "Copy of my data",
			opts:        []option{func(c *Config, _ *Deps) { c.PublicURL = "" }},
			wantOutcome: OutcomePending, wantReason: ReasonEmailOff, wantDKIM: "pass", wantKind: "access"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.opts...)
			from := tt.from
			if from == "" {
				from = "Jane Doe <Jane@Shop.Example>"
			}
			raw := h.dns.email(t, tt.signer, from, tt.subject, tt.body, "m-1@shop.example")
			var w *httptest.ResponseRecorder
			if tt.provider == "sendgrid" {
				w = h.sendgrid(raw)
			} else {
				w = h.postmark(raw, tt.noRaw)
			}
			require.Equal(t, http.StatusOK, w.Code, w.Body.String())
			a := decode[Answer](t, w)
			require.Equal(t, tt.wantOutcome, a.Outcome)
			require.True(t, a.Received)

			entries := h.trail.actions(ActionInbound)
			require.Len(t, entries, 1)
			e := entries[0]
			require.Equal(t, ActorCustomer, e.Actor)
			require.Equal(t, "email", e.Detail["channel"])
			require.Equal(t, tt.wantDKIM, e.Detail["dkim"])
			require.Equal(t, tt.wantKind, e.Detail["kind"])
			require.Equal(t, tt.wantOutcome, e.Detail["outcome"])
			for _, v := range e.Detail {
				require.NotContains(t, strings.ToLower(v), "jane")
				if tt.subject != "" {
					require.NotContains(t, v, tt.subject)
				}
			}

			if tt.wantOutcome == OutcomePending {
				require.Regexp(t, `^pr_[0-9a-f]{24}$`, a.RequestID)
				require.Equal(t, a.RequestID, e.Detail["request_id"])
				rec := h.record(a.RequestID)
				require.Equal(t, tt.wantReason, rec["reason"])
				require.Equal(t, tt.wantDKIM, rec["dkim"])
				require.Equal(t, tt.wantKind, rec["kind"])
				require.Equal(t, "pending", rec["status"])
			} else {
				require.Empty(t, a.RequestID)
				n, err := rdb.Exists(context.Background(), indexKey).Result()
				require.NoError(t, err)
				require.Zero(t, n, "nothing pending")
			}

			mails := h.mailer.sent()
			switch {
			case tt.wantDeleted:
				require.Equal(t, []call{{ActorCustomer, "192.0.2.1", jane}}, h.world.deletions)
				require.Len(t, mails, 1)
				m := mails[0]
				require.Equal(t, "inbound-receipt-dr_1", m.ID)
				require.Equal(t, jane, m.To)
				require.Contains(t, m.Text, "ord-1")
				require.Contains(t, m.Text, "ord-2")
				require.Contains(t, m.Text, "Mon, 02 Mar 2026 10:00:00 UTC")
				require.Contains(t, m.Text, "Nothing else about you is kept")
				require.NotContains(t, strings.ToLower(m.Text), "jane")
				require.NotContains(t, m.Text, "shop.example")
			case tt.wantAccess:
				require.Equal(t, []call{{ActorCustomer, "192.0.2.1", jane}}, h.world.reports)
				require.Len(t, mails, 1)
				m := mails[0]
				require.Equal(t, "inbound-access-ar_1", m.ID)
				require.Equal(t, jane, m.To)
				require.Contains(t, m.Text, "https://vault.shop.example/privacy/")
				require.NotContains(t, m.Text, "ord-1", "never the data by email")
				require.Empty(t, h.world.deletions)
			default:
				require.Empty(t, mails)
				require.Empty(t, h.world.deletions)
				require.Empty(t, h.world.reports)
			}
		})
	}
}

func TestInboundReplay(t *testing.T) {
	h := newHarness(t)
	raw := h.dns.email(t, "shop.example", jane, "Delete my data", "Please.", "m-replay@shop.example")

	first := h.postmark(raw, false)
	require.Equal(t, http.StatusOK, first.Code, first.Body.String())
	require.Equal(t, OutcomeDeleted, decode[Answer](t, first).Outcome)
	for _, w := range []*httptest.ResponseRecorder{h.postmark(raw, false), h.sendgrid(raw)} {
		require.Equal(t, http.StatusOK, w.Code, w.Body.String())
		require.Equal(t, OutcomeDuplicate, decode[Answer](t, w).Outcome)
	}
	require.Len(t, h.world.deletions, 1, "the deletion ran once")
	require.Len(t, h.mailer.sent(), 1, "one receipt")
	require.Len(t, h.trail.actions(ActionInbound), 1)

	// The same unsigned message waits once, not twice.
	unsigned := h.dns.email(t, "", jane, "Delete my data", "Please.", "m-replay-2@shop.example")
	require.Equal(t, OutcomePending, decode[Answer](t, h.postmark(unsigned, false)).Outcome)
	require.Equal(t, OutcomeDuplicate, decode[Answer](t, h.postmark(unsigned, false)).Outcome)
	require.EqualValues(t, 1, rdb.ZCard(context.Background(), indexKey).Val())

	// A message another delivery is handling right now: 409, retried later.
	busy := h.dns.email(t, "shop.example", jane, "Delete my data", "Please.", "m-busy@shop.example")
	m, err := inbound.ParsePostmark(postmarkBody(t, busy, false))
	require.NoError(t, err)
	require.NoError(t, rdb.Set(context.Background(), seenKey(replayDigest(m)), "processing", time.Minute).Err())
	require.Equal(t, http.StatusConflict, h.postmark(busy, false).Code)
}

func TestInboundDNSDown(t *testing.T) {
	h := newHarness(t)
	raw := h.dns.email(t, "shop.example", jane, "Delete my data", "Please.", "m-dns@shop.example")
	h.dns.setDown(true)
	w := h.postmark(raw, false)
	require.Equal(t, http.StatusServiceUnavailable, w.Code, w.Body.String())
	require.Equal(t, string(apperr.DKIMUnavailable), string(decode[web.ErrorBody](t, w).Error.Code))
	require.Empty(t, h.world.deletions)
	require.Empty(t, h.trail.entries)

	h.dns.setDown(false)
	w = h.postmark(raw, false)
	require.Equal(t, http.StatusOK, w.Code)
	require.Equal(t, OutcomeDeleted, decode[Answer](t, w).Outcome, "the provider's retry is handled afresh")
}

func TestInboundAuditFailure(t *testing.T) {
	h := newHarness(t)
	h.trail.fail = true
	raw := h.dns.email(t, "", jane, "Delete my data", "Please.", "m-audit@shop.example")
	require.Equal(t, http.StatusInternalServerError, h.postmark(raw, false).Code)
	keys, err := rdb.Keys(context.Background(), "*").Result()
	require.NoError(t, err)
	require.Empty(t, keys, "no pending request without its audit entry, and the message is not remembered")

	h.trail.fail = false
	require.Equal(t, OutcomePending, decode[Answer](t, h.postmark(raw, false)).Outcome)
}

func TestInboundAuth(t *testing.T) {
	raw := "From: jane@shop.example\r\nSubject: x\r\n\r\nhi"
	pm := postmarkBody(t, raw, false)
	tests := []struct {
		name   string
		secret string
		path   string
		body   []byte
		header http.Header
		max    int64
		want   int
	}{
		{name: "no credentials", secret: secret, path: "/v1/inbound/postmark", body: pm, header: http.Header{}, want: 401},
		{name: "wrong password", secret: secret, path: "/v1/inbound/postmark", body: pm, header: basic("postmark", "nope"), want: 401},
		{name: "secret as the user name", secret: secret, path: "/v1/inbound/postmark", body: pm, header: basic(secret, ""), want: 401},
		{name: "sendgrid wrong password", secret: secret, path: "/v1/inbound/sendgrid", body: pm, header: basic("x", "nope"), want: 401},
		{name: "any user name, right password", secret: secret, path: "/v1/inbound/postmark", body: pm, header: basic("anyone", secret), want: 200},
		{name: "no secret configured: postmark", path: "/v1/inbound/postmark", body: pm, header: basic("x", ""), want: 404},
		{name: "no secret configured: sendgrid", path: "/v1/inbound/sendgrid", body: pm, header: basic("x", secret), want: 404},
		{name: "not JSON", secret: secret, path: "/v1/inbound/postmark", body: []byte("From: x"), header: basic("x", secret), want: 400},
		{name: "no sender", secret: secret, path: "/v1/inbound/postmark", body: []byte(`{"Subject":"s"}`), header: basic("x", secret), want: 400},
		{name: "sendgrid not multipart", secret: secret, path: "/v1/inbound/sendgrid", body: pm, header: basic("x", secret), want: 400},
		{name: "postmark too large", secret: secret, path: "/v1/inbound/postmark", body: pm, header: basic("x", secret), max: 64, want: 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, func(c *Config, _ *Deps) { c.Secret, c.MaxBody = tt.secret, tt.max })
			w := h.do(http.MethodPost, tt.path, tt.body, tt.header)
			require.Equal(t, tt.want, w.Code, w.Body.String())
			if tt.want == 401 {
				require.Contains(t, w.Header().Get("WWW-Authenticate"), "Basic")
				require.Len(t, h.watch.bad, 1)
				require.Empty(t, h.trail.entries)
			}
		})
	}

	h := newHarness(t, func(c *Config, _ *Deps) { c.MaxBody = 512 })
	body, ctype := sendgridBody(t, strings.Repeat("x", 1024))
	header := basic("x", secret)
	header.Set("Content-Type", ctype)
	require.Equal(t, http.StatusRequestEntityTooLarge, h.do(http.MethodPost, "/v1/inbound/sendgrid", body, header).Code)
}

// pending makes a pending request and returns its id.
func (h *harness) pending(from, subject, body, msgID string) string {
	h.t.Helper()
	w := h.postmark(h.dns.email(h.t, "", from, subject, body, msgID), false)
	require.Equal(h.t, http.StatusOK, w.Code, w.Body.String())
	a := decode[Answer](h.t, w)
	require.Equal(h.t, OutcomePending, a.Outcome)
	return a.RequestID
}

func TestReview(t *testing.T) {
	h := newHarness(t)
	long := "Please delete all my data.\n" + strings.Repeat("ü", 600)
	del := h.pending("Jane <jane@shop.example>", "Delete my data", long, "r-1@shop.example")
	h.now = h.now.Add(time.Minute)
	cor := h.pending("max@other.example", "Wrong address", "My street is misspelt.", "r-2@shop.example")

	t.Run("status must be pending", func(t *testing.T) {
		for _, q := range []string{"", "?status=done"} {
			w := h.staff(http.MethodGet, "/v1/deletion-requests"+q, "support")
			require.Equal(t, http.StatusUnprocessableEntity, w.Code)
			require.Equal(t, []string{"status"}, decode[web.ErrorBody](t, w).Error.Fields)
		}
	})
	t.Run("fulfillment may not list", func(t *testing.T) {
		require.Equal(t, http.StatusForbidden, h.staff(http.MethodGet, "/v1/deletion-requests?status=pending", "fulfillment").Code)
		require.Equal(t, http.StatusUnauthorized, h.staff(http.MethodGet, "/v1/deletion-requests?status=pending", "").Code)
	})
	t.Run("support lists, masked, excerpts decrypted with its token", func(t *testing.T) {
		w := h.staff(http.MethodGet, "/v1/deletion-requests?status=pending", "support")
		require.Equal(t, http.StatusOK, w.Code, w.Body.String())
		list := decode[struct{ Requests []Pending }](t, w).Requests
		require.Len(t, list, 2)
		first, second := list[0], list[1]
		require.Equal(t, del, first.ID, "oldest first")
		require.Equal(t, "****@shop.example", first.Sender)
		require.Equal(t, "none", first.DKIM)
		require.EqualValues(t, "deletion", first.Kind)
		require.Equal(t, ReasonUnauthenticated, first.Reason)
		require.Equal(t, "postmark", first.Provider)
		require.Equal(t, "pending", first.Status)
		require.Equal(t, time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC), first.ReceivedAt)
		require.Equal(t, first.ReceivedAt.Add(retention), first.ExpiresAt)
		require.Equal(t, ExcerptChars, utf8.RuneCountInString(first.Excerpt))
		require.True(t, strings.HasPrefix(first.Excerpt, "Please delete all my data."))
		require.False(t, first.ExcerptWithheld)
		require.Equal(t, "****@other.example", second.Sender)
		require.EqualValues(t, "correction", second.Kind)
		require.Equal(t, "My street is misspelt.", strings.TrimSpace(second.Excerpt))
		require.NotContains(t, w.Body.String(), "jane")

		read := h.trail.actions(ActionExcerptsRead)
		require.Len(t, read, 1)
		require.Equal(t, "sam", read[0].Actor)
		require.Equal(t, del+","+cor, read[0].Detail["requests"])
	})
	t.Run("a token Vault refuses sees no excerpt", func(t *testing.T) {
		list, err := h.svc.List(context.Background(), web.Principal{Kind: web.KindStaff, Name: "ada", Role: "admin", Token: "tok-admin"})
		require.NoError(t, err)
		require.Len(t, list, 2)
		for _, p := range list {
			require.Empty(t, p.Excerpt)
			require.True(t, p.ExcerptWithheld)
		}
	})
	t.Run("a correction is not confirmed", func(t *testing.T) {
		w := h.staff(http.MethodPost, "/v1/deletion-requests/"+cor+"/confirm", "support")
		require.Equal(t, http.StatusUnprocessableEntity, w.Code)
		require.Contains(t, decode[web.ErrorBody](t, w).Error.Message, "correct address")
		require.Equal(t, "pending", h.record(cor)["status"])
	})
	t.Run("someone else's claim holds confirm off until its lease ends", func(t *testing.T) {
		require.NoError(t, h.svc.claim(context.Background(), del))
		require.Equal(t, http.StatusConflict, h.staff(http.MethodPost, "/v1/deletion-requests/"+del+"/confirm", "support").Code)
		h.now = h.now.Add(claimLease + time.Second)
	})
	t.Run("confirm runs the deletion and removes the request", func(t *testing.T) {
		w := h.staff(http.MethodPost, "/v1/deletion-requests/"+del+"/confirm", "support")
		require.Equal(t, http.StatusOK, w.Code, w.Body.String())
		o := decode[Outcome](t, w)
		require.Equal(t, del, o.ID)
		require.EqualValues(t, "deletion", o.Kind)
		require.Equal(t, OutcomeDeleted, o.Outcome)
		require.NotNil(t, o.Receipt)
		require.Equal(t, []string{"ord-1", "ord-2"}, o.Receipt.Orders)
		require.True(t, o.Mailed)
		require.Equal(t, []call{{"sam", "192.0.2.1", jane}}, h.world.deletions)
		mails := h.mailer.sent()
		require.Len(t, mails, 1)
		require.Equal(t, "inbound-receipt-"+o.Receipt.RequestID, mails[0].ID)
		require.Equal(t, jane, mails[0].To)

		require.Empty(t, h.record(del), "nothing kept after")
		require.ErrorIs(t, rdb.ZScore(context.Background(), indexKey, del).Err(), redis.Nil)
		confirmed := h.trail.actions(ActionConfirmed)
		require.Len(t, confirmed, 1)
		require.Equal(t, "sam", confirmed[0].Actor)
		require.Equal(t, del, confirmed[0].Detail["request_id"])
		require.Equal(t, o.Receipt.RequestID, confirmed[0].Detail["deletion_request"])

		require.Equal(t, http.StatusNotFound, h.staff(http.MethodPost, "/v1/deletion-requests/"+del+"/confirm", "support").Code)
	})
	t.Run("reject closes the correction", func(t *testing.T) {
		require.Equal(t, http.StatusForbidden, h.staff(http.MethodPost, "/v1/deletion-requests/"+cor+"/reject", "fulfillment").Code)
		w := h.staff(http.MethodPost, "/v1/deletion-requests/"+cor+"/reject", "admin")
		require.Equal(t, http.StatusOK, w.Code, w.Body.String())
		require.JSONEq(t, `{"id":"`+cor+`","status":"rejected"}`, w.Body.String())
		require.Empty(t, h.record(cor))
		rejected := h.trail.actions(ActionRejected)
		require.Len(t, rejected, 1)
		require.Equal(t, "correction", rejected[0].Detail["kind"])
		require.Len(t, h.world.deletions, 1, "reject runs nothing")
		require.Equal(t, http.StatusNotFound, h.staff(http.MethodPost, "/v1/deletion-requests/"+cor+"/reject", "admin").Code)
		require.Equal(t, http.StatusNotFound, h.staff(http.MethodPost, "/v1/deletion-requests/nope/reject", "admin").Code)
	})
	t.Run("the list is empty after", func(t *testing.T) {
		w := h.staff(http.MethodGet, "/v1/deletion-requests?status=pending", "support")
		require.JSONEq(t, `{"requests":[]}`, w.Body.String())
	})
}

func TestConfirmAccess(t *testing.T) {
	h := newHarness(t)
	id := h.pending(jane, "Auskunft", "Welche Daten haben Sie?", "a-1@shop.example")
	o, err := h.svc.ConfirmRequest(context.Background(), web.Principal{Kind: web.KindStaff, Name: "sam", Role: "support", Token: "tok-support"}, "198.51.100.7", id)
	require.NoError(t, err)
	require.Equal(t, Outcome{ID: id, Kind: "access", Outcome: OutcomeAccessSent, ReportID: "ar_1", Mailed: true}, o)
	require.Equal(t, []call{{"sam", "198.51.100.7", jane}}, h.world.reports)
	mails := h.mailer.sent()
	require.Len(t, mails, 1)
	require.Contains(t, mails[0].Text, "https://vault.shop.example/privacy/")
	require.Empty(t, h.record(id))
}

// TestRedisHoldsNoPII scans every key after requests of every kind: no
// address, subject or body in the clear, and every key expires within the
// retention.
func TestRedisHoldsNoPII(t *testing.T) {
	h := newHarness(t)
	const local, subjectWord, bodyWord = "zqcanary", "Xylophonic", "Quokkaberg"
	addr := local + "@shop.example"
	h.world.orders[addr] = []string{"ord-9"}
	for i, c := range []struct{ signer, subject string }{
		{"", "Delete " + subjectWord},
		{"attacker.example", "Delete " + subjectWord},
		{"shop.example", "Wrong address " + subjectWord},
		{"shop.example", "Copy of my data " + subjectWord},
		{"shop.example", "Delete " + subjectWord},
	} {
		raw := h.dns.email(t, c.signer, "Zq Canary <"+addr+">", c.subject, "Hello "+bodyWord+", Hauptstraße 1", fmt.Sprintf("n-%d@shop.example", i))
		require.Equal(t, http.StatusOK, h.postmark(raw, false).Code)
	}
	ctx := context.Background()
	keys, err := rdb.Keys(ctx, "*").Result()
	require.NoError(t, err)
	require.NotEmpty(t, keys)
	var all strings.Builder
	for _, k := range keys {
		require.True(t, strings.HasPrefix(k, "piivault:{inbound}:"), k)
		all.WriteString(k + "\n")
		ttl, err := rdb.PTTL(ctx, k).Result()
		require.NoError(t, err)
		require.Greater(t, ttl, time.Duration(0), "%s has no TTL", k)
		require.LessOrEqual(t, ttl, retention, "%s outlives the retention", k)
		switch typ := rdb.Type(ctx, k).Val(); typ {
		case "string":
			all.WriteString(rdb.Get(ctx, k).Val())
		case "hash":
			for f, v := range rdb.HGetAll(ctx, k).Val() {
				all.WriteString(f + "=" + v + "\n")
			}
		case "zset":
			all.WriteString(strings.Join(rdb.ZRange(ctx, k, 0, -1).Val(), "\n"))
		default:
			t.Fatalf("unexpected key type %s of %s", typ, k)
		}
	}
	dump := strings.ToLower(all.String())
	for _, pii := range []string{local, subjectWord, bodyWord, "hauptstraße", "zq canary"} {
		require.NotContains(t, dump, strings.ToLower(pii))
	}
	require.Contains(t, dump, "****@shop.example", "the masked sender is kept")
}

func TestPendingRedacted(t *testing.T) {
	p := Pending{ID: "pr_1", Sender: "****@shop.example", Kind: "deletion", Excerpt: "Jane Doe, Hauptstraße 1"}
	var logged strings.Builder
	slog.New(slog.NewTextHandler(&logged, nil)).Info("pending", "p", p)
	for _, out := range []string{fmt.Sprintf("%v", p), fmt.Sprintf("%+v", p), fmt.Sprintf("%#v", p), logged.String()} {
		require.NotContains(t, out, "Hauptstraße")
		require.Contains(t, out, "pr_1")
	}
}

// DKIM proves who wrote a message, not when or to whom: an old signed
// email replayed, one written to someone else, or an auto-reply waits for
// a person; a fresh one to the privacy address runs.
func TestOnlyAFreshSignedRequestToThePrivacyAddressRuns(t *testing.T) {
	withAddress := func(c *Config, _ *Deps) { c.Address = "privacy@shop.example" }
	tests := []struct {
		name   string
		now    time.Time
		edit   func(raw string) string // before signing
		opts   []option
		reason string // "" runs
	}{
		{name: "fresh", now: time.Date(2026, 3, 3, 10, 0, 0, 0, time.UTC)},
		{name: "fresh, to the privacy address", now: time.Date(2026, 3, 3, 10, 0, 0, 0, time.UTC), opts: []option{withAddress}},
		{name: "a week and a day old", now: time.Date(2026, 3, 10, 11, 0, 0, 0, time.UTC), reason: ReasonStale},
		{name: "dated two days ahead", now: time.Date(2026, 2, 28, 9, 0, 0, 0, time.UTC), reason: ReasonStale},
		{name: "written to someone else", now: time.Date(2026, 3, 3, 10, 0, 0, 0, time.UTC), opts: []option{withAddress},
			edit: func(raw string) string {
				return strings.Replace(raw, "To: privacy@shop.example", "To: friend@elsewhere.example", 1)
			}, reason: ReasonStale},
		{name: "an auto-reply", now: time.Date(2026, 3, 3, 10, 0, 0, 0, time.UTC),
			edit: func(raw string) string {
				return strings.Replace(raw, "MIME-Version: 1.0", "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0", 1)
			}, reason: ReasonAutomatic},
		{name: "bulk", now: time.Date(2026, 3, 3, 10, 0, 0, 0, time.UTC),
			edit: func(raw string) string {
				return strings.Replace(raw, "MIME-Version: 1.0", "Precedence: bulk\r\nMIME-Version: 1.0", 1)
			}, reason: ReasonAutomatic},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.opts...)
			h.now = tc.now
			raw := h.dns.email(t, "", jane, "Delete my data", "Please delete everything.", "fresh-"+tc.name+"@shop.example")
			if tc.edit != nil {
				raw = tc.edit(raw)
			}
			var signed bytes.Buffer
			require.NoError(t, dkim.Sign(&signed, strings.NewReader(raw), &dkim.SignOptions{Domain: "shop.example", Selector: "s1",
				Signer: h.dns.keys["shop.example"], HeaderKeys: []string{"From", "To", "Subject", "Date", "Message-ID", "Auto-Submitted", "Precedence"}}))
			w := h.postmark(signed.String(), false)
			require.Equal(t, http.StatusOK, w.Code, w.Body.String())
			a := decode[Answer](t, w)
			if tc.reason == "" {
				assert.Equal(t, OutcomeDeleted, a.Outcome)
				return
			}
			assert.Equal(t, OutcomePending, a.Outcome)
			assert.Equal(t, tc.reason, h.record(a.RequestID)["reason"])
		})
	}
}

// countingReveals is the intrusion monitor's reveal limit.
type countingReveals struct {
	mu       sync.Mutex
	reserved int
	limit    int
}

func (c *countingReveals) ReserveReveals(_ context.Context, _ string, n int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reserved+n > c.limit {
		return apperr.New(apperr.RateLimited, "reveal limit")
	}
	c.reserved += n
	return nil
}

func (c *countingReveals) ReleaseReveals(_ context.Context, _ string, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reserved -= n
}

type lockedDown bool

func (l *lockedDown) Check(context.Context) error {
	if *l {
		return apperr.New(apperr.LockedDown, "locked down")
	}
	return nil
}

// Reading an excerpt is a reveal: counted toward the limit, refused in a
// lockdown.
func TestExcerptsAreReveals(t *testing.T) {
	counter := &countingReveals{limit: 3}
	var locked lockedDown
	h := newHarness(t, func(_ *Config, d *Deps) { d.Reveals, d.Lockdown = counter, &locked })
	h.pending("jane@shop.example", "Delete my data", "one", "x-1@shop.example")
	h.pending("max@other.example", "Delete my data", "two", "x-2@shop.example")
	p := web.Principal{Kind: web.KindStaff, Name: "sam", Role: "support", Token: web.Secret("tok-support")}

	list, err := h.svc.List(context.Background(), p)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"one", "two"}, []string{list[0].Excerpt, list[1].Excerpt})
	assert.Equal(t, 2, counter.reserved, "two excerpts read, two reveals")
	_, err = h.svc.List(context.Background(), p)
	assert.Equal(t, apperr.RateLimited, apperr.CodeOf(err), "a list that would cross the limit is refused whole")

	counter.reserved = 0
	locked = true
	list, err = h.svc.List(context.Background(), p)
	require.NoError(t, err)
	for _, item := range list {
		assert.Empty(t, item.Excerpt, "no excerpt in a lockdown")
		assert.True(t, item.ExcerptWithheld)
	}
	assert.Equal(t, 0, counter.reserved)
}
