package main

// The staff console, driven in a real headless Chromium (Debian's package,
// installed by `make`) against the real stack. Screenshots of each page go
// to .screenshots/ at the top of the repository (git-ignored).

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// browser starts a headless Chromium with an empty profile and returns a
// tab; more tabs of other profiles come from browser again.
func browser(t *testing.T) context.Context {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	require.NoError(t, err, "chromium is not installed: run `make test` (it installs Debian's chromium)")
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1280, 900))
	// Its own profile, removed after the browser has exited (t.TempDir
	// would race Chromium's last writes).
	profile, err := os.MkdirTemp("", "piivault-chromium-")
	require.NoError(t, err)
	opts = append(opts, chromedp.UserDataDir(profile))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx)
	ctx, cancelC := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() {
		cancelC()
		cancelB()
		cancelA()
		for i := 0; i < 20 && os.RemoveAll(profile) != nil; i++ {
			time.Sleep(100 * time.Millisecond)
		}
	})
	require.NoError(t, chromedp.Run(ctx))
	return ctx
}

// shot saves a full-page screenshot as .screenshots/<name>.png.
func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	var png []byte
	require.NoError(t, chromedp.Run(ctx, chromedp.FullScreenshot(&png, 100)))
	dir := filepath.Join(repoRoot(t), ".screenshots")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644))
}

func repoRoot(t *testing.T) string {
	dir, err := os.Getwd()
	require.NoError(t, err)
	for ; dir != filepath.Dir(dir); dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
	}
	t.Fatal("no go.mod above the test")
	return ""
}

// consoleLogin signs a member in through the login page.
func consoleLogin(t *testing.T, ctx context.Context, base, name, pw string, key *otp.Key) {
	t.Helper()
	code := freshCode(t, key, time.Now())
	require.NoError(t, chromedp.Run(ctx,
		chromedp.Navigate(base+"/console/login"),
		chromedp.WaitVisible("#username", chromedp.ByID),
		chromedp.SendKeys("#username", name, chromedp.ByID),
		chromedp.SendKeys("#password", pw, chromedp.ByID),
		chromedp.SendKeys("#totp", code, chromedp.ByID),
		chromedp.Submit("#totp", chromedp.ByID),
		chromedp.WaitVisible("header nav", chromedp.ByQuery),
	))
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	var s string
	require.NoError(t, chromedp.Run(ctx, chromedp.Text(sel, &s, chromedp.ByQuery)))
	return s
}

