package vault

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// A Vault answer is read into a buffer kept for the next answer, which is
// wiped first: a decrypt's answer holds an order's shipping block.
func TestAnAnswersBufferIsWipedBeforeItIsKept(t *testing.T) {
	buf := bytes.NewBufferString(`{"data":{"plaintext":"eyJuYW1lIjoiSmFuZSBEb2UifQ=="}}`)
	held := buf.Bytes()[:buf.Cap()]
	putAnswer(buf)
	require.Equal(t, make([]byte, len(held)), held, "the answer's bytes are still in the kept buffer")
	require.Zero(t, buf.Len())

	// One too large to keep (a pick-list's answer) is wiped all the same.
	big := bytes.NewBuffer(bytes.Repeat([]byte("QQ"), maxKeptAnswer))
	held = big.Bytes()[:big.Cap()]
	putAnswer(big)
	require.Equal(t, make([]byte, len(held)), held, "a large answer's bytes are left in memory")

	// Answers read one after another through kept buffers decode alone:
	// nothing of a longer answer before them is read with them.
	long := `{"data":{"plaintext":"` + strings.Repeat("QQ", 4096) + `"}}`
	for _, answer := range []string{long, `{"data":{"plaintext":"Sm9l"}}`} {
		r, err := dataOf[transitResult](strings.NewReader(answer))
		require.NoError(t, err)
		require.Equal(t, answer[len(`{"data":{"plaintext":"`):len(answer)-len(`"}}`)], r.Plaintext)
	}
}
