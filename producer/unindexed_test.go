package producer

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/aggregation"
	"github.com/shardflow/shardflow/kinesistest"
)

// TestDistinctKeysAggregateUnindexed: keys that rarely repeat turn the
// key cache's bypass on, and aggregates are then built without the key
// index (AddWithinUnindexed). Every record must still be stored once, in
// an aggregate that reads back with its own partition key, including
// keys repeated back to back and later in the same aggregate. Fake clock.
func TestDistinctKeysAggregateUnindexed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := newBubbleClock()
		srv, stream := newFake(t, 2, kinesistest.Options{Clock: clk})
		p := newProducer(t, srv, stream, Config{Clock: clk, Logger: discardLogger()})
		driveUntil(t, clk, 0, func() bool { p.mu.Lock(); defer p.mu.Unlock(); return p.lanes != nil })
		ctx := context.Background()
		keyOf := map[string]string{}
		var puts []put
		putOne := func(k string) {
			d := fmt.Sprintf("d%d", len(puts))
			f, err := p.Put(ctx, k, []byte(d))
			require.NoError(t, err)
			keyOf[d] = k
			puts = append(puts, put{k, d, f})
		}
		for i := 0; i < 20_000; i++ {
			putOne(fmt.Sprintf("key-%d", i))
			if i%100 == 0 {
				putOne(fmt.Sprintf("key-%d", i)) // back to back
			}
			if i%150 == 0 && i > 0 {
				putOne(fmt.Sprintf("key-%d", i-7)) // again, later
			}
		}
		require.True(t, p.keys.bypass.Load(), "distinct keys did not turn the key cache's bypass on: the unindexed path went untested")
		driveUntil(t, clk, 10*time.Millisecond, func() bool { r, _ := p.Outstanding(); return r == 0 })
		require.Empty(t, reconcile(t, srv, stream, puts, false))
		for _, sh := range srv.ShardIDs(stream) {
			for _, r := range srv.Records(stream, sh) {
				recs, _ := aggregation.Deaggregate(nil, r.Data, aws.ToString(r.PartitionKey))
				for _, ur := range recs {
					require.Equal(t, keyOf[string(ur.Data)], ur.PartitionKey, "record %s read back with another key", ur.Data)
				}
			}
		}
	})
}
