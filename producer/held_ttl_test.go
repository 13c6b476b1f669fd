package producer

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/kinesistest"
)

// TestHeldAggregateOutcomeByTTL: after the first map, every
// ListShards is throttled (LimitExceededException, as a fleet sharing the
// 100 TPS ListShards limit sees), so the refresh backoff grows to 30 s.
// The shard then splits; an aggregate lands on the left child, unknown to
// the map, and is held for a check. Correct: its records get an outcome by
// their RecordTTL (5 s) plus a dispatcher pass (stored, or expired if they
// must be re-sent). Before the fix: they have none until the next ListShards
// attempt, about 25 s after their TTL.
func TestHeldAggregateOutcomeByTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := newBubbleClock()
		srv, stream := newFake(t, 1, kinesistest.Options{Clock: clk})
		const ttl = 5 * time.Second
		p := newProducer(t, srv, stream, Config{Clock: clk, Logger: discardLogger(), RecordTTL: ttl})
		waitMapped(t, clk, p)
		var lists atomic.Int64
		srv.SetHook(func(ctx context.Context, op string) error {
			if op == kinesistest.OpListShards {
				lists.Add(1)
				return &types.LimitExceededException{Message: aws.String("Rate exceeded for stream")}
			}
			return nil
		})
		p.requestRefresh()
		// Attempts at 1, 2, 4, 8, 16, 32 and 62 s: the backoff is now 30 s.
		driveUntil(t, clk, 500*time.Millisecond, func() bool { return lists.Load() == 7 })

		ctx := context.Background()
		_, err := srv.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String(stream),
			ShardToSplit: aws.String(srv.ShardIDs(stream)[0]), NewStartingHashKey: aws.String("170141183460469231731687303715884105728")})
		require.NoError(t, err)
		// The TTL counts from the start of the records' batch, which is
		// no later than their Put.
		expires := clk.Now().Add(ttl)
		puts := putN(t, p, "held", 20) // one aggregate
		driveUntil(t, clk, 10*time.Millisecond, func() bool {
			p.mu.Lock()
			defer p.mu.Unlock()
			return len(p.unverified) > 0
		})
		clk.Advance(expires.Sub(clk.Now()) + 200*time.Millisecond)
		for _, pu := range puts {
			if pu.f.Result() == nil {
				driveUntil(t, clk, 100*time.Millisecond, func() bool { return pu.f.Result() != nil })
				t.Fatalf("record %s got its outcome %v after its TTL: %v", pu.data, clk.Now().Sub(expires).Round(time.Millisecond), pu.f.Result().Err)
			}
		}
	})
}

// TestAcceptMisroutedOnUnknownShard: with AcceptMisroutedAggregates an
// aggregate stored on a shard the map does not know is accepted whatever
// the shard, so nothing is gained by holding it (and its lane) for a shard
// check. Same setting as TestHeldAggregateOutcomeByTTL: ListShards is
// throttled, the next attempt 30 s away. Correct: the records are stored
// at once, on the child shard, before any further ListShards. Before the
// fix: they waited for that attempt.
func TestAcceptMisroutedOnUnknownShard(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := newBubbleClock()
		srv, stream := newFake(t, 1, kinesistest.Options{Clock: clk})
		p := newProducer(t, srv, stream, Config{Clock: clk, Logger: discardLogger(), AcceptMisroutedAggregates: true})
		waitMapped(t, clk, p)
		var lists atomic.Int64
		srv.SetHook(func(ctx context.Context, op string) error {
			if op == kinesistest.OpListShards {
				lists.Add(1)
				return &types.LimitExceededException{Message: aws.String("Rate exceeded for stream")}
			}
			return nil
		})
		p.requestRefresh()
		driveUntil(t, clk, 500*time.Millisecond, func() bool { return lists.Load() == 7 })

		ctx := context.Background()
		_, err := srv.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String(stream),
			ShardToSplit: aws.String(srv.ShardIDs(stream)[0]), NewStartingHashKey: aws.String("170141183460469231731687303715884105728")})
		require.NoError(t, err)
		puts := putN(t, p, "accepted", 20) // one aggregate
		driveUntil(t, clk, 10*time.Millisecond, func() bool {
			for _, pu := range puts {
				if pu.f.Result() == nil {
					return false
				}
			}
			return true
		})
		require.EqualValues(t, 7, lists.Load(), "the outcomes came with a later shard listing")
		for _, pu := range puts {
			res := pu.f.Result()
			require.NoError(t, res.Err)
			require.Equal(t, "shardId-000000000001", res.ShardID)
		}
	})
}

// lockingHandler is a slog handler that, for each warning, takes the
// producer's lock, as a handler blocked on a slow sink would wait: if the
// producer logged while holding it, the warning would never return.
type lockingHandler struct {
	p     atomic.Pointer[Producer]
	mu    sync.Mutex
	warns []string
}

func (h *lockingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *lockingHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *lockingHandler) WithGroup(string) slog.Handler            { return h }
func (h *lockingHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return nil
	}
	if p := h.p.Load(); p != nil {
		p.mu.Lock()
		p.mu.Unlock() // empty: only whether it can be taken
	}
	h.mu.Lock()
	h.warns = append(h.warns, r.Message)
	h.mu.Unlock()
	return nil
}

func (h *lockingHandler) logged(sub string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, w := range h.warns {
		if strings.Contains(w, sub) {
			return true
		}
	}
	return false
}

// TestResentWarningOutsideLock: an aggregate stored on a shard the map
// does not know, and the shard listing failing, so its records are
// re-sent unchecked. The warning says the shard is unknown (before the
// fix it claimed the records were outside its hash key range) and is
// logged without the producer's lock (before the fix it was logged under
// it: this handler then hangs, reported by go test -timeout).
func TestResentWarningOutsideLock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := newBubbleClock()
		srv, stream := newFake(t, 1, kinesistest.Options{Clock: clk})
		h := &lockingHandler{}
		p := newProducer(t, srv, stream, Config{Clock: clk, Logger: slog.New(h)})
		h.p.Store(p)
		waitMapped(t, clk, p)
		srv.SetHook(func(ctx context.Context, op string) error {
			if op == kinesistest.OpListShards {
				return &types.LimitExceededException{Message: aws.String("Rate exceeded for stream")}
			}
			return nil
		})
		ctx := context.Background()
		_, err := srv.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String(stream),
			ShardToSplit: aws.String(srv.ShardIDs(stream)[0]), NewStartingHashKey: aws.String("170141183460469231731687303715884105728")})
		require.NoError(t, err)
		puts := putN(t, p, "resent", 20) // one aggregate, stored on an unknown child
		driveUntil(t, clk, 100*time.Millisecond, func() bool { return h.logged("does not know") })
		require.False(t, h.logged("belong elsewhere"))
		// Re-sent with the old map, they land on the unknown child again
		// until the map is known or they expire: stored, maybe more than
		// once, whatever their outcome.
		reconcile(t, srv, stream, puts, true)
	})
}
