package orders

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/require"

	"piivault/internal/apperr"
	"piivault/internal/testenv"
	"piivault/vault"
)

// counted passes every call to a real Vault and counts the Vault calls
// (batches) it made.
type counted struct {
	Sealer
	calls atomic.Int64
}

func (c *counted) Encrypt(ctx context.Context, items []vault.Plaintext) ([]vault.Result, error) {
	c.calls.Add(1)
	return c.Sealer.Encrypt(ctx, items)
}

// held passes calls to a real Vault, but holds the first one until open is
// closed: while it is held the batcher's only Vault call is busy, so the
// callers after it pile up into one batch.
type held struct {
	Sealer
	entered chan struct{} // closed when the first call reaches Vault
	open    chan struct{}
	once    sync.Once
}

func newHeld(next Sealer) *held {
	return &held{Sealer: next, entered: make(chan struct{}), open: make(chan struct{})}
}

func (h *held) Encrypt(ctx context.Context, items []vault.Plaintext) ([]vault.Result, error) {
	first := false
	h.once.Do(func() { first = true; close(h.entered) })
	if first {
		<-h.open
	}
	return h.Sealer.Encrypt(ctx, items)
}

// answer is one caller's outcome, handed to the test goroutine: only the
// test goroutine asserts.
type answer struct {
	caller int
	res    []vault.Result
	err    error
}

// within receives from ch, failing the test if nothing comes in time (a
// batcher that loses a caller would otherwise hang the test).
func within[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: no answer within 30s", what)
		panic("unreachable")
	}
}

// requireOwnPlaintexts decrypts ciphertexts with Vault's root token, each
// under the associated data of the item it is said to come from: a
// ciphertext handed to the wrong caller, or made from another caller's
// item, does not decrypt back to that item's plaintext.
func requireOwnPlaintexts(t *testing.T, env *testenv.Env, key string, ciphertexts []string, items []vault.Plaintext) {
	t.Helper()
	c, err := vault.New(context.Background(), vault.Config{Addr: env.VaultAddr, Token: env.RootToken, TransitKey: key}, testenv.Logger())
	require.NoError(t, err)
	in := make([]vault.Ciphertext, len(ciphertexts))
	for i, ct := range ciphertexts {
		in[i] = vault.Ciphertext{Ciphertext: ct, AssociatedData: items[i].AssociatedData}
	}
	out, err := c.DecryptBatch(context.Background(), env.RootToken, in)
	require.NoError(t, err)
	for i, p := range out {
		require.NoError(t, p.Err, "ciphertext %d was not made from its item", i)
		require.Equal(t, string(items[i].Plaintext), p.Value, "ciphertext %d", i)
	}
}

func TestBatcherGivesEachCallerItsOwnResults(t *testing.T) {
	env := testenv.Shared(t)
	spy := &counted{Sealer: env.Service}
	b := NewBatcher(spy, BatchConfig{MaxItems: 32, MaxWait: 5 * time.Millisecond})
	defer b.Close()
	const callers = 100
	items := func(i int) []vault.Plaintext {
		ad := []byte(fmt.Sprintf("ord-%03d", i)) // each caller binds its items to its own order id
		return []vault.Plaintext{{Plaintext: []byte(fmt.Sprintf("a%d", i)), AssociatedData: ad},
			{Plaintext: []byte(fmt.Sprintf("b%d", i)), AssociatedData: ad}}
	}
	answers := make(chan answer, callers)
	for i := 0; i < callers; i++ {
		go func() {
			res, err := b.Encrypt(context.Background(), items(i))
			answers <- answer{i, res, err}
		}()
	}
	got := make([][]vault.Result, callers)
	for range callers {
		a := within(t, answers, "a caller")
		require.NoError(t, a.err, "caller %d", a.caller)
		got[a.caller] = a.res
	}
	var cts []string
	var sent []vault.Plaintext
	for i, res := range got {
		require.Len(t, res, 2, "caller %d gets exactly its own two results", i)
		for _, r := range res {
			require.NoError(t, r.Err, "caller %d", i)
			cts = append(cts, r.Value)
		}
		sent = append(sent, items(i)...)
	}
	requireOwnPlaintexts(t, env, env.Service.KeyName(), cts, sent)
	require.Less(t, spy.calls.Load(), int64(callers), "concurrent calls must be coalesced")
}

// ensureRSAKey makes a transit key without AEAD in the shared Vault: real
// Vault then rejects, item by item, any item that carries associated data
// and encrypts the others in the same batch.
func ensureRSAKey(t *testing.T, env *testenv.Env) string {
	t.Helper()
	const name = "batcher-rsa"
	cfg := vaultapi.DefaultConfig()
	cfg.Address = env.VaultAddr
	c, err := vaultapi.NewClient(cfg)
	require.NoError(t, err)
	c.SetToken(env.RootToken)
	_, err = c.Logical().Write("transit/keys/"+name, map[string]any{"type": "rsa-2048"})
	require.NoError(t, err)
	return name
}

