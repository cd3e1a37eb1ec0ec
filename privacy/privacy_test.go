package privacy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"piivault/console"
	"piivault/internal/apperr"
	"piivault/internal/devstack"
	"piivault/mail"
	"piivault/orders"
)

var testRedis *redis.Client

func TestMain(m *testing.M) {
	gin.SetMode(gin.TestMode)
	stack, err := devstack.StartRedis()
	if err != nil {
		fmt.Fprintln(os.Stderr, "privacy tests need redis-server:", err)
		os.Exit(1)
	}
	testRedis = redis.NewClient(&redis.Options{Addr: stack.RedisAddr})
	code := m.Run()
	testRedis.Close()
	stack.Stop()
	os.Exit(code)
}

const (
	known   = "Jane.Doe@Example.com"
	unknown = "nobody@example.org"
)

// clock is the handler's Now: real time moved by tests.
type clock struct{ off atomic.Int64 }

func (c *clock) now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *clock) advance(d time.Duration) { c.off.Add(int64(d)) }

type env struct {
	t      *testing.T
	srv    *httptest.Server
	h      *Handler
	store  *fakeStore
	del    *fakeDeleter
	mailer *fakeMailer
	ipl    *fakeLimiter
	eml    *fakeLimiter
	clock  *clock
	logs   *lockedBuffer
}

type option func(*Deps, *envConfig)

type envConfig struct{ tls bool }

func withTLS() option { return func(d *Deps, c *envConfig) { c.tls, d.HTTPS = true, true } }
func noMail() option  { return func(d *Deps, _ *envConfig) { d.Mail = nil } }

// newEnv serves a Handler with fakes around it on an empty Redis; the
// known customer holds order ord-1.
func newEnv(t *testing.T, opts ...option) *env {
	t.Helper()
	require.NoError(t, testRedis.FlushAll(context.Background()).Err())
	e := &env{t: t, store: newFakeStore(), mailer: &fakeMailer{}, ipl: newLimiter(1000), eml: newLimiter(1000),
		clock: &clock{}, logs: &lockedBuffer{}}
	e.del = &fakeDeleter{store: e.store, now: e.clock.now}
	e.store.add(known, "ord-1", e.clock.now())
	d := Deps{
		Log:        slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Key:        []byte("0123456789abcdef0123456789abcdef"),
		Redis:      testRedis,
		Store:      e.store,
		Deleter:    e.del,
		Mail:       e.mailer,
		IPLimit:    e.ipl,
		EmailLimit: e.eml,
		Now:        e.clock.now,
		Retention:  720 * time.Hour,
	}
	var cfg envConfig
	for _, o := range opts {
		o(&d, &cfg)
	}
	h, err := New(d)
	require.NoError(t, err)
	e.h = h
	r := gin.New()
	h.Register(r)
	if cfg.tls {
		e.srv = httptest.NewTLSServer(r)
	} else {
		e.srv = httptest.NewServer(r)
	}
	t.Cleanup(e.srv.Close)
	return e
}

// browser is one customer's browser: its own cookie jar, the CSRF token of
// the last form it saw, every Set-Cookie it received (redirects included).
type browser struct {
	e       *env
	c       *http.Client
	csrf    string
	origin  string
	mu      sync.Mutex
	cookies []*http.Cookie
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	b := &browser{e: e, origin: e.srv.URL}
	base := e.srv.Client().Transport
	b.c = &http.Client{Jar: jar, Transport: recordCookies{base: base, b: b}}
	return b
}

type recordCookies struct {
	base http.RoundTripper
	b    *browser
}

func (r recordCookies) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.base.RoundTrip(req)
	if err == nil {
		r.b.mu.Lock()
		r.b.cookies = append(r.b.cookies, resp.Cookies()...)
		r.b.mu.Unlock()
	}
	return resp, err
}

// clone is the same browser's cookies in a second one (a copy kept to
// replay a form after its use).
func (b *browser) clone() *browser {
	n := b.e.browser()
	u, _ := url.Parse(b.e.srv.URL + "/privacy/")
	n.c.Jar.SetCookies(u, b.c.Jar.Cookies(u))
	n.csrf = b.csrf
	return n
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]*)"`)

type page struct {
	Status int
	Body   string
	Path   string // after redirects
	Header http.Header
}