func TestConsoleFulfillmentQueueRevealLabelShipped(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.storeOrder("ord-c1")
	h.storeOrder("ord-c2")
	// Fields an attacker controls, rendered as text, never as markup.
	evil := orderBody("ord-xss")
	evil["shipping"].(map[string]any)["name"] = `<script>window.__pwned=1</script>Evil Name`
	evil["shipping"].(map[string]any)["address"].(map[string]any)["line1"] = `"><img src=x onerror="window.__pwned2=1">`
	require.Equal(t, 201, h.call("POST", "/v1/orders", h.apiKey, evil).Status)
	name, pw, key := h.staffMember("fulfillment")
	ctx := browser(t)
	consoleLogin(t, ctx, h.url, name, pw, key)

	var url string
	require.NoError(t, chromedp.Run(ctx, chromedp.Location(&url)))
	require.True(t, strings.HasSuffix(url, "/console/queue"), url)
	body := text(t, ctx, "main")
	require.Contains(t, body, "ord-c1")
	requireNoPII(t, "the queue", body)
	shot(t, ctx, "fulfillment-queue")

	// Reveal with a reason: the address is the form's answer, not in a URL.
	require.NoError(t, chromedp.Run(ctx,
		chromedp.Click(`a[href="/console/orders/ord-c1"]`, chromedp.ByQuery),
		chromedp.WaitVisible("#reason", chromedp.ByID),
		chromedp.SetValue("#reason", "label", chromedp.ByID),
		chromedp.Submit("#reason", chromedp.ByID),
		chromedp.WaitVisible("#address", chromedp.ByID),
		chromedp.Location(&url),
	))
	require.NotContains(t, url, "Canary")
	require.Contains(t, text(t, ctx, "#address"), "742 Canarystreet")
	var title string
	require.NoError(t, chromedp.Run(ctx, chromedp.Title(&title)))
	require.NotContains(t, title, "Canary")
	shot(t, ctx, "fulfillment-reveal")

	// Print the label, then mark it shipped.
	require.NoError(t, chromedp.Run(ctx,
		chromedp.Click(`form[action="/console/labels"] button`, chromedp.ByQuery),
		chromedp.WaitVisible("article.label", chromedp.ByQuery),
	))
	require.Contains(t, text(t, ctx, "article.label"), "Canaryname Zzyzx")
	shot(t, ctx, "fulfillment-label")
	require.NoError(t, chromedp.Run(ctx,
		chromedp.Navigate(h.url+"/console/orders/ord-c1"),
		chromedp.Click(`form[action="/console/orders/ord-c1/shipped"] button`, chromedp.ByQuery),
		chromedp.WaitVisible(".flash", chromedp.ByQuery),
	))
	require.Contains(t, text(t, ctx, "main"), "shipped")
	shot(t, ctx, "fulfillment-shipped")
	require.Equal(t, "shipped", h.status("ord-c1"))
	_, tok := h.login("fulfillment")
	require.Equal(t, 410, h.call("GET", "/v1/orders/ord-c1/shipping?reason=label", tok, nil).Status)

	// A pick-list of the queue's orders, printed in one go.
	require.NoError(t, chromedp.Run(ctx,
		chromedp.Navigate(h.url+"/console/queue"),
		chromedp.Click("#all", chromedp.ByID),
		chromedp.Click(`form[action="/console/labels"] button[type=submit]`, chromedp.ByQuery),
		chromedp.WaitVisible("article.label", chromedp.ByQuery),
	))
	var labels int
	require.NoError(t, chromedp.Run(ctx, chromedp.Evaluate(`document.querySelectorAll("article.label").length`, &labels)))
	require.Equal(t, 2, labels, "ord-c2 and ord-xss")
	shot(t, ctx, "fulfillment-picklist")

	// The injected markup shows as text and nothing ran; an inline script
	// added to the page is stopped by the CSP.
	require.NoError(t, chromedp.Run(ctx,
		chromedp.Navigate(h.url+"/console/orders/ord-xss"),
		chromedp.SetValue("#reason", "address_check", chromedp.ByID),
		chromedp.Submit("#reason", chromedp.ByID),
		chromedp.WaitVisible("#address", chromedp.ByID),
	))
	require.Contains(t, text(t, ctx, "#address"), "<script>window.__pwned=1</script>Evil Name")
	var pwned bool
	require.NoError(t, chromedp.Run(ctx,
		chromedp.Evaluate(`var s = document.createElement("script"); s.textContent = "window.__pwned3 = 1"; document.body.appendChild(s); 0`, nil),
		chromedp.Sleep(200*time.Millisecond),
		chromedp.Evaluate(`!!(window.__pwned || window.__pwned2 || window.__pwned3)`, &pwned),
	))
	require.False(t, pwned, "no injected script ran")
	shot(t, ctx, "fulfillment-escaped")

	// The session cookie is not readable from the page.
	var cookies string
	require.NoError(t, chromedp.Run(ctx, chromedp.Evaluate(`document.cookie`, &cookies)))
	require.NotContains(t, cookies, "piivault_console")
	resp, err := http.Get(h.url + "/console/login")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	require.Contains(t, resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'")
	require.NotContains(t, resp.Header.Get("Content-Security-Policy"), "unsafe-inline")
	requireNoPII(t, "logs", h.logs.String())
}

func TestConsoleRefusesACrossOriginForm(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.storeOrder("ord-csrf")
	name, pw, key := h.staffMember("fulfillment")
	ctx := browser(t)
	consoleLogin(t, ctx, h.url, name, pw, key)
	// A page on another origin posts to the console with the staff
	// member's browser (the cookie is sent: the same site, another port).
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, `<!doctype html><form id=f method=post action="%s/console/orders/ord-csrf/shipped">
<input name=csrf value=guess></form><script>document.getElementById("f").submit()</script>`, h.url)
	}))
	defer evil.Close()
	require.NoError(t, chromedp.Run(ctx,
		chromedp.Navigate(evil.URL),
		chromedp.WaitVisible("main", chromedp.ByQuery),
	))
	require.Contains(t, text(t, ctx, "main"), "did not come from the console")
	shot(t, ctx, "csrf-refused")
	require.Equal(t, "held", h.status("ord-csrf"))
}

