package producer

import (
	"context"
	"runtime"
	"testing"
	"testing/synctest"
	"time"
)

// TestKeptAggregateNotReusedByQuietShard: aggregates kept for reuse after
// a burst are charged (spare bytes) until reused; one reused for a
// record on a quiet shard stopped being charged while its room, sized
// for a full aggregate, held that one record. A trickle against a
// stalled endpoint then held several times the memory it was charged.
// Kept aggregates go only to a shard that is filling (the Put that
// sealed a full one), so whatever the producer holds stays charged.
func TestKeptAggregateNotReusedByQuietShard(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const maxBytes = 16 << 20
		c := &gateClient{countingClient: newCountingClient(1)}
		clk := newBubbleClock()
		keys := benchKeys(24_000)
		data := make([]byte, benchDataSize)
		liveSince := liveHeap()
		p, err := New(c, "s", Config{
			Clock:            clk,
			RateLimit:        1_000_000,
			Logger:           discardLogger(),
			MaxBufferedBytes: maxBytes,
			RecordTTL:        time.Hour,
			RequestTimeout:   time.Hour,
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		k := 0
		for range 20_000 { // a burst, delivered: its aggregates are kept
			if _, err := p.Put(ctx, keys[k], data); err != nil {
				t.Fatal(err)
			}
			k++
		}
		if err := p.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		synctest.Wait() // the call's aggregates come back just after Flush
		c.closed.Store(true)
		for range 3_000 { // then a trickle, one record per buffering deadline
			if _, err := p.Put(ctx, keys[k], data); err != nil {
				t.Fatal(err)
			}
			k++
			clk.Advance(DefaultRecordMaxBufferedTime)
		}
		recs, held := p.Outstanding()
		spare := p.spareBytes.Load()
		live := liveSince()
		charged := int64(held) + spare
		t.Logf("%d records charged %.2f MiB, kept aggregates %.2f MiB; live heap %.2f MiB", recs, float64(held)/(1<<20), float64(spare)/(1<<20), float64(live)/(1<<20))
		if live > charged+2<<20 {
			t.Errorf("live heap %.2f MiB is over what is charged (%.2f MiB) + 2 MiB", float64(live)/(1<<20), float64(charged)/(1<<20))
		}
		canceled, cancel := context.WithCancel(ctx)
		cancel()
		_ = p.Close(canceled)
		runtime.KeepAlive(p)
	})
}
