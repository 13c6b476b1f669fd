package producer

import (
	"context"
	"fmt"
	"math"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/kinesistest"
)

// TestHugeRecordTTL: Config accepts RecordTTL = math.MaxInt64 (New
// succeeds). Correct: records never expire, so they are stored; or New
// refuses the value naming the field. Before the fix: without aggregation every
// record put a moment after New fails with ErrRecordExpired without being
// sent; with aggregation so does one put before the first shard map.
func TestHugeRecordTTL(t *testing.T) {
	for _, agg := range []bool{false, true} {
		t.Run(fmt.Sprintf("aggregation=%v", agg), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				clk := newBubbleClock()
				srv, stream := newFake(t, 1, kinesistest.Options{Clock: clk})
				release := make(chan struct{})
				srv.SetHook(func(ctx context.Context, op string) error {
					if op == kinesistest.OpListShards && agg {
						<-release // the first map arrives after the Put
					}
					return nil
				})
				p, err := New(srv, stream, Config{Clock: clk, Logger: discardLogger(),
					DisableAggregation: !agg, RecordTTL: math.MaxInt64})
				if err != nil {
					require.ErrorIs(t, err, ErrInvalidConfig) // refusing it is fine too
					return
				}
				t.Cleanup(func() { _ = p.Close(context.Background()) })
				clk.Advance(time.Millisecond)
				f, err := p.Put(context.Background(), "k", []byte("x"))
				require.NoError(t, err)
				synctest.Wait()
				if agg {
					close(release)
				}
				res, err := f.Wait(context.Background())
				require.NoError(t, err, "%+v", res)
			})
		})
	}
}

// TestHugeRetryBackoffMax: a RetryBackoffMax beyond any real wait (as
// math.MaxInt64 for "no cap") must not overflow the doubling backoff:
// before the fix it wrapped to a negative and then zero delay, so a
// throttled shard was retried at once, forever.
func TestHugeRetryBackoffMax(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, stream := newFake(t, 1, kinesistest.Options{})
		p := newProducer(t, srv, stream, Config{Logger: discardLogger(), RetryBackoffBase: time.Second, RetryBackoffMax: math.MaxInt64})
		for _, failures := range []int{1, 10, 40, 70, 1000} {
			d := p.backoff(failures)
			require.Positive(t, d, "failures %d", failures)
			require.LessOrEqual(t, d, neverDuration, "failures %d", failures)
		}
	})
}