func TestConsoleSupportDeletionAndAccessReport(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.storeOrder("ord-s1")
	h.storeOrder("ord-s2")
	name, pw, key := h.staffMember("support")
	ctx := browser(t)
	consoleLogin(t, ctx, h.url, name, pw, key)
	// Masked look-up.
	require.NoError(t, chromedp.Run(ctx,
		chromedp.Navigate(h.url+"/console/lookup"),
		chromedp.SendKeys("#order_id", "ord-s1", chromedp.ByID),
		chromedp.Submit("#order_id", chromedp.ByID),
		chromedp.WaitVisible("#reason", chromedp.ByID),
		chromedp.SetValue("#reason", "customer_contact", chromedp.ByID),
		chromedp.Submit("#reason", chromedp.ByID),
		chromedp.WaitVisible("#address", chromedp.ByID),
	))
	masked := text(t, ctx, "#address")
	require.Contains(t, masked, "C*** Z***")
	require.NotContains(t, masked, "Canarystreet")
	shot(t, ctx, "support-masked")
	// The access report, print-friendly.
	require.NoError(t, chromedp.Run(ctx,
		chromedp.Navigate(h.url+"/console/access"),
		chromedp.SendKeys("#email", "canary.zzyzx@example.com", chromedp.ByID),
		chromedp.Submit("#email", chromedp.ByID),
		chromedp.WaitVisible("article.report", chromedp.ByQuery),
	))
	rep := text(t, ctx, "article.report")
	require.Contains(t, rep, "ord-s1")
	require.Contains(t, rep, "Contact the customer")
	shot(t, ctx, "support-access-report")
	// A deletion request by email, with its receipt.
	require.NoError(t, chromedp.Run(ctx,
		chromedp.Navigate(h.url+"/console/deletions"),
		chromedp.SendKeys("#email", "canary.zzyzx@example.com", chromedp.ByID),
		chromedp.Submit("#email", chromedp.ByID),
		chromedp.WaitVisible(".receipt", chromedp.ByQuery),
	))
	require.Contains(t, text(t, ctx, ".receipt"), "2 orders deleted")
	shot(t, ctx, "support-deletion")
	require.Equal(t, "purged", h.status("ord-s2"))
	require.NotContains(t, text(t, ctx, "main"), "canary.zzyzx", "the email is on no page after the request")
}

func TestConsoleAuditorSeesTheChainBreak(t *testing.T) {
	h := newHarness(t, nil, nil)
	for i := 0; i < 3; i++ {
		h.storeOrder(fmt.Sprintf("ord-au%d", i))
	}
	name, pw, key := h.staffMember("auditor")
	ctx := browser(t)
	consoleLogin(t, ctx, h.url, name, pw, key)
	require.Contains(t, text(t, ctx, "main"), "Chain intact")
	shot(t, ctx, "auditor-trail")
	require.NoError(t, chromedp.Run(ctx, chromedp.Navigate(h.url+"/console/retention"), chromedp.WaitVisible("svg.chart", chromedp.ByQuery)))
	shot(t, ctx, "auditor-retention")
	require.NoError(t, chromedp.Run(ctx, chromedp.Navigate(h.url+"/console/scope?from=2026-01-01T00:00"), chromedp.WaitVisible(".stats", chromedp.ByQuery)))
	shot(t, ctx, "auditor-scope")
	// Someone with Redis access edits the second entry (the stream is
	// rewritten with the same ids).
	bg := context.Background()
	stream := "piivault:{audit}:log"
	msgs := h.env.Redis.XRange(bg, stream, "-", "+").Val()
	h.env.Redis.Del(bg, stream)
	for i, m := range msgs {
		raw := m.Values["entry"].(string)
		if i == 1 {
			raw = strings.Replace(raw, `"actor":"client:`, `"actor":"client:x`, 1)
		}
		h.env.Redis.XAdd(bg, &redis.XAddArgs{Stream: stream, ID: m.ID, Values: map[string]any{"entry": raw}})
	}
	require.NoError(t, chromedp.Run(ctx, chromedp.Navigate(h.url+"/console/audit"), chromedp.WaitVisible(".bad", chromedp.ByQuery)))
	require.Contains(t, text(t, ctx, ".bad"), "Chain broken at entry 2")
	shot(t, ctx, "auditor-broken")
}

