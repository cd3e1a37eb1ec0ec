package privacy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"

	"piivault/internal/apperr"
	"piivault/mail"
	"piivault/orders"
)

type startView struct {
	Email   string // what the customer typed, back on their own screen after a mistake
	Message string
	Ended   bool
	Out     bool
}

// errMailOff answers the sign-in routes when SMTP is not set up.
var errMailOff = say(apperr.NotConfigured, "Signing in here needs an email from us, and this shop has not set up sending email. Please write to the shop: they can show, correct or delete your shipping data for you.")

// start is the email form; a signed-in customer goes to their orders.
func (h *Handler) start(c *gin.Context) {
	if _, ok := h.currentSession(c); ok {
		c.Redirect(http.StatusSeeOther, "/privacy/orders")
		return
	}
	v := startView{Ended: c.Query("ended") != "", Out: c.Query("out") != ""}
	if h.d.Mail != nil {
		if _, err := h.ensureForm(c); err != nil {
			h.fail(c, err)
			return
		}
	}
	h.render(c, http.StatusOK, "start", "Your shipping data", v)
}

type codeView struct {
	Sent    bool
	Message string
}

// send answers every valid email the same way, byte for byte (apart from
// the form's token): it mails a code only when piivault holds orders for
// the address, and a failure to do so is logged, not shown. Mail goes
// through the outbox, so neither answer waits on SMTP.
func (h *Handler) send(c *gin.Context) {
	ctx := c.Request.Context()
	email := strings.TrimSpace(c.PostForm("email"))
	if !orders.ValidEmail(email) {
		h.render(c, http.StatusUnprocessableEntity, "start", "Your shipping data",
			startView{Email: email, Message: "Please enter a valid email address, such as name@example.com."})
		return
	}
	if h.d.EmailLimit != nil {
		if err := h.d.EmailLimit.Allow(ctx, h.emailMAC(email)); err != nil {
			h.fail(c, err)
			return
		}
	}
	ids, err := h.d.Store.History(ctx, email)
	if err != nil {
		h.fail(c, err)
		return
	}
	if len(ids) > 0 {
		h.mailCode(c, email)
	}
	f, _ := c.Get(formCtx)
	fs := f.(formState)
	fs.Email, fs.Expires = email, h.d.Now().Add(formTTL).Unix()
	if err := h.saveForm(c, fs); err != nil {
		h.fail(c, err)
		return
	}
	h.render(c, http.StatusOK, "code", "Check your email", codeView{Sent: true})
}

// mailCode issues a code and link for email and queues the mail, after
// the answer: the known email's answer must not take longer than the
// unknown one's. Errors are logged without the email and swallowed: the
// page must not differ either.
func (h *Handler) mailCode(c *gin.Context, email string) {
	ctx := context.WithoutCancel(c.Request.Context())
	base := h.linkURL(c)
	h.bg.Go(func() {
		ctx, cancel := context.WithTimeout(ctx, mailWait)
		defer cancel()
		in, err := h.issue(ctx, email)
		if err != nil {
			h.d.Log.Warn("privacy sign-in code not issued", "err", err)
			return
		}
		var b strings.Builder
		b.WriteString("Your one-time code: " + in.Code + "\n\n")
		b.WriteString("Enter it on the page where you asked for it.")
		if base != "" {
			b.WriteString(" Or open this link to sign in:\n" + base + "/privacy/link?t=" + in.Token)
		}
		b.WriteString("\n\nThe code and the link work once, for 10 minutes.\n" +
			"If you did not ask for this, ignore this email: nothing happens without the code.\n")
		id := "privacy-code-" + randomHex(16)
		if err := h.d.Mail.Enqueue(ctx, mail.Message{ID: id, To: email, Subject: "Your code to see your shipping data", Text: b.String()}); err != nil {
			h.d.Log.Warn("privacy sign-in mail not queued", "id", id, "err", err)
		}
	})
}

// linkURL is the base of the emailed link: PublicURL, or in development
// (no PublicURL, a loopback Host) the request's own. Otherwise "": the
// email carries the code alone, since a link built from a Host header an
// attacker chose would send the victim's token to the attacker.
func (h *Handler) linkURL(c *gin.Context) string {
	if h.linkBase != "" {
		return h.linkBase
	}
	host := c.Request.Host
	name := host
	if hn, _, err := net.SplitHostPort(host); err == nil {
		name = hn
	}
	ip := net.ParseIP(name)
	if !strings.EqualFold(name, "localhost") && (ip == nil || !ip.IsLoopback()) {
		return ""
	}
	scheme := "http"
	if h.d.HTTPS || c.Request.TLS != nil {
		scheme = "https"
	}
	return (&url.URL{Scheme: scheme, Host: host}).String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// codePage is the code form, for the email a code was last asked for in
// this browser.
func (h *Handler) codePage(c *gin.Context) {
	if h.d.Mail == nil {
		h.fail(c, errMailOff)
		return
	}
	f, err := h.ensureForm(c)
	if err != nil {
		h.fail(c, err)
		return
	}
	if f.Email == "" {
		c.Redirect(http.StatusSeeOther, "/privacy/")
		return
	}
	h.render(c, http.StatusOK, "code", "Enter your code", codeView{})
}

// code signs in with the mailed code. Every failure reads the same (see
// errBadCode); attempts count toward the email's limit and the code's 5
// tries.
func (h *Handler) code(c *gin.Context) {
	ctx := c.Request.Context()
	f, _ := c.Get(formCtx)
	email := f.(formState).Email
	if email == "" {
		c.Redirect(http.StatusSeeOther, "/privacy/")
		return
	}
	if h.d.EmailLimit != nil {
		if err := h.d.EmailLimit.Allow(ctx, h.emailMAC(email)); err != nil {
			h.fail(c, err)
			return
		}
	}
	if err := h.attempt(ctx, email, strings.TrimSpace(c.PostForm("code"))); err != nil {
		if apperr.Is(err, apperr.Validation) {
			h.render(c, http.StatusUnprocessableEntity, "code", "Enter your code", codeView{Message: badCodeText})
			return
		}
		h.fail(c, err)
		return
	}
	h.signIn(c, email)
}

func (h *Handler) signIn(c *gin.Context, email string) {
	if err := h.startSession(c, email); err != nil {
		h.fail(c, err)
		return
	}
	c.Redirect(http.StatusSeeOther, "/privacy/orders")
}

type linkView struct{ Token string }

// linkPage is where the emailed link lands. It uses nothing: it shows a
// button that posts the token. Mail scanners that open every link would
// otherwise use the single-use link up before the customer clicks, and a
// SameSite=Strict cookie set in answer to a click from a mail site is not
// sent on the redirect that follows it.
func (h *Handler) linkPage(c *gin.Context) {
	if h.d.Mail == nil {
		h.fail(c, errMailOff)
		return
	}
	t := c.Query("t")
	if t == "" {
		c.Redirect(http.StatusSeeOther, "/privacy/")
		return
	}
	if _, err := h.ensureForm(c); err != nil {
		h.fail(c, err)
		return
	}
	h.render(c, http.StatusOK, "link", "Sign in", linkView{Token: t})
}

// link signs in with the link's token, once.
func (h *Handler) link(c *gin.Context) {
	email, err := h.useLink(c.Request.Context(), c.PostForm("t"))
	if err != nil {
		h.fail(c, err)
		return
	}
	h.signIn(c, email)
}

// logout ends the session (it holds nothing server-side).
func (h *Handler) logout(c *gin.Context) {
	h.clearCookie(c, sessionCookie)
	c.Redirect(http.StatusSeeOther, "/privacy/?out=1")
}
