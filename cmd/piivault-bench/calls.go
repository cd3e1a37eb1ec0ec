package main

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net/http"
	"sync"

	"github.com/redis/go-redis/v9"

	"piivault/orders"
	"piivault/vault"
)

// The calls-alone series: at concurrency 1, the Vault calls and Redis
// round trips a request makes inside serve, in the same order and side by
// side where serve makes them side by side, from this process, with no
// HTTP, no handler and no middleware around them. Its latency is the floor
// of a concurrency-1 latency goal with piivault's calls as they are: what
// serve would answer in if its own work cost nothing. Each Redis round trip
// here is a plain command (a webhook's purge, a small script), cheaper for
// Redis than the scripts serve runs, so the floor is, if anything, low. A
// webhook's series makes fewer calls than serve does (see webhookCalls).

// ingestCalls is one order's calls: the IP block and the storefront key
// (one pipeline); the blind index and request HMACs, the encryption, the
// masked copy's encryption and the audit entry's seal, side by side (four
// Vault calls, four keys); the store; the entry's append.
func (b *bench) ingestCalls(r orders.Request) error {
	pipe := b.rdb.Pipeline()
	pipe.Exists(b.ctx, "calls:block")
	pipe.Get(b.ctx, "calls:key")
	if _, err := pipe.Exec(b.ctx); err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	plain, _ := json.Marshal(r.Shipping)
	masked, _ := json.Marshal(r.Shipping.Masked())
	canon, _ := json.Marshal(r)
	ad := []byte(r.OrderID)
	entry := sha256.Sum256(append([]byte("store\x00"), ad...))
	var enc []vault.Result
	err := sideBySide(
		func() (err error) {
			enc, err = b.svc.Encrypt(b.ctx, []vault.Plaintext{{Plaintext: plain, AssociatedData: ad}})
			return err
		},
		func() error {
			_, err := b.svc.EncryptMasked(b.ctx, []vault.Plaintext{{Plaintext: masked, AssociatedData: ad}})
			return err
		},
		func() error {
			_, err := b.svc.HMAC(b.ctx, [][]byte{[]byte("email\x00" + r.Shipping.Email), append([]byte("request\x00"), canon...)})
			return err
		},
		b.sealCall(entry),
	)
	if err != nil {
		return err
	}
	if err := b.rdb.Set(b.ctx, "calls:"+r.OrderID, enc[0].Value, orders.MaxRetention).Err(); err != nil {
		return err
	}
	return b.rdb.RPush(b.ctx, "calls:trail", entry[:]).Err()
}

// revealCalls is one reveal's calls: the order's ciphertext with the IP
// block and the lockdown (one pipeline); the decrypt with the member's
// token and the entry's seal, side by side; the entry's append with the
// access note and the hourly count (one pipeline).
func (b *bench) revealCalls(id, ct string) error {
	pipe := b.rdb.Pipeline()
	pipe.Exists(b.ctx, "calls:block")
	pipe.Get(b.ctx, "calls:lockdown")
	pipe.Get(b.ctx, "bare:"+id)
	if _, err := pipe.Exec(b.ctx); err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	entry := sha256.Sum256([]byte("reveal\x00" + id))
	err := sideBySide(
		func() error {
			_, err := b.svc.Decrypt(b.ctx, b.token, ct, []byte(id))
			return err
		},
		b.sealCall(entry),
	)
	if err != nil {
		return err
	}
	pipe = b.rdb.Pipeline()
	pipe.RPush(b.ctx, "calls:trail", entry[:])
	pipe.Incr(b.ctx, "calls:count")
	_, err = pipe.Exec(b.ctx)
	return err
}

// webhookCalls is the fewest calls a shipping webhook that purges an
// order and audits it can make: the signature's HMAC (in this process);
// the purge's script (callsGone) and the entry's seal side by side; the
// sealed entry's append. No answer that reports a change leaves before its
// entry is sealed and appended, so the seal and one round trip after it
// are the least any webhook handler waits for. serve also claims the
// event, reads the order before its purge script and marks the event done
// (three more round trips), left out here: this floor is low.
func (b *bench) webhookCalls(id string) error {
	if err := signedShipping("calls-"+id, id); err != nil {
		return err
	}
	entry := sha256.Sum256([]byte("purge\x00" + id))
	err := sideBySide(
		func() error {
			return callsGone.Run(b.ctx, b.rdb, []string{"calls:" + id, "calls:gone:" + id}, "shipped", orders.MaxRetention.Milliseconds()).Err()
		},
		b.sealCall(entry),
	)
	if err != nil {
		return err
	}
	return b.rdb.RPush(b.ctx, "calls:trail", entry[:]).Err()
}

// callsGone is the webhook floor's purge: bareGone's work whether or not
// the key is there (both floor series purge the same orders), so that the
// second series does not take bareGone's shorter way out.
var callsGone = redis.NewScript(`
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return 1
`)

// floorSeriesOf is a phase's two floor series at concurrency 1, in the
// order levelOf reads them: its calls alone, then its calls and a stub's
// hop (calls, then hop: one round trip to serve that does nothing). The
// second puts back serve's HTTP hop, answered by a stub handler: no
// request can be answered in less than its calls and one round trip to
// the server, so it is a floor too, and the closer one. The stub's request
// is smaller than an order's or a reveal's and its answer carries no PII,
// so if anything this floor is low as well.
func floorSeriesOf(phase string, calls func(i int) error, hop func() error) []named {
	return []named{
		{phase + "'s calls alone", calls},
		{phase + "'s calls and a stub's hop", func(i int) error {
			if err := calls(i); err != nil {
				return err
			}
			return hop()
		}},
	}
}

// healthz is one GET /healthz: a round trip to serve with no handler work.
func (b *bench) healthz() error {
	return expect(b.ctx, b.hc, "GET", b.st.base+"/healthz", "", nil, http.StatusOK, nil)
}

// sealCall is an entry's seal as a call for sideBySide.
func (b *bench) sealCall(entry [sha256.Size]byte) func() error {
	return func() error {
		_, err := b.svc.Seal(b.ctx, [][]byte{entry[:]})
		return err
	}
}

// sideBySide runs the first call in this goroutine and the others in their
// own, as serve does, and returns the first error.
func sideBySide(calls ...func() error) error {
	errs := make([]error, len(calls))
	var wg sync.WaitGroup
	for i := 1; i < len(calls); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = calls[i]()
		}()
	}
	errs[0] = calls[0]()
	wg.Wait()
	return errors.Join(errs...)
}
