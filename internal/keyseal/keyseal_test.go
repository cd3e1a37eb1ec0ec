package keyseal

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSealOpen(t *testing.T) {
	ctx := context.Background()
	master := bytes.Repeat([]byte{7}, 32)
	mail, err := New(master, "mail outbox")
	require.NoError(t, err)
	other, err := New(master, "privacy session")
	require.NoError(t, err)
	sealed, err := mail.Seal(ctx, []byte("jane@example.com"))
	require.NoError(t, err)
	assert.NotContains(t, sealed, "jane")
	again, err := mail.Seal(ctx, []byte("jane@example.com"))
	require.NoError(t, err)
	assert.NotEqual(t, sealed, again, "a fresh nonce every time")
	plain, err := mail.Open(ctx, sealed)
	require.NoError(t, err)
	assert.Equal(t, "jane@example.com", string(plain))

	_, err = other.Open(ctx, sealed)
	assert.ErrorIs(t, err, ErrOpen, "another purpose's key opens nothing")
	tampered := []byte(sealed)
	tampered[len(tampered)-2] ^= 1
	_, err = mail.Open(ctx, string(tampered))
	assert.ErrorIs(t, err, ErrOpen)
	_, err = mail.Open(ctx, "!!")
	assert.ErrorIs(t, err, ErrOpen)
	_, err = New(master[:16], "x")
	assert.Error(t, err)
	k1, _ := Key(master, "a")
	k2, _ := Key(master, "b")
	assert.Len(t, k1, 32)
	assert.NotEqual(t, k1, k2)
}
