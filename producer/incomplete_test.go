package producer

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/kinesistest"
)

// blankingClient strips, from the first calls' results, what a broken
// endpoint might leave out of an entry: its sequence number, its shard id,
// or both with no error code. The records were in fact stored (the fake
// keeps them), so a retry stores them again.
type blankingClient struct {
	*kinesistest.Server
	calls atomic.Int64
}

func (c *blankingClient) PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, opts ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	out, err := c.Server.PutRecords(ctx, in, opts...)
	if err != nil {
		return out, err
	}
	switch c.calls.Add(1) {
	case 1:
		for i := range out.Records {
			out.Records[i].SequenceNumber = nil
		}
	case 2:
		for i := range out.Records {
			out.Records[i].ShardId = nil
		}
	case 3:
		for i := range out.Records {
			out.Records[i].ShardId, out.Records[i].SequenceNumber = nil, nil
		}
	}
	return out, nil
}

// TestIncompleteResultEntryIsRetried: a PutRecords result entry without
// ErrorCode that lacks its SequenceNumber or ShardId is not a success: the
// record is retried, the attempt says IncompleteResultEntry, and the
// outcome names a real copy.
func TestIncompleteResultEntryIsRetried(t *testing.T) {
	srv, stream := newFake(t, 1, kinesistest.Options{})
	c := &blankingClient{Server: srv}
	cfg := fastConfig()
	cfg.MaxConnections = 1 // one call at a time, so each blanking applies to all records
	cfg.RecordMaxBufferedTime = 10 * time.Second // everything goes in one call, at Flush
	p := newProducer(t, c, stream, cfg)
	puts := putN(t, p, "blank", 50)
	require.NoError(t, p.Flush(context.Background()))
	reconcile(t, srv, stream, puts, true)
	for _, pu := range puts {
		res := pu.f.Result()
		require.NoError(t, res.Err)
		require.NotEmpty(t, res.ShardID)
		require.NotEmpty(t, res.SequenceNumber)
		require.Len(t, res.Attempts, 4, "%+v", res.Attempts)
		for _, a := range res.Attempts[:3] {
			require.Equal(t, "IncompleteResultEntry", a.ErrorCode)
		}
	}
}
