package producer

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"testing/synctest"
	"time"
)

// TestStalledEndpointOutcomesByTTL: against an endpoint that never
// answers, every record gets ErrRecordExpired no later than its TTL after
// Put returned, while Put keeps waiting for room. The bubble's clock moves
// only when every goroutine waits, so this holds on any machine.
func TestStalledEndpointOutcomesByTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ttl = 2 * time.Second
		c := stalledClient{newCountingClient(benchShards)}
		p, err := New(c, "s", Config{
			RateLimit:        1_000_000,
			Logger:           discardLogger(),
			MaxBufferedBytes: MaxRecordSize, // about 1,500 records of 100 bytes
			RecordTTL:        ttl,
			RequestTimeout:   ttl / 3,
		})
		if err != nil {
			t.Fatal(err)
		}
		keys := benchKeys(1000)
		n := 20_000
		if testing.Short() {
			n = 5_000
		}
		late := 0
		var latest time.Duration
		outcomes := 0
		for i := 0; i < n; i++ {
			var put time.Time
			_, err := p.PutRecord(context.Background(), Record{PartitionKey: keys[i%len(keys)], Data: make([]byte, 100)}, func(r *Result) {
				// Callbacks run one at a time: no lock needed for these.
				outcomes++
				if d := time.Since(put); d > ttl {
					late++
					latest = max(latest, d-ttl)
				}
				if !errors.Is(r.Err, ErrRecordExpired) {
					t.Errorf("outcome %v, want ErrRecordExpired", r.Err)
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			put = time.Now() // the bubble's clock: no callback can run before this
		}
		if err := p.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if outcomes != n || late > 0 {
			t.Fatalf("%d outcomes for %d records; %d later than their TTL (latest by %v)", outcomes, n, late, latest)
		}
		runtime.KeepAlive(p)
	})
}