func TestBatcherPerItemErrorsStayWithTheirCaller(t *testing.T) {
	env := testenv.Shared(t)
	key := ensureRSAKey(t, env)
	rsa, err := vault.New(context.Background(), vault.Config{Addr: env.VaultAddr, Token: env.RootToken, TransitKey: key}, testenv.Logger())
	require.NoError(t, err)
	gate := newHeld(rsa)
	b := NewBatcher(gate, BatchConfig{MaxItems: 64, MaxWait: 5 * time.Millisecond, InFlight: 1})
	defer b.Close()
	opened := sync.OnceFunc(func() { close(gate.open) })
	defer opened()

	ok := func(s string) vault.Plaintext { return vault.Plaintext{Plaintext: []byte(s)} }
	// Associated data on a non-AEAD key: Vault refuses that item alone.
	bad := func(s string) vault.Plaintext {
		return vault.Plaintext{Plaintext: []byte(s), AssociatedData: []byte("ord-x")}
	}
	callers := [][]vault.Plaintext{
		{ok("first")}, // held in Vault while the others queue
		{ok("good")},
		{bad("bad")},
		{ok("mixed-0"), bad("mixed-1"), ok("mixed-2")},
		{bad("all-bad-0"), bad("all-bad-1")},
		{ok("fine-0"), ok("fine-1")},
	}
	answers := make(chan answer, len(callers))
	call := func(i int) {
		go func() {
			res, err := b.Encrypt(context.Background(), callers[i])
			answers <- answer{i, res, err}
		}()
	}
	call(0)
	within(t, gate.entered, "the first batch")
	for i := 1; i < len(callers); i++ {
		call(i)
	}
	// The loop holds one caller while it waits for the busy Vault call;
	// the rest wait in the queue. Then all of them go in one batch.
	require.Eventually(t, func() bool { return len(b.enc.queue) == len(callers)-2 }, 30*time.Second, time.Millisecond)
	opened()

	got := make([][]vault.Result, len(callers))
	for range callers {
		a := within(t, answers, "a caller")
		require.NoError(t, a.err, "caller %d: one item's refusal is not the batch's", a.caller)
		got[a.caller] = a.res
	}
	var cts []string
	var sent []vault.Plaintext
	for i, items := range callers {
		res := got[i]
		require.Len(t, res, len(items), "caller %d", i)
		for j, it := range items {
			if it.AssociatedData != nil {
				require.Equal(t, apperr.Invalid, apperr.CodeOf(res[j].Err), "caller %d item %d is refused by Vault: %v", i, j, res[j].Err)
				require.Contains(t, res[j].Err.Error(), "associated_data")
				require.Empty(t, res[j].Value)
				continue
			}
			require.NoError(t, res[j].Err, "caller %d item %d", i, j)
			cts, sent = append(cts, res[j].Value), append(sent, it)
		}
	}
	requireOwnPlaintexts(t, env, key, cts, sent)
}

// A key the service may not use (never created, so not in its policy):
// Vault refuses the whole batch, and every caller in it gets that refusal.
func TestBatcherFailedBatchFailsEachCaller(t *testing.T) {
	env := testenv.Shared(t)
	missing, err := vault.New(context.Background(), vault.Config{Addr: env.VaultAddr, RoleID: env.RoleID,
		SecretID: env.SecretID, TransitKey: "no-such-key"}, testenv.Logger())
	require.NoError(t, err)
	gate := newHeld(missing)
	b := NewBatcher(gate, BatchConfig{MaxItems: 64, MaxWait: 5 * time.Millisecond, InFlight: 1})
	defer b.Close()
	opened := sync.OnceFunc(func() { close(gate.open) })
	defer opened()

	const callers = 20
	answers := make(chan answer, callers)
	call := func(i int) {
		go func() {
			res, err := b.Encrypt(context.Background(), []vault.Plaintext{{Plaintext: []byte(fmt.Sprintf("x%d", i))}})
			answers <- answer{i, res, err}
		}()
	}
	call(0)
	within(t, gate.entered, "the first batch")
	for i := 1; i < callers; i++ {
		call(i)
	}
	require.Eventually(t, func() bool { return len(b.enc.queue) == callers-2 }, 30*time.Second, time.Millisecond)
	opened()
	for range callers {
		a := within(t, answers, "a caller")
		require.Equal(t, apperr.VaultUnavailable, apperr.CodeOf(a.err), "caller %d: %v", a.caller, a.err)
		require.Nil(t, a.res, "caller %d", a.caller)
	}
}

