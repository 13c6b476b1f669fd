// Records put before the shard map is loaded wait in the unmapped lane:
// Status shows them in the "" entry, so that the per-shard Queued add up.

package producer

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/kinesistest"
)

func TestStatusRecordsWaitingForShardMap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, stream := newFake(t, 1, kinesistest.Options{})
		// The shard map cannot load: every ListShards fails.
		srv.SetHook(func(ctx context.Context, op string) error {
			if op == kinesistest.OpListShards {
				return &types.LimitExceededException{Message: aws.String("injected")}
			}
			return nil
		})
		cfg := fastConfig()
		cfg.RecordTTL = time.Hour
		p := newProducer(t, srv, stream, cfg)
		putN(t, p, "w", 10)
		synctest.Wait()
		st := p.Status()
		require.Equal(t, 10, st.BufferedRecords)
		queued := 0
		for _, s := range st.Shards {
			queued += s.Queued
		}
		require.Len(t, st.Shards, 1, "one entry with ShardID \"\" while records wait for a shard map: %+v", st.Shards)
		require.Equal(t, "", st.Shards[0].ShardID)
		require.Positive(t, queued, "the 10 buffered records wait for the map")
		srv.SetHook(nil)
	})
}
