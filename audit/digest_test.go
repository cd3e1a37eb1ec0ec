package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// digestAsWritten is the digest as trails already in Redis and in sealed
// segments were hashed (fmt's %q): digest must match it byte for byte, or
// every entry written before it would fail verify.
func digestAsWritten(e Entry) string {
	keys := make([]string, 0, len(e.Detail))
	for k := range e.Detail {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "seq=%d\ntime=%s\nactor=%q\naction=%q\norder=%q\nip=%q\n",
		e.Seq, e.Time.UTC().Format(time.RFC3339Nano), e.Actor, e.Action, e.OrderID, e.IP)
	for _, k := range keys {
		fmt.Fprintf(&b, "detail.%q=%q\n", k, e.Detail[k])
	}
	if e.Event != "" {
		fmt.Fprintf(&b, "event=%q\n", e.Event)
	}
	fmt.Fprintf(&b, "prev=%s\n", e.Prev)
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:])
}

func TestDigestIsTheFormTrailsWereWrittenIn(t *testing.T) {
	at := time.Date(2026, 12, 1, 4, 5, 6, 789, time.FixedZone("CET", 3600))
	for name, e := range map[string]Entry{
		"empty":  {},
		"reveal": {Seq: 42, Time: at, Actor: "alice", Action: ActionReveal, OrderID: "ord-1", IP: "192.0.2.1", Prev: genesis, Detail: map[string]string{"role": "fulfillment", "view": "full", "reason": "label"}},
		"event":  {Seq: 1 << 40, Time: at, Actor: "client:shop", Action: ActionPurge, OrderID: "ord-2", Event: "0123456789abcdef", Prev: strings.Repeat("a", 64)},
		"quotes and control characters": {Seq: -1, Time: at, Actor: "a\"b\\c\n\t\x00", Action: "x\u00e9\u2028", OrderID: "ord-\x7f",
			IP: "::1", Detail: map[string]string{"k\"ey": "v\u0301al\r\n", "": ""}},
		"invalid UTF-8": {Time: at, Actor: "\xff\xfe", Detail: map[string]string{"\xc3": "\xe2\x28\xa1"}},
		"zero time":     {Seq: 7, Actor: "system", Action: ActionLogin},
	} {
		require.Equal(t, digestAsWritten(e), e.digest(), name)
	}
}

func BenchmarkDigest(b *testing.B) {
	e := Entry{Seq: 42, Time: time.Now(), Actor: "alice", Action: ActionReveal, OrderID: "ord-1", IP: "192.0.2.1",
		Prev: genesis, Detail: map[string]string{"role": "fulfillment", "view": "full", "reason": "label"}}
	b.ReportAllocs()
	for b.Loop() {
		_ = e.digest()
	}
}
