package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"piivault/audit"
)

// TestRevealsLoginsAndStaffChangesAreAuditedWithWhoWhatWhereAndWhen holds
// invariant 6 to each entry's content, not to its existence: the trail,
// filtered on one action, holds exactly one entry for the call just made,
// naming its actor, order, IP and detail, timed at the call.
func TestRevealsLoginsAndStaffChangesAreAuditedWithWhoWhatWhereAndWhen(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.storeOrder("ord-who")
	h.ip = "203.0.113.61" // sent as X-Forwarded-For: the client's address, not the proxy's
	name, pw, key := h.staffMember("fulfillment")
	vars := baseEnv(h.env)
	vars["VAULT_TOKEN"] = h.env.RootToken
	ctx := context.Background()
	var tok string

	tests := []struct {
		name string
		act  func(t *testing.T)
		// want's Actor, Action, OrderID and IP must match exactly; its Detail
		// keys are required with these values (others may be added).
		want audit.Entry
	}{
		{"login", func(t *testing.T) {
			r := h.loginAs(name, pw, key, time.Now())
			require.Equal(t, 200, r.Status, string(r.Raw))
			tok = r.Body["token"].(string)
		}, audit.Entry{Actor: name, Action: audit.ActionLogin, IP: "203.0.113.61",
			Detail: map[string]string{"role": "fulfillment"}}},
		{"reveal", func(t *testing.T) {
			r := h.call("GET", "/v1/orders/ord-who/shipping?reason=address_check", tok, nil)
			require.Equal(t, 200, r.Status, string(r.Raw))
		}, audit.Entry{Actor: name, Action: audit.ActionReveal, OrderID: "ord-who", IP: "203.0.113.61",
			Detail: map[string]string{"role": "fulfillment", "view": "full", "reason": "address_check"}}},
		{"logout", func(t *testing.T) {
			r := h.call("POST", "/v1/auth/logout", tok, nil)
			require.Equal(t, 204, r.Status, string(r.Raw))
		}, audit.Entry{Actor: name, Action: audit.ActionLogout, IP: "203.0.113.61"}},
		// The operator lifts a suspension from the CLI: no IP, the operator
		// as actor, the member named in the detail.
		{"unsuspend from the CLI", func(t *testing.T) {
			require.NoError(t, h.app.staff.Suspend(ctx, name))
			var out bytes.Buffer
			require.NoError(t, realMain(ctx, []string{"staff", "unsuspend", name}, strings.NewReader(""), &out, io.Discard, envOf(vars)))
			require.Equal(t, "Suspension of "+name+" lifted.\n", out.String())
		}, audit.Entry{Actor: "operator", Action: audit.ActionStaffUnsuspend,
			Detail: map[string]string{"staff": name}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := time.Now()
			tt.act(t)
			after := time.Now()
			page, err := h.app.audit.List(ctx, audit.Filter{Action: tt.want.Action})
			require.NoError(t, err)
			require.Len(t, page.Entries, 1, "one entry per %s", tt.want.Action)
			e := page.Entries[0]
			require.Equal(t, tt.want.Actor, e.Actor, "actor")
			require.Equal(t, tt.want.OrderID, e.OrderID, "order id")
			require.Equal(t, tt.want.IP, e.IP, "ip")
			for k, v := range tt.want.Detail {
				require.Equal(t, v, e.Detail[k], "detail %q", k)
			}
			// The entry is timed when the call was made (Record stamps it),
			// not later by a drain nor earlier by a cache: a second's slack
			// covers clock reading order only.
			require.WithinRange(t, e.Time, before.Add(-time.Second), after.Add(time.Second))
			require.NotEmpty(t, e.Seal, "sealed by Vault")
		})
	}
	v, err := h.app.audit.Verify(ctx)
	require.NoError(t, err)
	require.True(t, v.Intact, "%+v", v.Broken)
	trail := h.call("GET", "/v1/audit", h.loginToken("auditor"), nil)
	require.Equal(t, 200, trail.Status)
	requireNoPII(t, "audit", string(trail.Raw))
}