func (b *browser) do(req *http.Request) page {
	b.e.t.Helper()
	resp, err := b.c.Do(req)
	require.NoError(b.e.t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(b.e.t, err)
	if m := csrfRE.FindStringSubmatch(string(body)); m != nil {
		b.csrf = m[1]
	}
	return page{Status: resp.StatusCode, Body: string(body), Path: resp.Request.URL.RequestURI(), Header: resp.Header}
}

func (b *browser) get(path string) page {
	req, err := http.NewRequest(http.MethodGet, b.e.srv.URL+path, nil)
	require.NoError(b.e.t, err)
	return b.do(req)
}

// post submits a form from this page's origin with the last CSRF token.
func (b *browser) post(path string, form url.Values) page {
	return b.postWith(path, form, map[string]string{"Origin": b.origin})
}

func (b *browser) postWith(path string, form url.Values, headers map[string]string) page {
	if form == nil {
		form = url.Values{}
	}
	if _, ok := form["csrf"]; !ok {
		form.Set("csrf", b.csrf)
	}
	req, err := http.NewRequest(http.MethodPost, b.e.srv.URL+path, strings.NewReader(form.Encode()))
	require.NoError(b.e.t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return b.do(req)
}

// ask opens the start page and asks for a code for email.
func (b *browser) ask(email string) page {
	b.e.t.Helper()
	require.Equal(b.e.t, http.StatusOK, b.get("/privacy/").Status)
	return b.post("/privacy/", url.Values{"email": {email}})
}

var (
	codeRE = regexp.MustCompile(`code: (\d{6})`)
	linkRE = regexp.MustCompile(`(https?://\S+)/privacy/link\?t=([A-Za-z0-9_-]+)`)
)

// mails are the messages queued so far, once the code mails queued after
// their answers are in.
func (e *env) mails() []mail.Message {
	e.h.bg.Wait()
	return e.mailer.messages()
}

// lastMail is the newest message and its code and link token ("" if none).
func (e *env) lastMail() (code, token, link string) {
	e.t.Helper()
	msgs := e.mails()
	require.NotEmpty(e.t, msgs, "no mail sent")
	text := msgs[len(msgs)-1].Text
	if m := codeRE.FindStringSubmatch(text); m != nil {
		code = m[1]
	}
	if m := linkRE.FindStringSubmatch(text); m != nil {
		link, token = m[0], m[2]
	}
	return code, token, link
}

// signIn asks for a code for email and enters it.
func (b *browser) signIn(email string) page {
	b.e.t.Helper()
	require.Equal(b.e.t, http.StatusOK, b.ask(email).Status)
	code, _, _ := b.e.lastMail()
	p := b.post("/privacy/code", url.Values{"code": {code}})
	require.Equal(b.e.t, "/privacy/orders", p.Path, p.Body)
	return p
}

func stripCSRF(s string) string { return csrfRE.ReplaceAllString(s, `name="csrf" value=""`) }

func TestSameAnswerWhetherTheEmailIsKnown(t *testing.T) {
	e := newEnv(t)
	a, b := e.browser(), e.browser()
	pu := a.ask(unknown)
	require.Empty(t, e.mails(), "no mail for an unknown email")
	pk := b.ask(known)
	require.Equal(t, pu.Status, pk.Status)
	require.Equal(t, http.StatusOK, pk.Status)
	assert.Equal(t, stripCSRF(pu.Body), stripCSRF(pk.Body), "the page tells nothing about the email")
	assert.Contains(t, pk.Body, "If we hold orders for this address, we have sent a code to it")
	for _, h := range []string{"Content-Type", "Content-Security-Policy", "Cache-Control"} {
		assert.Equal(t, pu.Header.Values(h), pk.Header.Values(h), h)
	}
	cookieNames := func(hs []string) []string {
		var out []string
		for _, h := range hs {
			out = append(out, strings.SplitN(h, "=", 2)[0])
		}
		return out
	}
	assert.Equal(t, cookieNames(pu.Header.Values("Set-Cookie")), cookieNames(pk.Header.Values("Set-Cookie")))

	msgs := e.mails()
	require.Len(t, msgs, 1, "one code mailed, to the known email only")
	assert.Equal(t, known, msgs[0].To)
	assert.True(t, strings.HasPrefix(msgs[0].ID, "privacy-code-"))
	assert.Regexp(t, `code: \d{6}`, msgs[0].Text)
	assert.NotContains(t, msgs[0].Text, "ord-1", "the code mail names no order")

	// A wrong code reads the same for both.
	wu := a.post("/privacy/code", url.Values{"code": {"000000"}})
	wk := b.post("/privacy/code", url.Values{"code": {"000000"}})
	require.Equal(t, http.StatusUnprocessableEntity, wu.Status)
	require.Equal(t, wu.Status, wk.Status)
	assert.Equal(t, stripCSRF(wu.Body), stripCSRF(wk.Body))
}

func TestCodeSignsInOnce(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	require.Equal(t, http.StatusOK, b.ask(known).Status)
	replay := b.clone() // the same form, kept to try the code again
	code, _, _ := e.lastMail()
	p := b.post("/privacy/code", url.Values{"code": {code}})
	require.Equal(t, "/privacy/orders", p.Path)
	require.Equal(t, http.StatusOK, p.Status)
	assert.Contains(t, p.Body, "ord-1")

	again := replay.post("/privacy/code", url.Values{"code": {code}})
	assert.Equal(t, http.StatusUnprocessableEntity, again.Status)
	assert.Contains(t, again.Body, "That code did not work")
	assert.Equal(t, http.StatusOK, b.get("/privacy/orders").Status, "the first sign-in still holds")
}

func TestWrongCodesLockTheCode(t *testing.T) {
	for _, tc := range []struct {
		name  string
		wrong int
		works bool
	}{
		{"4 wrong, then right", 4, true},
		{"5 wrong, then right: locked", 5, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			b := e.browser()
			require.Equal(t, http.StatusOK, b.ask(known).Status)
			code, token, _ := e.lastMail()
			wrong := "000000"
			if code == wrong {
				wrong = "111111"
			}
			for range tc.wrong {
				require.Equal(t, http.StatusUnprocessableEntity, b.post("/privacy/code", url.Values{"code": {wrong}}).Status)
			}
			p := b.post("/privacy/code", url.Values{"code": {code}})
			if tc.works {
				assert.Equal(t, "/privacy/orders", p.Path)
				return
			}
			assert.Equal(t, http.StatusUnprocessableEntity, p.Status)
			// The lock ends the link too.
			phone := e.browser()
			phone.get("/privacy/link?t=" + token)
			assert.Equal(t, http.StatusGone, phone.post("/privacy/link", url.Values{"t": {token}}).Status)
		})
	}
}

func TestLinkSignsInOnce(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	require.Equal(t, http.StatusOK, b.ask(known).Status)
	_, token, link := e.lastMail()
	require.NotEmpty(t, token, "the mail carries a link on a loopback host")
	require.True(t, strings.HasPrefix(link, e.srv.URL+"/privacy/link?t="), link)

	phone := e.browser()
	for range 2 { // opening the link (a mail scanner, a second look) uses nothing
		p := phone.get("/privacy/link?t=" + token)
		require.Equal(t, http.StatusOK, p.Status)
		require.Contains(t, p.Body, "Continue")
	}
	p := phone.post("/privacy/link", url.Values{"t": {token}})
	require.Equal(t, "/privacy/orders", p.Path)
	assert.Contains(t, p.Body, "ord-1")

	other := e.browser()
	other.get("/privacy/link?t=" + token)
	p = other.post("/privacy/link", url.Values{"t": {token}})
	assert.Equal(t, http.StatusGone, p.Status)
	assert.Contains(t, p.Body, "expired or was already used")

	code, _, _ := e.lastMail()
	assert.Equal(t, http.StatusUnprocessableEntity, b.post("/privacy/code", url.Values{"code": {code}}).Status,
		"the link used the sign-in up: its code no longer works")
}

func TestANewCodeEndsTheOldOne(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.ask(known)
	oldCode, oldToken, _ := e.lastMail()
	b.ask(known)
	newCode, _, _ := e.lastMail()
	require.Len(t, e.mails(), 2)
	phone := e.browser()
	phone.get("/privacy/link?t=" + oldToken)
	assert.Equal(t, http.StatusGone, phone.post("/privacy/link", url.Values{"t": {oldToken}}).Status)
	if oldCode != newCode {
		assert.Equal(t, http.StatusUnprocessableEntity, b.post("/privacy/code", url.Values{"code": {oldCode}}).Status)
	}
	assert.Equal(t, "/privacy/orders", b.post("/privacy/code", url.Values{"code": {newCode}}).Path)
}

func TestCodeAndLinkExpireAfterTenMinutes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		after time.Duration
		ok    bool
	}{
		{"code within 10 minutes", 9*time.Minute + 50*time.Second, true},
		{"code after 10 minutes", 10*time.Minute + time.Second, false},
		{"link after 10 minutes", 10*time.Minute + time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			b := e.browser()
			b.ask(known)
			code, token, _ := e.lastMail()
			e.clock.advance(tc.after)
			if strings.HasPrefix(tc.name, "link") {
				phone := e.browser()
				phone.get("/privacy/link?t=" + token)
				assert.Equal(t, http.StatusGone, phone.post("/privacy/link", url.Values{"t": {token}}).Status)
				return
			}
			p := b.post("/privacy/code", url.Values{"code": {code}})
			if tc.ok {
				assert.Equal(t, "/privacy/orders", p.Path)
			} else {
				assert.Equal(t, http.StatusUnprocessableEntity, p.Status)
			}
		})
	}
}

