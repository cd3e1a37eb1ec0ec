package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// maxSecretFile bounds what NAME_FILE may hold: a secret is a line, and a
// path such as /dev/zero must stop start-up, not fill the memory.
const maxSecretFile = 64 << 10

// secretFiles resolves the NAME_FILE variants of the secret variables
// (Docker and Kubernetes secrets, systemd's LoadCredential): NAME takes the
// content of the file NAME_FILE names, trailing newlines trimmed. It
// returns getenv with those values in place, so loadConfig reads a secret
// the same way wherever it came from.
//
// Errors, each a *configError naming one variable: NAME and NAME_FILE both
// set (which one is meant is a guess piivault does not make); NAME_FILE
// unreadable, larger than 64 KiB, or empty once the newline is trimmed.
// The files are read once, here, and every one of them is checked even
// when the command at hand would not use that secret.
func secretFiles(getenv func(string) string) (func(string) string, error) {
	names := [...]string{
		"VAULT_TOKEN",
		"PIIVAULT_VAULT_SECRET_ID",
		"STRIPE_WEBHOOK_SECRET",
		"SHOPIFY_WEBHOOK_SECRET",
		"EASYPOST_WEBHOOK_SECRET",
		"EASYPOST_API_KEY",
		"PIIVAULT_WEBHOOK_SECRET",
		"PIIVAULT_INBOUND_SECRET",
	}
	fromFile := map[string]string{}
	for _, name := range names {
		path := getenv(name + "_FILE")
		if path == "" {
			continue
		}
		if getenv(name) != "" {
			return nil, &configError{name, fmt.Sprintf("set %s or %s_FILE, not both", name, name)}
		}
		v, err := readSecretFile(path)
		if err != nil {
			return nil, &configError{name + "_FILE", err.Error()}
		}
		fromFile[name] = v
	}
	if len(fromFile) == 0 {
		return getenv, nil
	}
	return func(k string) string {
		if v, ok := fromFile[k]; ok {
			return v
		}
		return getenv(k)
	}, nil
}

// readSecretFile returns the content of path without its trailing newlines.
// Its errors are one line that names the path and never the content.
func readSecretFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("cannot read %q: %s", path, pathReason(err))
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return "", fmt.Errorf("cannot read %q: %s", path, pathReason(err))
	}
	if len(b) > maxSecretFile {
		return "", fmt.Errorf("%q is larger than 64 KiB: not a secret", path)
	}
	v := strings.TrimRight(string(b), "\r\n")
	if v == "" {
		return "", fmt.Errorf("%q is empty", path)
	}
	return v, nil
}

// pathReason is the reason of a *fs.PathError (its path is named by the
// caller already).
func pathReason(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
