package console

import (
	"fmt"
	"net"
	"strings"

	"github.com/gin-gonic/gin"
)

// parseProxies reads PIIVAULT_TRUSTED_PROXIES the way Gin's
// SetTrustedProxies does (an IP is a /32 or /128), so the console trusts
// X-Forwarded-Proto from exactly the peers whose X-Forwarded-For Gin
// trusts for c.ClientIP.
func parseProxies(list []string) ([]*net.IPNet, error) {
	var out []*net.IPNet
	for _, p := range list {
		if !strings.Contains(p, "/") {
			ip := net.ParseIP(p)
			if ip == nil {
				return nil, fmt.Errorf("trusted proxy %q: not an IP or CIDR", p)
			}
			bits := 8 * net.IPv6len
			if ip.To4() != nil {
				ip, bits = ip.To4(), 8*net.IPv4len
			}
			out = append(out, &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)})
			continue
		}
		_, n, err := net.ParseCIDR(p)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: %w", p, err)
		}
		out = append(out, n)
	}
	return out, nil
}

// overHTTPS reports whether the browser's connection was HTTPS: piivault's
// own TLS, or a TLS-terminating proxy in PIIVAULT_TRUSTED_PROXIES saying so
// in X-Forwarded-Proto. Anyone else's X-Forwarded-Proto is ignored: a
// client could write it. Of a list ("https, http"), the last value counts:
// it is the one the trusted peer wrote, where an appending proxy keeps
// whatever the client sent in front of it.
func (h *Handler) overHTTPS(c *gin.Context) bool {
	if c.Request.TLS != nil {
		return true
	}
	peer := net.ParseIP(c.RemoteIP())
	if peer == nil || !h.trusted(peer) {
		return false
	}
	values := c.Request.Header.Values("X-Forwarded-Proto")
	if len(values) == 0 {
		return false
	}
	parts := strings.Split(values[len(values)-1], ",")
	return strings.EqualFold(strings.TrimSpace(parts[len(parts)-1]), "https")
}

func (h *Handler) trusted(ip net.IP) bool {
	for _, n := range h.proxies {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// httpsNotice is the HTTPS address to send a staff member to when an https
// PIIVAULT_PUBLIC_URL is set and this request reached piivault over plain
// HTTP from a non-loopback client; "" when the request may go on. The
// console's sign-in is refused then: the session cookie is Secure, so the
// browser would never send it back over HTTP, and the token it carries
// must not cross a network in clear. Loopback clients (make run, tests, an
// operator on the host) may use plain HTTP: they cross no network.
func (h *Handler) httpsNotice(c *gin.Context) string {
	if h.PublicOrigin == "" || h.overHTTPS(c) {
		return ""
	}
	if ip := net.ParseIP(c.ClientIP()); ip != nil && ip.IsLoopback() {
		return ""
	}
	return h.PublicOrigin + "/console/"
}