func TestRateLimits(t *testing.T) {
	t.Run("per IP, every POST", func(t *testing.T) {
		e := newEnv(t)
		e.ipl.limit = 2
		b := e.browser()
		b.ask(unknown)
		b.post("/privacy/code", url.Values{"code": {"123456"}})
		p := b.post("/privacy/", url.Values{"email": {known}})
		assert.Equal(t, http.StatusTooManyRequests, p.Status)
		assert.Contains(t, p.Body, "Please wait a moment")
		assert.Equal(t, "42", p.Header.Get("Retry-After"))
		assert.Empty(t, e.mails())
		assert.Equal(t, []string{"127.0.0.1", "127.0.0.1", "127.0.0.1"}, e.ipl.seen())
	})
	t.Run("per email, requests and attempts, by HMAC", func(t *testing.T) {
		e := newEnv(t)
		e.eml.limit = 2
		b := e.browser()
		b.ask(known)
		code, _, _ := e.lastMail()
		b.post("/privacy/code", url.Values{"code": {"999999"}})
		p := b.post("/privacy/code", url.Values{"code": {code}})
		assert.Equal(t, http.StatusTooManyRequests, p.Status)
		// Another spelling of the same address shares its limit.
		p = e.browser().ask(strings.ToLower(known))
		assert.Equal(t, http.StatusTooManyRequests, p.Status)
		whos := e.eml.seen()
		require.Len(t, whos, 4)
		for _, w := range whos {
			assert.Regexp(t, `^[0-9a-f]{64}$`, w, "the limit names an email by its HMAC")
			assert.Equal(t, whos[0], w)
		}
	})
}

