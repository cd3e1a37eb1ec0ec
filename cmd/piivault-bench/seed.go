package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/brianvoe/gofakeit/v7"

	"piivault/audit"
	"piivault/orders"
)

// fakeOrder returns order i of prefix: realistic and entirely invented.
// It never uses real data: every field comes from gofakeit (seeded by i, so
// the same i is the same order), emails are on example.com and phones in
// the 555 range.
func fakeOrder(prefix string, i int) orders.Request {
	f := gofakeit.New(uint64(i) + 1)
	first, last := f.FirstName(), f.LastName()
	country := []string{"US", "GB", "DE", "FR", "NL", "CA", "AU", "SE"}[f.IntN(8)]
	return orders.Request{
		OrderID:    fmt.Sprintf("%s-%07d", prefix, i),
		PaymentRef: "pi_fake_" + strings.ReplaceAll(f.UUID(), "-", ""),
		Shipping: orders.Shipping{
			Name:  first + " " + last,
			Email: strings.ToLower(first+"."+last) + fmt.Sprintf("%d@example.com", i),
			Phone: fmt.Sprintf("+1555%07d", f.IntN(10_000_000)),
			Address: orders.Address{
				Line1:      f.Street(),
				City:       f.City(),
				State:      f.StateAbr(),
				PostalCode: f.Zip(),
				Country:    country,
			},
		},
	}
}

// seedStore stores n fake orders straight through store (audited like any
// store, as actor "bench"), c at a time. The
// benchmark's sweep needs this: a million orders at the store's speed, with
// a one-second retention no server would accept. It stops at the first error.
func seedStore(ctx context.Context, store *orders.Store, prefix string, n, c int) (latency, error) {
	return measure(n, c, func(i int) error {
		_, _, err := store.StoreAudited(ctx, fakeOrder(prefix, i), audit.Entry{Actor: "bench"})
		return err
	})
}

// cmdSeed: `seed --fake N` stores N fake orders in a running piivault as a
// storefront does, through POST /v1/orders with a storefront API key, so
// each one is validated, encrypted and audited like a real order.
func cmdSeed(ctx context.Context, e *env) error {
	fs := flag.NewFlagSet("seed", flag.ContinueOnError)
	n := fs.Int("fake", 0, "number of fake orders to store (required; only fake data is ever seeded)")
	prefix := fs.String("prefix", "", "order id prefix (default fake-<time>, so runs do not collide)")
	c := fs.Int("concurrency", 8, "requests in flight")
	if done, err := e.parseFlags(fs); done || err != nil {
		return err
	}
	if *n <= 0 {
		return errors.New("seed: want --fake N with N > 0 (only fake data is ever seeded)")
	}
	if *c < 1 || *c > 1024 {
		return errors.New("seed: --concurrency wants a number from 1 to 1024")
	}
	if *prefix == "" {
		*prefix = "fake-" + strconv.FormatInt(time.Now().Unix(), 36)
	}
	if !orders.ValidOrderID(*prefix) {
		return errors.New("seed: --prefix must be letters, digits and . _ : -")
	}
	base := strings.TrimRight(e.getenv("PIIVAULT_URL"), "/")
	if base == "" {
		base = "http://127.0.0.1:8080"
	}
	key := e.getenv("PIIVAULT_API_KEY")
	if key == "" {
		return errors.New("seed: PIIVAULT_API_KEY: want a storefront API key (piivault clients add NAME)")
	}
	hc := &http.Client{Timeout: 30 * time.Second}
	var created, existed atomic.Int64
	lat, err := measure(*n, *c, func(i int) error {
		body, _ := json.Marshal(fakeOrder(*prefix, i))
		for {
			status, h, raw, err := send(ctx, hc, "POST", base+"/v1/orders", key, body, nil)
			if err != nil {
				return err
			}
			switch status {
			case http.StatusCreated:
				created.Add(1)
				return nil
			case http.StatusOK: // the same order was already stored
				existed.Add(1)
				return nil
			case http.StatusTooManyRequests:
				if err := sleep(ctx, retryAfter(h)); err != nil {
					return err
				}
			default:
				return fmt.Errorf("POST %s/v1/orders: status %d: %s", base, status, raw)
			}
		}
	})
	fmt.Fprintf(e.stdout, "stored %d fake orders (%s-…), %d were already there; %.0f orders/s\n",
		created.Load(), *prefix, existed.Load(), lat.PerSecond)
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	return nil
}

// retryAfter reads a 429's Retry-After in seconds (one second if absent).
func retryAfter(h http.Header) time.Duration {
	if s, err := strconv.Atoi(h.Get("Retry-After")); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	return time.Second
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
