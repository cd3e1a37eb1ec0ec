package web

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"piivault/internal/apperr"
)

func TestDecodeStrict(t *testing.T) {
	type body struct {
		A string `json:"a"`
		N int    `json:"n"`
	}
	tests := []struct {
		name string
		in   string
		code apperr.Code
	}{
		{"ok", `{"a":"x","n":1}`, ""},
		{"unknown field", `{"a":"x","b":2}`, apperr.Invalid},
		{"trailing data", `{"a":"x"} {"a":"y"}`, apperr.Invalid},
		{"trailing garbage", `{"a":"x"}garbage`, apperr.Invalid},
		{"malformed", `{"a":`, apperr.Invalid},
		{"wrong type", `{"n":"1"}`, apperr.Invalid},
		{"empty", ``, apperr.Invalid},
		{"array", `[]`, apperr.Invalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b body
			err := DecodeStrict([]byte(tt.in), &b)
			if tt.code == "" {
				require.NoError(t, err)
				return
			}
			require.Equal(t, tt.code, apperr.CodeOf(err))
		})
	}
}

func TestDecodeStrictDoesNotEchoInput(t *testing.T) {
	var v struct {
		A int `json:"a"`
	}
	err := DecodeStrict([]byte(`{"a":"canary-value"}`), &v)
	require.Error(t, err)
	var ae *apperr.Error
	require.ErrorAs(t, err, &ae)
	require.NotContains(t, ae.Message, "canary")
}

func TestSecretRedacts(t *testing.T) {
	s := Secret("hvs.token")
	require.Equal(t, "[REDACTED]", s.String())
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%d", "%x"} {
		require.NotContains(t, fmt.Sprintf(verb, s), "hvs", verb)
		require.NotContains(t, fmt.Sprintf(verb, struct{ T Secret }{s}), "hvs", verb)
	}
	b, err := s.MarshalJSON()
	require.NoError(t, err)
	require.Equal(t, `"[REDACTED]"`, string(b))
	require.Equal(t, "hvs.token", s.Reveal())
}