func TestOrdersPage(t *testing.T) {
	e := newEnv(t)
	now := e.clock.now()
	e.store.add(known, "ord-shipped", now)
	e.store.add(known, "ord-deleted", now)
	e.store.add(known, "ord-ended", now)
	e.store.add("someone@else.example", "ord-theirs", now)
	shipped, deleted := orders.ReasonShipped, orders.ReasonCustomerRequest
	at := now.Add(-2 * time.Hour)
	e.store.set("ord-shipped", func(r *orders.Reference) { r.Status, r.PurgedAt, r.PurgeReason = orders.StatusShipped, &at, &shipped })
	e.store.set("ord-deleted", func(r *orders.Reference) { r.Status, r.PurgedAt, r.PurgeReason = orders.StatusPurged, &at, &deleted })
	e.store.mu.Lock()
	delete(e.store.refs, "ord-ended") // in the history, its reference gone: skipped
	e.store.reveals["ord-1"] = []orders.Revealed{
		{Time: now.Add(-3 * time.Hour), Role: "fulfillment", Reason: "label", DisclosedTo: "easypost"},
		{Time: now.Add(-time.Hour), Role: "support", Reason: "delivery_issue"},
	}
	e.store.reveals["ord-shipped"] = []orders.Revealed{{Time: now.Add(-5 * time.Hour), Role: "admin", Reason: orders.ReasonAccessRequest}}
	e.store.mu.Unlock()

	b := e.browser()
	p := b.signIn(known)
	require.Equal(t, http.StatusOK, p.Status)
	for _, want := range []string{
		"ord-1", "ord-shipped", "ord-deleted",
		"held", "shipped", "deleted",
		"Destroyed when the parcel ships, at the latest on " + now.Add(29*24*time.Hour).UTC().Format("2 January 2006"),
		"because your parcel shipped", "because you asked us to delete it",
		"fulfillment", "to print the shipping label", "sent to the carrier for the label",
		"support", "to sort out a delivery problem",
		"admin", "to send you a copy of your data",
		`action="/privacy/orders/ord-1/delete"`, `href="/privacy/orders/ord-1/correct"`,
	} {
		assert.Contains(t, p.Body, want)
	}
	for _, not := range []string{"ord-theirs", "ord-ended", "easypost", "@", "pay_ord"} {
		assert.NotContains(t, p.Body, not)
	}
	assert.NotContains(t, p.Body, "/privacy/orders/ord-shipped/delete", "only held orders can be deleted")
}

