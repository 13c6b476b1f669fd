package producer

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/kinesistest"
)

// rightHalfKey returns a partition key whose hash key is at least 2^127.
func rightHalfKey(t *testing.T) string {
	t.Helper()
	for i := 0; ; i++ {
		k := fmt.Sprintf("key-%d", i)
		if hi, _, _ := hashKey(k, ""); hi >= 1<<63 {
			return k
		}
	}
}

// TestOrderedHeldAggregateAcrossTwoSplits: ordered mode, one key K
// in the right half of the only shard. K/1 and K/2 go in one aggregate,
// whose call is held in flight while (1) the shard splits at 2^127 and the
// producer installs the new map (the aggregate's lane is retired, K/3 is
// put and queued on the right child) and (2) the left child splits again.
// The aggregate, sent with the parent's starting hash key, lands on the
// left grandchild, which the map does not know: it is held for a shard
// check. Correct: K/3 is not sent before K/1 and K/2 are settled (the
// documented rule: nothing goes before calls built with an older map are
// done); K's copies on its own shard are stored 1, 2, 3. Before the fix: K/3 goes
// as soon as the call returns; the next refresh re-sends K/1 and K/2 after
// it (stored 3, 1, 2 on the right child).
func TestOrderedHeldAggregateAcrossTwoSplits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := newBubbleClock()
		srv, stream := newFake(t, 1, kinesistest.Options{Clock: clk})
		var gate atomic.Bool
		gate.Store(true)
		entered, release := make(chan struct{}, 1), make(chan struct{})
		srv.SetHook(func(ctx context.Context, op string) error {
			if op == kinesistest.OpPutRecords && gate.CompareAndSwap(true, false) {
				entered <- struct{}{}
				<-release // the call goes through once released
			}
			return nil
		})
		p := newProducer(t, srv, stream, Config{Clock: clk, Logger: discardLogger(),
			OrderedByPartitionKey: true, RecordMaxBufferedTime: time.Millisecond})
		waitMapped(t, clk, p)
		ctx := context.Background()
		key := rightHalfKey(t)
		var puts []put
		putK := func(i int) {
			d := fmt.Sprintf("%s/%06d", key, i)
			f, err := p.Put(ctx, key, []byte(d))
			require.NoError(t, err)
			puts = append(puts, put{key, d, f})
		}
		putK(1)
		putK(2)
		<-entered // one aggregate {K/1, K/2} in flight to shard 0

		_, err := srv.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String(stream),
			ShardToSplit: aws.String("shardId-000000000000"), NewStartingHashKey: aws.String("170141183460469231731687303715884105728")})
		require.NoError(t, err)
		p.requestRefresh()
		driveUntil(t, clk, 100*time.Millisecond, func() bool {
			p.mu.Lock()
			defer p.mu.Unlock()
			return len(p.shards) == 2
		})
		putK(3) // queued on the right child's lane, held while the old call is in flight
		_, err = srv.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String(stream),
			ShardToSplit: aws.String("shardId-000000000001"), NewStartingHashKey: aws.String("85070591730234615865843651857942052864")})
		require.NoError(t, err)
		close(release)
		driveUntil(t, clk, 100*time.Millisecond, func() bool { r, _ := p.Outstanding(); return r == 0 })

		reconcile(t, srv, stream, puts, false)
		for _, pu := range puts[:2] {
			require.True(t, resent(pu.f.Result()), "scenario: K/1 and K/2 were re-sent after the shard check")
		}
		requireKeyOrder(t, srv, stream)
	})
}
