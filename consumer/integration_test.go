//go:build integration

package consumer_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/consumer"
	"github.com/shardflow/shardflow/internal/itest"
	"github.com/shardflow/shardflow/lease"
)

// The end-to-end run against real emulators: the lease table in dynalite,
// the stream in kinesalite (no ChildShards: children found by the shard
// sync) or kinesis-mock (ChildShards at shard end); two workers, aggregated
// records, a split while producing, one worker killed.
func TestIntegrationEndToEnd(t *testing.T) {
	for _, emu := range itest.KinesisEmulators {
		t.Run(string(emu), func(t *testing.T) {
			// No deadline: slow emulators make this slower, not red (a hang
			// is reported by the test binary's -timeout). Put timeouts and
			// their retries may store records twice; the tracker tells
			// those copies apart from redeliveries.
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			kc := itest.Kinesis(t, emu)
			ddb := itest.DynamoDB(t)
			stream := itest.Name("consumer-e2e")
			itest.CreateStream(t, kc, stream, 2)
			store, err := lease.NewDynamoStore(ctx, ddb, itest.Name("consumer-leases"))
			require.NoError(t, err)

			n := 3000
			if itest.Soak() {
				n = 30000
			}
			h := newHarnessOn(t, kc, kc, store, stream, n)
			h.cfg.TableName = store.Table()
			mod := func(c *consumer.Config) {
				c.KeepFinishedLeases = true // counted below
				c.FailoverTime = 3 * time.Second
				c.ShardSyncInterval = time.Second
				c.ThrottleBackoff = consumer.Backoff{Initial: 50 * time.Millisecond, Max: time.Second}
			}
			w0, w1 := h.start("w0", mod), h.start("w1", mod)

			h.produce(ctx, n/3)
			splitFirstShard(ctx, t, kc, stream)
			h.produce(ctx, n/3)
			require.NoError(t, h.tr.waitUnique(ctx, n/3))
			w1.cancel() // dies without releasing its leases
			require.ErrorIs(t, <-w1.done, context.Canceled)
			w1.done <- nil
			h.produce(ctx, n-2*(n/3))
			h.finish(ctx, w0)

			ls, err := store.List(ctx)
			require.NoError(t, err)
			require.Len(t, ls, 4, "2 shards + 2 split children")
		})
	}
}

func splitFirstShard(ctx context.Context, t *testing.T, kc *kinesis.Client, stream string) {
	t.Helper()
	out, err := kc.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	require.NoError(t, err)
	s := out.Shards[0]
	mid := midpoint(t, aws.ToString(s.HashKeyRange.StartingHashKey), aws.ToString(s.HashKeyRange.EndingHashKey))
	_, err = kc.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String(stream), ShardToSplit: s.ShardId, NewStartingHashKey: aws.String(mid)})
	require.NoError(t, err)
	// Wait until the stream is ACTIVE again.
	for {
		d, err := kc.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
		require.NoError(t, err)
		if d.StreamDescriptionSummary.StreamStatus == "ACTIVE" {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(100 * time.Millisecond): // polling an external emulator
		}
	}
}