func TestDelete(t *testing.T) {
	e := newEnv(t)
	e.store.add("someone@else.example", "ord-theirs", e.clock.now())
	e.store.add(known, "ord-2", e.clock.now())
	b := e.browser()
	b.signIn(known)
	yes := url.Values{"confirm": {"yes"}}

	for _, tc := range []struct {
		name, id string
		form     url.Values
		headers  map[string]string
		status   int
	}{
		{"someone else's order", "ord-theirs", yes, nil, http.StatusNotFound},
		{"no such order", "ord-none", yes, nil, http.StatusNotFound},
		{"not confirmed", "ord-1", url.Values{}, nil, http.StatusUnprocessableEntity},
		{"from another site", "ord-1", yes, map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
		{"without the token", "ord-1", url.Values{"confirm": {"yes"}, "csrf": {""}}, nil, http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := map[string]string{"Origin": b.origin}
			for k, v := range tc.headers {
				h[k] = v
			}
			form := url.Values{}
			for k, v := range tc.form {
				form[k] = v
			}
			p := b.postWith("/privacy/orders/"+tc.id+"/delete", form, h)
			assert.Equal(t, tc.status, p.Status)
			assert.Empty(t, e.del.called())
		})
	}

	b.get("/privacy/orders")
	p := b.post("/privacy/orders/ord-1/delete", url.Values{"confirm": {"yes"}})
	require.Equal(t, http.StatusOK, p.Status, p.Body)
	assert.Contains(t, p.Body, "ord-1")
	assert.Contains(t, p.Body, "dr_01")
	calls := e.del.called()
	require.Len(t, calls, 1)
	assert.Equal(t, deleteCall{Actor: "customer:privacy", IP: "127.0.0.1", Reason: orders.ReasonCustomerRequest, IDs: []string{"ord-1"}}, calls[0])

	msgs := e.mails()
	require.Len(t, msgs, 2) // the code, the receipt
	r := msgs[1]
	assert.True(t, strings.HasPrefix(r.ID, "privacy-receipt-"), r.ID)
	assert.NotContains(t, r.ID, "dr_01", "named by the orders deleted: a double submit mails one receipt")
	assert.Equal(t, known, r.To)
	assert.Contains(t, r.Text, "Order ord-1")
	assert.Contains(t, r.Text, "We keep nothing else")
	assert.NotContains(t, r.Text, "ord-2")
	assert.NotContains(t, r.Text, "@")

	again := b.post("/privacy/orders/ord-1/delete", url.Values{"confirm": {"yes"}})
	assert.Equal(t, http.StatusGone, again.Status, "a repeat finds it deleted")
	assert.Len(t, e.del.called(), 1)
	assert.Len(t, e.mails(), 2, "no second receipt")

	list := b.get("/privacy/orders")
	assert.Contains(t, list.Body, "because you asked us to delete it")
}

