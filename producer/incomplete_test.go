package producer

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
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
	synctest.Test(t, func(t *testing.T) {
		srv, stream := newFake(t, 1, kinesistest.Options{})
		c := &blankingClient{Server: srv}
		cfg := fastConfig()
		cfg.MaxConnections = 1                       // one call at a time, so each blanking applies to all records
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
	})
}

// TestBlockedCallbackHoldsRoom: records whose callback has not returned
// count against MaxBufferedRecords, so with a callback blocked Put waits
// instead of letting the producer hold every record.
func TestBlockedCallbackHoldsRoom(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, stream := newFake(t, 2, kinesistest.Options{})
		cfg := fastConfig()
		cfg.MaxBufferedRecords = 10
		p := newProducer(t, srv, stream, cfg)
		release := make(chan struct{})
		var once sync.Once
		unblock := func() { once.Do(func() { close(release) }) }
		t.Cleanup(unblock) // before Close, which waits for the callbacks
		var called atomic.Int64
		cb := func(*Result) {
			if called.Add(1) == 1 {
				<-release
			}
		}
		const n = 2000
		var accepted atomic.Int64
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; i < n; i++ {
				if _, err := p.PutRecord(context.Background(), Record{PartitionKey: fmt.Sprint(i), Data: []byte("x")}, cb); err != nil {
					t.Error(err)
					return
				}
				accepted.Add(1)
			}
		}()
		// Until the putter waits for room, or, without the bound, has put
		// everything.
		for blocked := false; !blocked; time.Sleep(time.Millisecond) {
			select {
			case <-done:
				blocked = true
			default:
				p.mu.Lock()
				blocked = p.waiting > 0 && called.Load() > 0
				p.mu.Unlock()
			}
		}
		require.LessOrEqual(t, accepted.Load(), int64(cfg.MaxBufferedRecords))
		r, _ := p.Outstanding()
		require.LessOrEqual(t, r, cfg.MaxBufferedRecords)
		unblock()
		<-done
		require.NoError(t, p.Flush(context.Background()))
		require.Equal(t, int64(n), called.Load())
	})
}
