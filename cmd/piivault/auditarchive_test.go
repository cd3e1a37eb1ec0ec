package main

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// PIIVAULT_AUDIT_ARCHIVE wired through serve and the CLI: archived
// segments are part of what the API and `audit verify` check.
func TestArchivedTrailVerifiesThroughTheAPIAndTheCLI(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, nil, map[string]string{"PIIVAULT_AUDIT_ARCHIVE": dir, "PIIVAULT_AUDIT_HOT": "1m"})
	for _, id := range []string{"ord-ar1", "ord-ar2", "ord-ar3"} {
		h.storeOrder(id)
	}
	ctx := context.Background()
	time.Sleep(5 * time.Millisecond)
	res, err := h.app.audit.Archive(ctx, time.Now())
	require.NoError(t, err)
	require.Positive(t, res.Entries)
	h.storeOrder("ord-ar4") // the hot window

	aud := h.loginToken("auditor")
	v := h.call("GET", "/v1/audit/verify", aud, nil)
	require.Equal(t, 200, v.Status, string(v.Raw))
	require.Equal(t, true, v.Body["intact"], string(v.Raw))
	require.EqualValues(t, 1, v.Body["segments"])
	page := h.call("GET", "/v1/audit", aud, nil)
	require.Equal(t, 200, page.Status)
	require.NotEmpty(t, page.Body["hot_window_starts"], "the API says where Redis's window starts")

	vars := baseEnv(h.env)
	vars["PIIVAULT_AUDIT_ARCHIVE"] = dir
	var out bytes.Buffer
	require.NoError(t, realMain(ctx, []string{"audit", "verify"}, nil, &out, io.Discard, envOf(vars)))
	require.Contains(t, out.String(), "intact")
	require.Contains(t, out.String(), "1 archived segments")
	out.Reset()
	require.NoError(t, realMain(ctx, []string{"audit", "archive"}, nil, &out, io.Discard, envOf(vars)))
	require.Contains(t, out.String(), "archived 0 entries", "nothing is older than the default 720h window")

	delete(vars, "PIIVAULT_AUDIT_ARCHIVE")
	err = realMain(ctx, []string{"audit", "archive"}, nil, io.Discard, io.Discard, envOf(vars))
	require.ErrorContains(t, err, "PIIVAULT_AUDIT_ARCHIVE")
	vars["PIIVAULT_AUDIT_ARCHIVE"] = dir + "/missing"
	err = realMain(ctx, []string{"audit", "verify"}, nil, io.Discard, io.Discard, envOf(vars))
	require.ErrorContains(t, err, "PIIVAULT_AUDIT_ARCHIVE")
	vars["PIIVAULT_AUDIT_ARCHIVE"], vars["PIIVAULT_AUDIT_KEEP"] = dir, "1h"
	err = realMain(ctx, []string{"audit", "verify"}, nil, io.Discard, io.Discard, envOf(vars))
	require.ErrorContains(t, err, "PIIVAULT_AUDIT_KEEP")
}