func TestConsoleLockdownEndsAnOpenFulfillmentSession(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.storeOrder("ord-l1")
	fname, fpw, fkey := h.staffMember("fulfillment")
	aname, apw, akey := h.staffMember("admin")
	ful := browser(t)
	consoleLogin(t, ful, h.url, fname, fpw, fkey)
	adm := browser(t)
	consoleLogin(t, adm, h.url, aname, apw, akey)
	require.NoError(t, chromedp.Run(adm, chromedp.Navigate(h.url+"/console/staff"), chromedp.WaitVisible("table", chromedp.ByQuery)))
	require.Contains(t, text(t, adm, "main"), fname)
	shot(t, adm, "admin-staff")
	require.NoError(t, chromedp.Run(adm, chromedp.Navigate(h.url+"/console/lockdown"), chromedp.WaitVisible(`input[name=confirm]`, chromedp.ByQuery)))
	shot(t, adm, "admin-lockdown")
	require.NoError(t, chromedp.Run(adm,
		chromedp.Click(`input[name=confirm]`, chromedp.ByQuery),
		chromedp.Click(`button.danger`, chromedp.ByQuery),
		chromedp.WaitVisible("#username", chromedp.ByID),
	))
	// The fulfillment member's next click ends at the login page.
	require.NoError(t, chromedp.Run(ful, chromedp.Navigate(h.url+"/console/queue"), chromedp.WaitVisible("#username", chromedp.ByID)))
	require.Contains(t, text(t, ful, "main"), "session has ended")
	shot(t, ful, "fulfillment-ended")
	// And cannot sign in again while it lasts.
	code := freshCode(t, fkey, time.Now().Add(30*time.Second))
	require.NoError(t, chromedp.Run(ful,
		chromedp.SendKeys("#username", fname, chromedp.ByID), chromedp.SendKeys("#password", fpw, chromedp.ByID),
		chromedp.SendKeys("#totp", code, chromedp.ByID), chromedp.Submit("#totp", chromedp.ByID),
		chromedp.WaitVisible(".error", chromedp.ByQuery)))
	require.Contains(t, text(t, ful, ".error"), "locked down")
	require.NoError(t, realMain(context.Background(), []string{"lockdown", "off"}, nil, io.Discard, io.Discard, envOf(baseEnv(h.env))))
}

// The console's session rules on the real stack, without a browser: the
// sign-in goes through Vault, every request checks the token with Vault,
// and PIIVAULT_CONSOLE_IDLE comes through the configuration.

// movedClock is time.Now moved forward by the test, read by the server's
// goroutines.
type movedClock struct{ ahead atomic.Int64 }

func (c *movedClock) now() time.Time          { return time.Now().Add(time.Duration(c.ahead.Load())) }
func (c *movedClock) advance(d time.Duration) { c.ahead.Add(int64(d)) }
func (h *harness) withConsoleClock(c *movedClock) *harness {
	h.t.Helper()
	// The app serves a second handler whose console reads c; the first
	// one keeps time.Now.
	h.app.now = c.now
	hd, err := h.app.handler()
	require.NoError(h.t, err)
	srv := httptest.NewServer(hd)
	h.t.Cleanup(srv.Close)
	moved := *h
	moved.url = srv.URL
	return &moved
}

