package producer

import (
	"context"
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