func TestCorrect(t *testing.T) {
	e := newEnv(t)
	e.store.add(known, "ord-2", e.clock.now())
	e.store.add("someone@else.example", "ord-theirs", e.clock.now())
	b := e.browser()
	b.signIn(known)

	form := b.get("/privacy/orders/ord-1/correct")
	require.Equal(t, http.StatusOK, form.Status)
	for _, f := range []string{"name", "email", "phone", "line1", "line2", "city", "state", "postal_code", "country"} {
		assert.Regexp(t, `<label for="f-`+f+`">`, form.Body, "every field has a label")
		assert.Regexp(t, `name="`+f+`"[^>]* value=""`, form.Body, "nothing is filled in")
	}
	assert.Contains(t, form.Body, `type="email"`)

	good := url.Values{"name": {"Jane Doe"}, "email": {known}, "phone": {"+44 20 7946 0000"}, "line1": {"1 New Street"},
		"city": {"London"}, "postal_code": {"N1 9GU"}, "country": {"gb"}}

	t.Run("invalid fields are named and kept", func(t *testing.T) {
		bad := url.Values{"name": {"Jane Doe"}, "email": {known}, "line1": {"1 New Street"}, "city": {""}, "country": {"XX"}}
		p := b.post("/privacy/orders/ord-1/correct", bad)
		assert.Equal(t, http.StatusUnprocessableEntity, p.Status)
		assert.Contains(t, p.Body, "Please check: Town or city; Country")
		assert.Contains(t, p.Body, `value="1 New Street"`)
		assert.Empty(t, e.store.calls())
	})
	t.Run("someone else's order", func(t *testing.T) {
		assert.Equal(t, http.StatusNotFound, b.post("/privacy/orders/ord-theirs/correct", good).Status)
		assert.Equal(t, http.StatusNotFound, b.get("/privacy/orders/ord-theirs/correct").Status)
	})
	t.Run("label bought", func(t *testing.T) {
		e.store.mu.Lock()
		e.store.rectifyErr = apperr.New(apperr.LabelBought, "a postage label was bought")
		e.store.mu.Unlock()
		defer func() { e.store.mu.Lock(); e.store.rectifyErr = nil; e.store.mu.Unlock() }()
		p := b.post("/privacy/orders/ord-1/correct", good)
		assert.Equal(t, http.StatusConflict, p.Status)
		assert.Contains(t, p.Body, "can no longer be corrected")
	})
	t.Run("corrected through the audited write", func(t *testing.T) {
		b.get("/privacy/orders/ord-1/correct")
		p := b.post("/privacy/orders/ord-1/correct", good)
		require.Equal(t, http.StatusOK, p.Status, p.Body)
		assert.Contains(t, p.Body, "is corrected")
		calls := e.store.calls()
		require.Len(t, calls, 1)
		c := calls[0]
		assert.Equal(t, "ord-1", c.ID)
		assert.Equal(t, "customer:privacy", c.Entry.Actor)
		assert.Equal(t, "127.0.0.1", c.Entry.IP)
		assert.Equal(t, map[string]string{"channel": "privacy"}, c.Entry.Detail)
		assert.NotContains(t, fmt.Sprintf("%s %s %v", c.Entry.Actor, c.Entry.IP, c.Entry.Detail), "@", "no email in the audit entry")
		assert.Equal(t, "GB", c.Ship.Address.Country)
		assert.Equal(t, "London", c.Ship.Address.City)
	})
	t.Run("a new email: the session stays with the proven one", func(t *testing.T) {
		moved := url.Values{}
		for k, v := range good {
			moved[k] = v
		}
		moved.Set("email", "jane.new@example.net")
		p := b.post("/privacy/orders/ord-2/correct", moved)
		require.Equal(t, http.StatusOK, p.Status)
		assert.Contains(t, p.Body, "no longer appears here")
		list := b.get("/privacy/orders")
		assert.Contains(t, list.Body, "ord-1")
		assert.NotContains(t, list.Body, "ord-2")
	})
	t.Run("shipped: gone", func(t *testing.T) {
		e.store.set("ord-1", func(r *orders.Reference) { r.Status = orders.StatusShipped })
		assert.Equal(t, http.StatusGone, b.post("/privacy/orders/ord-1/correct", good).Status)
		assert.Equal(t, http.StatusGone, b.get("/privacy/orders/ord-1/correct").Status)
	})
}

func TestSessionLastsFifteenMinutes(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signIn(known)
	e.clock.advance(14 * time.Minute)
	require.Equal(t, "/privacy/orders", b.get("/privacy/orders").Path)
	e.clock.advance(time.Minute + time.Second)
	p := b.get("/privacy/orders")
	assert.Equal(t, "/privacy/?ended=1", p.Path)
	assert.Contains(t, p.Body, "Your session has ended")
	assert.Equal(t, http.StatusOK, p.Status)

	// Signing out ends it at once.
	b.signIn(known)
	require.Equal(t, "/privacy/?out=1", b.post("/privacy/logout", nil).Path)
	assert.Equal(t, "/privacy/?ended=1", b.get("/privacy/orders").Path)
}

