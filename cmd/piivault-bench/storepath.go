package main

import (
	"fmt"
	"runtime"
	"sync/atomic"

	"piivault/audit"
	"piivault/orders"
)

// The store path's CPU: serve's CPU per stored order has a floor that no
// change to its HTTP side can lower, the work of storing the order itself.
// storePath measures it in this process: StoreAudited, the call serve's
// ingest handler makes, on a store built from the same parts as serve's
// (the same batcher settings, an audit trail sealed with the service's
// identity, a Redis pipe its callers share; serve's pipe also carries its
// middleware's reads, and its Redis client is its own), with no HTTP,
// handler or middleware around it. Added to a GET /healthz's CPU (serve
// answering from a stub), it is the floor of the goal's figure: what serve
// would spend per order were everything but the store path as cheap as a
// stub.
// It leaves out serve's block and key checks and its anchor ticker, so if
// anything it is low. The orders it stores stay held, as the profile's
// other phases' do.

// storePath returns an operation that stores one new order through serve's
// store path, and a function that shuts that path down. Orders take
// turns from a small set of fake ones under fresh ids, so that no order is
// generated while the profile records.
func (b *bench) storePath() (op func() error, stop func(), err error) {
	// serve's default batching, which the bench's serve runs with (it sets
	// neither PIIVAULT_BATCH_SIZE nor PIIVAULT_BATCH_WAIT).
	batcher := orders.NewBatcher(b.svc, orders.BatchConfig{MaxItems: orders.DefaultBatchItems, MaxWait: orders.DefaultBatchWait})
	trail := audit.NewLog(b.rdb, b.svc, b.svc)
	store, err := orders.NewStore(b.rdb, batcher, b.svc, trail, orders.Config{Retention: orders.MaxRetention})
	if err != nil {
		batcher.Close()
		return nil, nil, err
	}
	pool := make([]orders.Request, 256)
	for i := range pool {
		pool[i] = fakeOrder("store", i)
	}
	runtime.GC() // the phases before leave garbage: not this phase's to collect
	var next atomic.Int64
	op = func() error {
		i := int(next.Add(1))
		r := pool[i%len(pool)]
		r.OrderID = fmt.Sprintf("store-%08d", i)
		_, res, err := store.StoreAudited(b.ctx, r, audit.Entry{Actor: "client:bench", IP: "127.0.0.1"})
		if err == nil && res != orders.Created {
			err = fmt.Errorf("order %s: not stored afresh (store result %d)", r.OrderID, res)
		}
		return err
	}
	return op, batcher.Close, nil
}
