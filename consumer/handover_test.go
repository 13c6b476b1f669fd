package consumer_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/checkpoint"
	"github.com/shardflow/shardflow/consumer"
)

// docStyleProc is a processor in the package's documented style: it
// checkpoints after each batch, returns an error to get a batch again and
// checkpoints in ShutdownRequested. It fails every batch holding "b".
type docStyleProc struct {
	mu        sync.Mutex
	processed []string
	done      chan string   // each record processed
	failed    chan struct{} // closed at the first failure
	once      sync.Once
}

func (p *docStyleProc) Initialize(context.Context, consumer.InitializeInput) error { return nil }

func (p *docStyleProc) ProcessRecords(ctx context.Context, in consumer.ProcessRecordsInput) error {
	for _, r := range in.Records {
		if string(r.Data) == "b" {
			p.once.Do(func() { close(p.failed) })
			return errors.New("cannot process b yet")
		}
	}
	for _, r := range in.Records {
		p.mu.Lock()
		p.processed = append(p.processed, string(r.Data))
		p.mu.Unlock()
	}
	if err := in.Checkpointer.Checkpoint(ctx); err != nil {
		return err
	}
	for _, r := range in.Records {
		p.done <- string(r.Data)
	}
	return nil
}

func (p *docStyleProc) LeaseLost(context.Context, consumer.LeaseLostInput) {}

func (p *docStyleProc) ShardEnded(ctx context.Context, in consumer.ShardEndedInput) error {
	return in.Checkpointer.Checkpoint(ctx)
}

func (p *docStyleProc) ShutdownRequested(ctx context.Context, in consumer.ShutdownRequestedInput) error {
	return in.Checkpointer.Checkpoint(ctx)
}

// A graceful shutdown while a batch is failing must not checkpoint that
// batch: the next owner must get b again (issue 10, data loss).
func TestShutdownDuringFailingBatchKeepsIt(t *testing.T) {
	p := &docStyleProc{done: make(chan string, 16), failed: make(chan struct{})}
	srv, store, c, done := single(t, p, func(cfg *consumer.Config) {
		// The lease never expires on its own, whatever the machine's speed.
		cfg.FailoverTime = time.Hour
	})
	put(t, srv, "a")
	require.Equal(t, "a", <-p.done)
	put(t, srv, "b")
	<-p.failed

	require.NoError(t, c.Shutdown(context.Background()))
	require.NoError(t, <-done)
	done <- nil

	recs := srv.Records("s", "shardId-000000000000")
	require.Len(t, recs, 2)
	l, err := store.Get(context.Background(), "shardId-000000000000")
	require.NoError(t, err)
	require.Equal(t, checkpoint.At(aws.ToString(recs[0].SequenceNumber), 0), l.Checkpoint,
		"checkpoint stays at a, the last batch that succeeded; b is delivered again")
	require.Empty(t, l.Owner, "released")
}
