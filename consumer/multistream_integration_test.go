//go:build integration

package consumer_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/internal/itest"
	"github.com/shardflow/shardflow/lease"
)

// The multi-stream scenario of TestE2EMultiStream on the emulators: the
// streams in kinesalite, the one lease table in dynalite. It asserts the
// outcome only (no loss, order per key, the stream each processor was told,
// lease layout), whatever the emulators' latency.
func TestIntegrationMultiStream(t *testing.T) {
	// One shard per stream: kinesalite allows 10 open shards per account.
	for _, streams := range []int{2, 5} {
		t.Run(map[int]string{2: "2streams", 5: "5streams"}[streams], func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			kc := itest.Kinesis(t, itest.Kinesalite)
			store, err := lease.NewDynamoStore(ctx, itest.DynamoDB(t), itest.Name("ms-leases"))
			require.NoError(t, err)
			h := newMSHarness(t, kc, kc, store)
			h.cfg.TableName = store.Table()
			h.cfg.FailoverTime = 3 * time.Second
			h.cfg.StreamSyncInterval = 500 * time.Millisecond
			h.cfg.ThrottleBackoff.Max = time.Second
			create := func(name string, shards int) { itest.CreateStream(t, kc, name, int32(shards)) }
			split := func(name string) { splitFirstShard(ctx, t, kc, name) }
			n := 600
			if itest.Soak() {
				n = 6000
			}
			runMultiStream(t, ctx, h, create, split, itest.Name("ms"), streams, 1, n)
		})
	}
}
