package apperr

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCodeOf(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want Code
	}{
		{"plain error is internal", errors.New("boom"), Internal},
		{"direct", New(NotFound, "no order"), NotFound},
		{"wrapped by fmt", fmt.Errorf("get order: %w", New(Gone, "purged")), Gone},
		{"wrap keeps cause", Wrap(VaultUnavailable, errors.New("dial"), "vault down"), VaultUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, CodeOf(tt.err))
			require.True(t, Is(tt.err, tt.want))
		})
	}
}

func TestWrapUnwraps(t *testing.T) {
	cause := errors.New("connection refused")
	err := Wrap(StoreUnavailable, cause, "redis unavailable")
	require.ErrorIs(t, err, cause)
	require.Contains(t, err.Error(), "connection refused")
}
