package orders

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"piivault/internal/apperr"
	"piivault/vault"
)

// fakeSealer stands in for Vault only where a real Vault cannot show the
// behaviour: failing or stalling a batch on purpose.
type fakeSealer struct {
	encrypt func(ctx context.Context, items []vault.Plaintext) ([]vault.Result, error)
	calls   atomic.Int64
}

func (f *fakeSealer) Encrypt(ctx context.Context, items []vault.Plaintext) ([]vault.Result, error) {
	f.calls.Add(1)
	return f.encrypt(ctx, items)
}

func (f *fakeSealer) EncryptMasked(ctx context.Context, items []vault.Plaintext) ([]vault.Result, error) {
	return nil, errors.New("not used")
}

func (f *fakeSealer) HMAC(ctx context.Context, in [][]byte) ([]vault.Result, error) {
	return nil, errors.New("not used")
}

func echo(_ context.Context, items []vault.Plaintext) ([]vault.Result, error) {
	out := make([]vault.Result, len(items))
	for i, it := range items {
		out[i].Value = "ct:" + string(it.Plaintext)
	}
	return out, nil
}

func TestBatcherGivesEachCallerItsOwnResults(t *testing.T) {
	f := &fakeSealer{encrypt: func(ctx context.Context, items []vault.Plaintext) ([]vault.Result, error) {
		time.Sleep(5 * time.Millisecond) // let callers pile up
		return echo(ctx, items)
	}}
	b := NewBatcher(f, BatchConfig{MaxItems: 32, MaxWait: 5 * time.Millisecond})
	defer b.Close()
	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := []vault.Plaintext{{Plaintext: []byte(fmt.Sprintf("a%d", i))}, {Plaintext: []byte(fmt.Sprintf("b%d", i))}}
			res, err := b.Encrypt(context.Background(), in)
			require.NoError(t, err)
			require.Equal(t, fmt.Sprintf("ct:a%d", i), res[0].Value)
			require.Equal(t, fmt.Sprintf("ct:b%d", i), res[1].Value)
		}()
	}
	wg.Wait()
	require.Less(t, f.calls.Load(), int64(100), "concurrent calls must be coalesced")
}

func TestBatcherFailedBatchFailsEachCaller(t *testing.T) {
	boom := apperr.New(apperr.VaultUnavailable, "vault is unavailable")
	f := &fakeSealer{encrypt: func(ctx context.Context, items []vault.Plaintext) ([]vault.Result, error) {
		time.Sleep(2 * time.Millisecond)
		return nil, boom
	}}
	b := NewBatcher(f, BatchConfig{MaxItems: 64, MaxWait: 5 * time.Millisecond})
	defer b.Close()
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := b.Encrypt(context.Background(), []vault.Plaintext{{Plaintext: []byte("x")}})
			if apperr.Is(err, apperr.VaultUnavailable) {
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	require.Equal(t, int64(20), failed.Load())
}

func TestBatcherCancelledCallerDoesNotPoisonTheBatch(t *testing.T) {
	release := make(chan struct{})
	var seen sync.Map
	f := &fakeSealer{encrypt: func(ctx context.Context, items []vault.Plaintext) ([]vault.Result, error) {
		<-release
		for _, it := range items {
			seen.Store(string(it.Plaintext), true)
		}
		return echo(ctx, items)
	}}
	b := NewBatcher(f, BatchConfig{MaxItems: 64, MaxWait: 20 * time.Millisecond, InFlight: 1})
	defer b.Close()

	// First call occupies the only in-flight slot.
	first := make(chan error, 1)
	go func() {
		_, err := b.Encrypt(context.Background(), []vault.Plaintext{{Plaintext: []byte("first")}})
		first <- err
	}()
	time.Sleep(40 * time.Millisecond)

	// These queue behind it; one gives up before its batch is sent.
	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := make(chan error, 1)
	go func() { _, err := b.Encrypt(ctx, []vault.Plaintext{{Plaintext: []byte("cancelled")}}); gaveUp <- err }()
	kept := make(chan []vault.Result, 1)
	go func() {
		res, err := b.Encrypt(context.Background(), []vault.Plaintext{{Plaintext: []byte("kept")}})
		require.NoError(t, err)
		kept <- res
	}()
	time.Sleep(10 * time.Millisecond)
	cancel()
	require.Error(t, <-gaveUp)
	close(release)

	require.NoError(t, <-first)
	res := <-kept
	require.Equal(t, "ct:kept", res[0].Value)
	_, sent := seen.Load("cancelled")
	require.False(t, sent, "a cancelled caller's item must not be sent")
}

func TestBatcherPerItemErrorsStayWithTheirCaller(t *testing.T) {
	f := &fakeSealer{encrypt: func(ctx context.Context, items []vault.Plaintext) ([]vault.Result, error) {
		time.Sleep(2 * time.Millisecond)
		out, _ := echo(ctx, items)
		for i, it := range items {
			if string(it.Plaintext) == "bad" {
				out[i] = vault.Result{Err: errors.New("rejected")}
			}
		}
		return out, nil
	}}
	b := NewBatcher(f, BatchConfig{MaxItems: 64, MaxWait: 5 * time.Millisecond})
	defer b.Close()
	var wg sync.WaitGroup
	for _, p := range []string{"good", "bad", "fine"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := b.Encrypt(context.Background(), []vault.Plaintext{{Plaintext: []byte(p)}})
			require.NoError(t, err)
			if p == "bad" {
				require.Error(t, res[0].Err)
			} else {
				require.NoError(t, res[0].Err)
				require.Equal(t, "ct:"+p, res[0].Value)
			}
		}()
	}
	wg.Wait()
}

func TestBatcherClosedRefuses(t *testing.T) {
	b := NewBatcher(&fakeSealer{encrypt: echo}, BatchConfig{})
	b.Close()
	_, err := b.Encrypt(context.Background(), []vault.Plaintext{{Plaintext: []byte("x")}})
	require.Equal(t, apperr.VaultUnavailable, apperr.CodeOf(err))
}