func TestNoPlaintextInRedis(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.ask(known)
	code, token, _ := e.lastMail()
	b.post("/privacy/code", url.Values{"code": {"000000"}}) // a try counted
	e.browser().ask(unknown)

	ctx := context.Background()
	keys, err := testRedis.Keys(ctx, "*").Result()
	require.NoError(t, err)
	require.NotEmpty(t, keys)
	var all strings.Builder
	for _, k := range keys {
		assert.True(t, strings.HasPrefix(k, "piivault:{privacy}:"), k)
		ttl, err := testRedis.PTTL(ctx, k).Result()
		require.NoError(t, err)
		assert.Greater(t, ttl, time.Duration(0), "every key has a TTL: %s", k)
		assert.LessOrEqual(t, ttl, 10*time.Minute)
		all.WriteString(k + "\n")
		typ, err := testRedis.Type(ctx, k).Result()
		require.NoError(t, err)
		require.Equal(t, "hash", typ)
		for f, v := range testRedis.HGetAll(ctx, k).Val() {
			all.WriteString(f + "=" + v + "\n")
		}
	}
	dump := all.String()
	for _, secret := range []string{known, strings.ToLower(known), orders.NormalizeEmail(known), unknown, code, token} {
		assert.NotContains(t, dump, secret)
	}
}

func TestCookies(t *testing.T) {
	e := newEnv(t, withTLS())
	b := e.browser()
	b.signIn(known)
	byName := map[string]*http.Cookie{}
	b.mu.Lock()
	for _, c := range b.cookies {
		if c.MaxAge >= 0 {
			byName[c.Name] = c
		}
	}
	b.mu.Unlock()
	require.Contains(t, byName, "piivault_privacy")
	require.Contains(t, byName, "piivault_privacy_form")
	for name, c := range byName {
		assert.True(t, c.HttpOnly, name)
		assert.True(t, c.Secure, name)
		assert.Equal(t, http.SameSiteStrictMode, c.SameSite, name)
		assert.Equal(t, "/privacy/", c.Path, name)
	}
	assert.Equal(t, 15*60, byName["piivault_privacy"].MaxAge)

	plain := newEnv(t)
	pb := plain.browser()
	pb.get("/privacy/")
	pb.mu.Lock()
	defer pb.mu.Unlock()
	require.NotEmpty(t, pb.cookies)
	assert.False(t, pb.cookies[0].Secure, "not Secure without HTTPS")
}

func TestHeadersOnEveryAnswer(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	for _, path := range []string{"/privacy/", "/privacy/static/privacy.css", "/privacy/code", "/privacy/orders", "/privacy/link?t=x"} {
		p := b.get(path)
		assert.Equal(t, console.CSP, p.Header.Get("Content-Security-Policy"), path)
		assert.Equal(t, "no-store", p.Header.Get("Cache-Control"), path)
		assert.Equal(t, "DENY", p.Header.Get("X-Frame-Options"), path)
		assert.Equal(t, "no-referrer", p.Header.Get("Referrer-Policy"), path)
		assert.Equal(t, "nosniff", p.Header.Get("X-Content-Type-Options"), path)
	}
	start := b.get("/privacy/")
	assert.Contains(t, start.Body, `type="email"`)
	assert.NotContains(t, start.Body, "<script")
	code := b.ask(known)
	assert.Contains(t, code.Body, `autocomplete="one-time-code"`)
	assert.NotContains(t, b.get("/privacy/static/").Body, "privacy.css", "no directory listing")
}

func TestOriginAndToken(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name    string
		headers map[string]string
		noToken bool
		status  int
	}{
		{"same origin", map[string]string{"Origin": ""}, false, http.StatusOK},
		{"Origin null (no-referrer), Sec-Fetch-Site same-origin", map[string]string{"Origin": "null", "Sec-Fetch-Site": "same-origin"}, false, http.StatusOK},
		{"Origin null, cross-site", map[string]string{"Origin": "null", "Sec-Fetch-Site": "cross-site"}, false, http.StatusForbidden},
		{"another origin", map[string]string{"Origin": "https://evil.example"}, false, http.StatusForbidden},
		{"no origin at all", map[string]string{}, false, http.StatusForbidden},
		{"no token", map[string]string{"Origin": ""}, true, http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := e.browser()
			b.get("/privacy/")
			h := map[string]string{}
			for k, v := range tc.headers {
				if k == "Origin" && v == "" {
					v = b.origin
				}
				h[k] = v
			}
			form := url.Values{"email": {unknown}}
			if tc.noToken {
				form.Set("csrf", "")
			}
			p := b.postWith("/privacy/", form, h)
			assert.Equal(t, tc.status, p.Status)
		})
	}
}

