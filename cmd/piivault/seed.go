package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/brianvoe/gofakeit/v7"

	"piivault/orders"
)

// fakeOrder returns a realistic, entirely invented order. It never uses
// real data: every field comes from gofakeit, emails on example domains.
func fakeOrder(f *gofakeit.Faker, prefix string, i int) orders.Request {
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

// seedOrders stores n fake orders through the real store with the given
// concurrency and returns how many were stored.
func seedOrders(ctx context.Context, store *orders.Store, prefix string, n, concurrency int) (int64, error) {
	var stored atomic.Int64
	var firstErr error
	var mu sync.Mutex
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < concurrency; w++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			f := gofakeit.New(seed)
			for i := range next {
				if _, _, err := store.Store(ctx, fakeOrder(f, prefix, i)); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					continue
				}
				stored.Add(1)
			}
		}(uint64(w + 1))
	}
	for i := 0; i < n && ctx.Err() == nil; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return stored.Load(), firstErr
}

func cmdSeed(ctx context.Context, e *env) error {
	fs := flag.NewFlagSet("seed", flag.ContinueOnError)
	n := fs.Int("fake", 0, "number of fake orders to store")
	prefix := fs.String("prefix", "fake", "order id prefix")
	if _, err := parse(fs, e.args, false); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	if *n <= 0 {
		return errors.New("seed: want --fake N with N > 0 (only fake data is ever seeded)")
	}
	a, err := e.service(ctx)
	if err != nil {
		return err
	}
	defer a.close()
	stored, err := seedOrders(ctx, a.store, *prefix, *n, 32)
	fmt.Fprintf(e.stdout, "stored %d fake orders\n", stored)
	return err
}