func TestConsoleIdleLimitOnTheRealStack(t *testing.T) {
	const idle = 5 * time.Minute // not the 15-minute default
	clock := &movedClock{}
	h := newHarness(t, nil, map[string]string{"PIIVAULT_CONSOLE_IDLE": idle.String()}).withConsoleClock(clock)
	in := h.console("/console/login", h.signInForm("fulfillment"), nil, "Origin", h.url)
	require.Equal(t, http.StatusSeeOther, in.Status, in.Body)
	require.NotNil(t, in.Cookie)
	first := in.Cookie
	// Each step stays 10 s inside or outside the limit: the real seconds a
	// loaded machine takes between requests do not change the outcome.
	const slack = 10 * time.Second

	clock.advance(idle - slack)
	r := h.console("/console/queue", nil, first)
	require.Equal(t, http.StatusOK, r.Status, "inside the idle limit: %s", r.Body)
	require.NotNil(t, r.Cookie, "a request renews the session")
	renewed := r.Cookie

	clock.advance(idle - slack) // past the limit counted from the sign-in
	r = h.console("/console/queue", nil, renewed)
	require.Equal(t, http.StatusOK, r.Status, "activity keeps the session: %s", r.Body)
	require.NotNil(t, r.Cookie)
	renewed = r.Cookie
	old := h.console("/console/queue", nil, first)
	require.Equal(t, http.StatusSeeOther, old.Status, "the sign-in cookie has been idle too long")
	require.Equal(t, "/console/login", old.Header.Get("Location"))

	clock.advance(idle + slack)
	r = h.console("/console/queue", nil, renewed)
	require.Equal(t, http.StatusSeeOther, r.Status, "idle past PIIVAULT_CONSOLE_IDLE")
	require.Equal(t, "/console/login", r.Header.Get("Location"))
	require.NotNil(t, r.Cookie)
	require.Empty(t, r.Cookie.Value, "the session cookie is cleared")
}

var (
	mainNav = regexp.MustCompile(`(?s)<nav aria-label="Main">(.*?)</nav>`)
	navLink = regexp.MustCompile(`<a href="([^"]+)"[^>]*>([^<]+)</a>`)
)

// navOf lists the labels of a console page's main navigation.
func navOf(t *testing.T, body string) []string {
	t.Helper()
	m := mainNav.FindStringSubmatch(body)
	require.NotNil(t, m, "the page has the main navigation")
	var labels []string
	for _, a := range navLink.FindAllStringSubmatch(m[1], -1) {
		labels = append(labels, a[2])
	}
	return labels
}

// Each role, signed in through Vault, sees only its pages in the
// navigation, may open them, and is refused (403) another role's page:
// to read it, and to post to it with a valid form.
func TestConsoleRoleGatingOnTheRealStack(t *testing.T) {
	h := newHarness(t, nil, nil)
	tests := []struct {
		role    string
		nav     []string
		opens   string
		refused []string
	}{
		{"fulfillment", []string{"Queue", "Look up"}, "/console/queue", []string{"/console/blocks", "/console/audit", "/console/deletions"}},
		{"support", []string{"Look up", "Deletions", "Access reports"}, "/console/lookup", []string{"/console/blocks", "/console/staff", "/console/queue", "/console/audit"}},
		{"auditor", []string{"Audit trail", "Retention", "Breach scope"}, "/console/audit", []string{"/console/blocks", "/console/lookup", "/console/queue"}},
		{"admin", []string{"Queue", "Deletions", "Access reports", "Audit trail", "Retention", "Breach scope", "Blocks", "Lockdown", "Staff"},
			"/console/blocks", []string{"/console/lookup"}},
	}
	for _, tt := range tests {
		t.Run(tt.role, func(t *testing.T) {
			in := h.console("/console/login", h.signInForm(tt.role), nil, "Origin", h.url)
			require.Equal(t, http.StatusSeeOther, in.Status, in.Body)
			session := in.Cookie
			page := h.console(tt.opens, nil, session)
			require.Equal(t, http.StatusOK, page.Status, page.Body)
			require.Equal(t, tt.nav, navOf(t, page.Body))
			csrf := csrfField.FindStringSubmatch(page.Body)
			require.NotNil(t, csrf)
			for _, path := range tt.refused {
				r := h.console(path, nil, session)
				require.Equal(t, http.StatusForbidden, r.Status, "%s may not open %s", tt.role, path)
				require.Contains(t, r.Body, "your role may not open this page")
				require.Equal(t, tt.nav, navOf(t, r.Body), "the refusal shows the member's own navigation")
			}
			if tt.role != "admin" {
				// A form the member's own page could have sent: right origin
				// and CSRF token, wrong role.
				r := h.console("/console/blocks/lift", url.Values{"csrf": {csrf[1]}, "ip": {"192.0.2.1"}}, session, "Origin", h.url)
				require.Equal(t, http.StatusForbidden, r.Status, r.Body)
				require.Contains(t, r.Body, "your role may not open this page")
			}
		})
	}
}
