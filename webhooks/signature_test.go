package webhooks

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestVerifyShipping(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"event_id":"e1","order_id":"o1","status":"shipped"}`)
	good := SignShipping("s3cret", now, body)
	tests := []struct {
		name   string
		header string
		body   []byte
		want   error
	}{
		{"valid", good, body, nil},
		{"valid among several", good + ",v1=00ff", body, nil},
		{"missing", "", body, errBadSignature},
		{"wrong secret", SignShipping("other", now, body), body, errBadSignature},
		{"body changed", good, []byte(`{"event_id":"e1","order_id":"o2","status":"shipped"}`), errBadSignature},
		{"no timestamp", "v1=" + good[len("t=1800000000,v1="):], body, errBadSignature},
		{"stale", SignShipping("s3cret", now.Add(-6*time.Minute), body), body, errStale},
		{"from the future", SignShipping("s3cret", now.Add(6*time.Minute), body), body, errStale},
		{"within tolerance", SignShipping("s3cret", now.Add(-4*time.Minute), body), body, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, verifyShipping("s3cret", tt.header, tt.body, now, 5*time.Minute))
		})
	}
}

func TestSignEasyPostMatchesDocumentedScheme(t *testing.T) {
	// NFKD folds the compatibility character "ﬁ" into "fi": both secrets sign alike.
	body := []byte(`{"id":"evt_1"}`)
	require.Equal(t, SignEasyPost("ﬁsh", body), SignEasyPost("fish", body))
	require.Regexp(t, `^hmac-sha256-hex=[0-9a-f]{64}$`, SignEasyPost("fish", body))
}
