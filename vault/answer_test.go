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

// Vault's answers decode as Vault writes them: every member piivault does
// not read is skipped, escapes in an item's error are read, an answer
// without data (an error answer) is empty, and a body that is not JSON (a
// proxy's page) is an error, not an empty answer.
func TestAnswersDecodeAsVaultWritesThem(t *testing.T) {
	for name, tt := range map[string]struct {
		body    string
		want    batchResults
		wantErr bool
	}{
		"members not read": {body: `{"request_id":"r","lease_id":"","renewable":false,"lease_duration":0,"data":{"batch_results":[{"ciphertext":"vault:v1:QQ==","key_version":1,"reference":""}]},"wrap_info":null,"warnings":["w"],"auth":null,"mount_type":"transit"}` + "\n",
			want: batchResults{Results: []transitResult{{Ciphertext: "vault:v1:QQ=="}}}},
		"an item's error": {body: `{"data":{"batch_results":[{"hmac":"vault:v1:aA=="},{"error":"invalid \"input\": \u003cnot base64\u003e"}]}}`,
			want: batchResults{Results: []transitResult{{HMAC: "vault:v1:aA=="}, {Error: `invalid "input": <not base64>`}}}},
		"an error answer": {body: `{"errors":["permission denied"]}`},
		"data null":       {body: `{"data":null}`},
		"a proxy's page":  {body: `<html>bad gateway</html>`, wantErr: true},
		"cut short":       {body: `{"data":{"batch_results":[{"ciphertext":"vault:v1:`, wantErr: true},
	} {
		got, err := dataOf[batchResults](strings.NewReader(tt.body))
		if tt.wantErr {
			require.Error(t, err, name)
			continue
		}
		require.NoError(t, err, name)
		require.Equal(t, tt.want, got, name)
	}
}
