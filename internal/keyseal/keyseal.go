// Package keyseal seals small values (an outbox email's recipient, a
// customer's session) with AES-256-GCM under a key derived with HKDF-SHA256
// from piivault's shared secret in Vault's KV (the console key), one key
// per purpose. Anyone holding only Redis reads nothing; every instance of
// piivault, which reads that secret from Vault, can open what another
// sealed.
package keyseal

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
)

// Sealer seals and opens values for one purpose.
type Sealer struct {
	aead    cipher.AEAD
	purpose []byte
}

// New derives the purpose's key from master (at least 32 bytes).
func New(master []byte, purpose string) (*Sealer, error) {
	if len(master) < 32 {
		return nil, errors.New("keyseal: the master key is shorter than 32 bytes")
	}
	key, err := hkdf.Key(sha256.New, master, nil, "piivault "+purpose, 32)
	if err != nil {
		return nil, fmt.Errorf("keyseal: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead, purpose: []byte(purpose)}, nil
}

// Seal returns plaintext sealed, as unpadded base64url.
func (s *Sealer) Seal(_ context.Context, plaintext []byte) (string, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(s.aead.Seal(nonce, nonce, plaintext, s.purpose)), nil
}

// ErrOpen is a value that was not sealed by this purpose's key, or was changed.
var ErrOpen = errors.New("keyseal: cannot open the sealed value")

// Open returns what Seal sealed.
func (s *Sealer) Open(_ context.Context, sealed string) ([]byte, error) {
	raw, err := base64.RawURLEncoding.DecodeString(sealed)
	n := s.aead.NonceSize()
	if err != nil || len(raw) < n+s.aead.Overhead() {
		return nil, ErrOpen
	}
	plain, err := s.aead.Open(nil, raw[:n], raw[n:], s.purpose)
	if err != nil {
		return nil, ErrOpen
	}
	return plain, nil
}

// Key derives a raw 32-byte key for purpose (an HMAC key, for instance).
func Key(master []byte, purpose string) ([]byte, error) {
	if len(master) < 32 {
		return nil, errors.New("keyseal: the master key is shorter than 32 bytes")
	}
	return hkdf.Key(sha256.New, master, nil, "piivault "+purpose, 32)
}
