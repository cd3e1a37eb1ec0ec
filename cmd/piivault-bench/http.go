package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// send makes one request to piivault's API and returns its status, headers
// and body; token, when given, is the bearer credential.
func send(ctx context.Context, hc *http.Client, method, url, token string, body []byte, hdr map[string]string) (int, http.Header, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, raw, err
}

// expect sends a request and checks the status; into, when given, gets the
// JSON body.
func expect(ctx context.Context, hc *http.Client, method, url, token string, body []byte, want int, hdr map[string]string, into ...any) error {
	status, _, raw, err := send(ctx, hc, method, url, token, body, hdr)
	if err != nil {
		return err
	}
	if status != want {
		return fmt.Errorf("%s %s: status %d, want %d: %s", method, url, status, want, raw)
	}
	if len(into) > 0 {
		return json.Unmarshal(raw, into[0])
	}
	return nil
}

// waitReady polls url until it answers 200, for up to 30 seconds, or until
// exited is closed (the server gave up).
func waitReady(ctx context.Context, hc *http.Client, url string, exited <-chan struct{}) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if status, _, _, err := send(ctx, hc, "GET", url, "", nil, nil); err == nil && status == http.StatusOK {
			return nil
		}
		select {
		case <-exited:
			return errors.New("exited before it was ready")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return errors.New("not ready after 30s")
}