func TestEmailedLinkBase(t *testing.T) {
	for _, tc := range []struct {
		name, public, host, want string
	}{
		{"public URL", "https://vault.shop.example", "", "https://vault.shop.example/privacy/link?t="},
		{"loopback host in development", "", "", "http://127.0.0.1"},
		{"another host without a public URL: code only", "", "shop.example", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(d *Deps, _ *envConfig) { d.PublicURL = tc.public })
			b := e.browser()
			b.get("/privacy/")
			origin := e.srv.URL
			if tc.public != "" {
				origin = tc.public
			}
			req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/privacy/",
				strings.NewReader(url.Values{"email": {known}, "csrf": {b.csrf}}.Encode()))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tc.host != "" {
				req.Host = tc.host
				origin = "http://" + tc.host
				// The client keys its jar by the Host: hand the cookie over.
				u, _ := url.Parse(e.srv.URL + "/privacy/")
				for _, c := range b.c.Jar.Cookies(u) {
					req.AddCookie(c)
				}
			}
			req.Header.Set("Origin", origin)
			pg := b.do(req)
			require.Equal(t, http.StatusOK, pg.Status, pg.Body)
			code, token, link := e.lastMail()
			assert.NotEmpty(t, code)
			if tc.want == "" {
				assert.Empty(t, token)
				assert.NotContains(t, e.mails()[0].Text, "http")
				return
			}
			assert.True(t, strings.HasPrefix(link, tc.want), link)
		})
	}
}

func TestMailOff(t *testing.T) {
	e := newEnv(t, noMail())
	b := e.browser()
	p := b.get("/privacy/")
	require.Equal(t, http.StatusOK, p.Status)
	assert.Contains(t, p.Body, "please write to the shop")
	assert.NotContains(t, p.Body, `action="/privacy/"`)
	for _, path := range []string{"/privacy/", "/privacy/code", "/privacy/link"} {
		p := b.post(path, url.Values{"email": {known}, "code": {"123456"}, "t": {"x"}})
		assert.Equal(t, http.StatusNotFound, p.Status, path)
		assert.Contains(t, p.Body, "write to the shop")
	}
	assert.Equal(t, http.StatusNotFound, b.get("/privacy/link?t=abc").Status)
	keys, err := testRedis.Keys(context.Background(), "*").Result()
	require.NoError(t, err)
	assert.Empty(t, keys)
}

func TestLogsHoldNoPII(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signIn(known)
	code, token, _ := e.lastMail()
	b.post("/privacy/orders/ord-1/delete", url.Values{"confirm": {"yes"}})
	e.mailer.mu.Lock()
	e.mailer.err = errMailDown
	e.mailer.mu.Unlock()
	e.browser().ask(known) // the mail fails: logged by message id
	e.h.bg.Wait()
	logs := e.logs.String()
	assert.Contains(t, logs, "privacy sign-in mail not queued")
	for _, secret := range []string{known, strings.ToLower(known), code, token} {
		assert.NotContains(t, logs, secret)
	}
}

func TestNewRefusesBadDeps(t *testing.T) {
	base := Deps{Key: make([]byte, 32), Redis: testRedis, Store: newFakeStore(), Deleter: &fakeDeleter{}}
	for _, tc := range []struct {
		name string
		edit func(*Deps)
	}{
		{"short key", func(d *Deps) { d.Key = d.Key[:16] }},
		{"no redis", func(d *Deps) { d.Redis = nil }},
		{"no store", func(d *Deps) { d.Store = nil }},
		{"bad public URL", func(d *Deps) { d.PublicURL = "vault.shop.example" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := base
			tc.edit(&d)
			_, err := New(d)
			assert.Error(t, err)
		})
	}
	_, err := New(base)
	assert.NoError(t, err)
}
