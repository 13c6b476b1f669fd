package producer

import (
	"context"
	"runtime"
	"testing"
	"testing/synctest"
	"weak"
)

// TestReview3SpareKeepsCallbacksAlive: an aggregate kept for reuse is
// reset only when a Put reuses it, so until then it keeps its records'
// callbacks and contexts (kr.x) alive, and whatever they refer to, after
// their outcomes are delivered and the callbacks returned. The spare's
// charge counts its data and keys, not these. After a burst and a quiet
// period the producer pins them indefinitely (nothing reuses or drops
// the spares until a Put finds no room).
func TestReview3SpareKeepsCallbacksAlive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, err := New(newCountingClient(1), "s", Config{Clock: newBubbleClock(), Logger: discardLogger(), RateLimit: 1_000_000})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		big := make([]byte, 1<<20) // what a user's callback closes over
		wp := weak.Make(&big[0])
		type ctxKey struct{}
		bigCtx := make([]byte, 1<<20) // a value in a record's context
		wc := weak.Make(&bigCtx[0])
		rctx, cancel := context.WithCancel(context.WithValue(ctx, ctxKey{}, bigCtx))
		for i := range 2 { // two records: one aggregate, kept for reuse
			b := big // a copy: the closure must not see big set to nil below
			cb := func(*Result) { _ = b[0] }
			if _, err := p.PutRecord(rctx, Record{PartitionKey: "k", Data: []byte{byte(i)}}, cb); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		synctest.Wait() // the worker has given the aggregate back
		cancel()
		big, bigCtx, rctx, cancel = nil, nil, nil, nil
		runtime.GC()
		runtime.GC()
		if wp.Value() != nil {
			t.Errorf("a delivered record's callback (and the 1 MiB it refers to) is still alive after Flush")
		}
		if wc.Value() != nil {
			t.Errorf("a delivered record's context (and the 1 MiB value in it) is still alive after Flush")
		}
		if err := p.Close(ctx); err != nil {
			t.Fatal(err)
		}
	})
}
