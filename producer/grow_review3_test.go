package producer

import (
	"context"
	"runtime"
	"testing"
	"testing/synctest"
	"time"
)

// TestReview3GrowPresizingOutsideBound: Grow sizes every fresh aggregate
// for as many records as the last one sealed full (about 410 for 100-byte
// records), but a record's charge counts only a fixed per-record overhead.
// After one full aggregate, a trickle of records (one per buffering
// deadline, as on a quiet shard) against a stalled endpoint gets an
// aggregate each, sealed at its deadline with one record and the room of
// 410: tens of KiB held per record charged under 1 KiB. The live heap
// must stay within MaxBufferedBytes + 16 MiB (BenchmarkStalledEndpoint's
// bound); here the records fit in 1 MiB of charges.
func TestReview3GrowPresizingOutsideBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const maxBytes = 1 << 20
		c := stalledClient{newCountingClient(1)}
		clk := newBubbleClock()
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
		keys := benchKeys(2000)
		data := make([]byte, benchDataSize)
		k := 0
		// One aggregate sealed full (the next record did not fit).
		for range 420 {
			if _, err := p.Put(ctx, keys[k], data); err != nil {
				t.Fatal(err)
			}
			k++
		}
		// A trickle: one record per buffering deadline.
		for range 800 {
			if _, err := p.Put(ctx, keys[k], data); err != nil {
				t.Fatal(err)
			}
			k++
			clk.Advance(DefaultRecordMaxBufferedTime)
		}
		recs, charged := p.Outstanding()
		live := liveSince()
		t.Logf("%d records charged %.2f MiB (bound %d MiB); live heap %.1f MiB", recs, float64(charged)/(1<<20), maxBytes>>20, float64(live)/(1<<20))
		if charged > maxBytes {
			t.Fatalf("charged %d > MaxBufferedBytes: the test should stay within the bound", charged)
		}
		if live > maxBytes+16<<20 {
			t.Errorf("live heap %.1f MiB exceeds MaxBufferedBytes + 16 MiB = %d MiB, for %d records charged %.2f MiB",
				float64(live)/(1<<20), (maxBytes+16<<20)>>20, recs, float64(charged)/(1<<20))
		}
		canceled, cancel := context.WithCancel(ctx)
		cancel()
		_ = p.Close(canceled)
		runtime.KeepAlive(p)
	})
}