// fakeSealer stands in for Vault only where a real Vault cannot show the
// behaviour: a Vault call that hangs until the test lets it go.
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

func TestBatcherCancelledCallerDoesNotPoisonTheBatch(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	var seen sync.Map
	f := &fakeSealer{encrypt: func(ctx context.Context, items []vault.Plaintext) ([]vault.Result, error) {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
		for _, it := range items {
			seen.Store(string(it.Plaintext), true)
		}
		return echo(ctx, items)
	}}
	b := NewBatcher(f, BatchConfig{MaxItems: 64, MaxWait: 20 * time.Millisecond, InFlight: 1})
	defer b.Close()
	released := sync.OnceFunc(func() { close(release) })
	defer released() // before Close, which waits for the hanging call

	// The first call occupies the only in-flight slot.
	first := make(chan error, 1)
	go func() {
		_, err := b.Encrypt(context.Background(), []vault.Plaintext{{Plaintext: []byte("first")}})
		first <- err
	}()
	within(t, entered, "the first batch")

	// These queue behind it; one gives up before its batch is sent.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	gaveUp := make(chan error, 1)
	go func() { _, err := b.Encrypt(ctx, []vault.Plaintext{{Plaintext: []byte("cancelled")}}); gaveUp <- err }()
	kept := make(chan answer, 1)
	go func() {
		res, err := b.Encrypt(context.Background(), []vault.Plaintext{{Plaintext: []byte("kept")}})
		kept <- answer{0, res, err}
	}()
	// The loop holds one of the two while it waits for the slot; the other
	// waits in the queue.
	require.Eventually(t, func() bool { return len(b.enc.queue) == 1 }, 30*time.Second, time.Millisecond)
	cancel()
	require.Equal(t, apperr.VaultUnavailable, apperr.CodeOf(within(t, gaveUp, "the cancelled caller")))
	released()

	require.NoError(t, within(t, first, "the first caller"))
	k := within(t, kept, "the kept caller")
	require.NoError(t, k.err)
	require.Equal(t, "ct:kept", k.res[0].Value)
	_, sent := seen.Load("cancelled")
	require.False(t, sent, "a cancelled caller's item must not be sent")
}

func TestBatcherClosedRefuses(t *testing.T) {
	f := &fakeSealer{encrypt: echo}
	b := NewBatcher(f, BatchConfig{})
	b.Close()
	_, err := b.Encrypt(context.Background(), []vault.Plaintext{{Plaintext: []byte("x")}})
	require.Equal(t, apperr.VaultUnavailable, apperr.CodeOf(err))
	require.Zero(t, f.calls.Load(), "a closed batcher asks nobody")
}

// While a batch is on its way to Vault, a newcomer does not take the other
// Vault call for itself: it joins the next batch with whoever comes after
// it. (Taking it alone made every other call under load a one-item call.)
func TestBatcherNewcomersJoinABatchWhileOneIsInFlight(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	var mu sync.Mutex
	var sizes []int
	f := &fakeSealer{encrypt: func(ctx context.Context, items []vault.Plaintext) ([]vault.Result, error) {
		if string(items[0].Plaintext) == "first" {
			entered <- struct{}{}
			<-release
		} else {
			mu.Lock()
			sizes = append(sizes, len(items))
			mu.Unlock()
		}
		return echo(ctx, items)
	}}
	// MaxItems 2: the newcomers' batch goes as soon as both are in it.
	b := NewBatcher(f, BatchConfig{MaxItems: 2, MaxWait: time.Minute})
	defer b.Close()
	released := sync.OnceFunc(func() { close(release) })
	defer released()

	first := make(chan error, 1)
	go func() {
		_, err := b.Encrypt(context.Background(), []vault.Plaintext{{Plaintext: []byte("first")}})
		first <- err
	}()
	within(t, entered, "the first call") // in flight, and the second Vault call free

	answers := make(chan answer, 2)
	for i, p := range []string{"a", "b"} {
		go func() {
			res, err := b.Encrypt(context.Background(), []vault.Plaintext{{Plaintext: []byte(p)}})
			answers <- answer{i, res, err}
		}()
	}
	for range 2 {
		a := within(t, answers, "a newcomer")
		require.NoError(t, a.err)
		require.Equal(t, "ct:"+[]string{"a", "b"}[a.caller], a.res[0].Value, "each newcomer gets its own result")
	}
	mu.Lock()
	require.Equal(t, []int{2}, sizes, "the two newcomers share one Vault call")
	mu.Unlock()
	released()
	require.NoError(t, within(t, first, "the first caller"))
}
