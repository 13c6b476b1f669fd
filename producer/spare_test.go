package producer

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/stretchr/testify/require"
)

// gateClient counts PutRecords calls until closed, then stalls them until
// their context ends.
type gateClient struct {
	*countingClient
	closed atomic.Bool
}

func (c *gateClient) PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, opts ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	if c.closed.Load() {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return c.countingClient.PutRecords(ctx, in, opts...)
}

// TestSpareAggregatesYieldRoom: the empty aggregates kept for reuse count
// against MaxBufferedBytes, and give way to records: once the endpoint
// stalls, the buffer still takes as many records as its bound holds.
func TestSpareAggregatesYieldRoom(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const maxBytes = 1 << 20
		c := &gateClient{countingClient: newCountingClient(benchShards)}
		// Small aggregates, sent only by Flush (so all in one go), so that
		// many come back to be kept.
		p, err := New(c, "s", Config{RateLimit: 1_000_000, Logger: discardLogger(), MaxBufferedBytes: maxBytes,
			FailWhenBufferFull: true, AggregationMaxCount: 20, RecordMaxBufferedTime: time.Hour, RecordTTL: 2 * time.Hour})
		require.NoError(t, err)
		ctx := context.Background()
		keys := benchKeys(4096)
		small := make([]byte, benchDataSize)
		for i := 0; i < maxBytes/2/p.charge(&rec{pk: keys[0], data: small}); i++ {
			_, err := p.Put(ctx, keys[i%len(keys)], small)
			require.NoError(t, err)
		}
		require.NoError(t, p.Flush(ctx))
		// Flush returns once every Future is done; the call's aggregates go
		// back for reuse just after. Let that finish.
		synctest.Wait()
		spare := p.spareBytes.Load()
		require.Positive(t, spare, "the flushed aggregates are kept for reuse")
		require.LessOrEqual(t, spare, int64(maxBytes))

		// Large records, each alone in an aggregate (taking one spare): the
		// spares left would keep the last one out if they did not give way.
		c.closed.Store(true)
		large := make([]byte, 100_000)
		fit := maxBytes / p.charge(&rec{pk: keys[0], data: large})
		accepted := 0
		for i := 0; ; i++ {
			_, err := p.Put(ctx, keys[i%len(keys)], large)
			if errors.Is(err, ErrBufferFull) {
				break
			}
			require.NoError(t, err)
			accepted++
		}
		require.Equal(t, fit, accepted, "spares held %d bytes", spare)
		_, held := p.Outstanding()
		require.LessOrEqual(t, int64(held)+p.spareBytes.Load(), int64(maxBytes))

		canceled, cancel := context.WithCancel(ctx)
		cancel()
		require.ErrorIs(t, p.Close(canceled), context.Canceled)
	})
}
