package producer

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/kinesistest"
)

// TestRetryBehindNewerRecordExpiresByTTL: one shard, one record per
// call, a low RateLimit so the shard's byte bucket paces re-sends. A (put
// at 0) and B (put at 1 s) are in flight at once; both calls fail, A's
// first. A's retry goes to the front, then B's in front of it, so the
// queue is [B, A]. B waits about 0.9 s for tokens. A's TTL (1.5 s) passes
// meanwhile. Correct: A fails with ErrRecordExpired by its TTL (plus a
// dispatcher pass), as the package promises ("every record gets its
// outcome by its RecordTTL"). Before the fix: A has no outcome until B is sent at
// about 1.9 s and A, then at the front, is pruned.
func TestRetryBehindNewerRecordExpiresByTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := newBubbleClock()
		srv, stream := newFake(t, 1, kinesistest.Options{Clock: clk})
		calls := make(chan chan error, 4)
		var gated atomic.Int64
		srv.SetHook(func(ctx context.Context, op string) error {
			if op != kinesistest.OpPutRecords || gated.Add(1) > 2 {
				return nil
			}
			ch := make(chan error)
			calls <- ch
			return <-ch
		})
		const ttl = 1500 * time.Millisecond
		p := newProducer(t, srv, stream, Config{Clock: clk, Logger: discardLogger(),
			DisableAggregation: true, CollectionMaxCount: 1, MaxConnections: 2,
			RateLimit:        1, // 10 records/s, ~10,486 B/s per shard
			RetryBackoffBase: time.Nanosecond, RetryBackoffMax: time.Nanosecond,
			RecordMaxBufferedTime: time.Millisecond, RecordTTL: ttl, RequestTimeout: time.Minute})
		waitMapped(t, clk, p)
		ctx := context.Background()
		data := []byte(strings.Repeat("x", 9999)) // 10,000 B with its key

		// A's TTL counts from the start of its batch, no later than its Put.
		expiresA := clk.Now().Add(ttl)
		fa, err := p.Put(ctx, "a", data)
		require.NoError(t, err)
		callA := <-calls
		clk.Advance(time.Second) // the bucket refills
		fb, err := p.Put(ctx, "b", data)
		require.NoError(t, err)
		callB := <-calls

		callA <- kinesistest.ErrInternalFailure
		synctest.Wait()
		callB <- kinesistest.ErrInternalFailure
		synctest.Wait()
		require.Nil(t, fa.Result(), "precondition: A is queued for a retry")
		require.Nil(t, fb.Result(), "precondition: B is queued for a retry")

		clk.Advance(expiresA.Sub(clk.Now()) + 10*time.Millisecond)
		res := fa.Result()
		if res == nil {
			driveUntil(t, clk, time.Millisecond, func() bool { return fa.Result() != nil })
			t.Fatalf("A got its outcome %v after its TTL (%v)", clk.Now().Sub(expiresA), fa.Result().Err)
		}
		require.ErrorIs(t, res.Err, ErrRecordExpired)
	})
}
