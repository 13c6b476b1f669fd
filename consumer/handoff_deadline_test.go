package consumer_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/consumer"
	"github.com/shardflow/shardflow/kinesistest"
)

// stuckProc journals each ProcessRecords call; with stuck set it stays in
// the call until its context is cancelled (a batch that never finishes,
// from a processor that honours cancellation).
type stuckProc struct {
	id      string
	stuck   bool
	mu      *sync.Mutex
	journal *[]string
	entered chan<- string
}

func (p *stuckProc) note(s string) {
	p.mu.Lock()
	*p.journal = append(*p.journal, p.id+" "+s)
	p.mu.Unlock()
}

func (p *stuckProc) Initialize(context.Context, consumer.InitializeInput) error { return nil }

func (p *stuckProc) ProcessRecords(ctx context.Context, in consumer.ProcessRecordsInput) error {
	p.note("enter")
	p.entered <- p.id
	defer p.note("exit")
	if p.stuck {
		<-ctx.Done()
		return ctx.Err()
	}
	return in.Checkpointer.Checkpoint(ctx)
}

func (p *stuckProc) LeaseLost(context.Context, consumer.LeaseLostInput) {}
func (p *stuckProc) ShardEnded(ctx context.Context, in consumer.ShardEndedInput) error {
	return in.Checkpointer.Checkpoint(ctx)
}
func (p *stuckProc) ShutdownRequested(context.Context, consumer.ShutdownRequestedInput) error {
	return nil
}

// A holder whose batch does not finish gives the lease up at its handoff
// deadline; once its processing has stopped (the processor returned on
// cancellation) it hands the lease over, so the worker that asked for it
// starts at once, not HandoffTimeout + FailoverTime after asking. With a
// FailoverTime of an hour, only that hand-over lets the new owner start
// within the test's run; the journal shows the two never processed the
// shard at once.
func TestHandoffPastDeadlineHandsOverOnceProcessingStopped(t *testing.T) {
	ctx := e2eContext(t)
	srv := kinesistest.New(kinesistest.Options{})
	h := newHarness(t, srv, srv, 1, 4)
	var (
		mu      sync.Mutex
		journal []string
	)
	entered := make(chan string, 64)
	start := func(id string, stuck bool) {
		cfg := h.cfg
		cfg.WorkerID = id
		cfg.FailoverTime = time.Hour
		cfg.Lease.RenewInterval = 200 * time.Millisecond
		cfg.Lease.HandoffTimeout = time.Second
		cfg.LeaseTakeInterval = time.Second
		cfg.LeaseExpiryScanInterval = 200 * time.Millisecond
		f := consumer.ProcessorFactoryFunc(func(string) consumer.RecordProcessor {
			return &stuckProc{id: id, stuck: stuck, mu: &mu, journal: &journal, entered: entered}
		})
		c, err := consumer.New(h.kc, h.store, f, cfg)
		require.NoError(t, err)
		wctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- c.Run(wctx) }()
		t.Cleanup(func() {
			cancel()
			<-done
		})
	}
	start("w0", true)
	h.produce(ctx, 4)
	require.Equal(t, "w0", <-entered, "w0 is in a batch that will not finish")
	start("w1", false)

	// w1 asks for the shard, as its balancing (or a KCL 3.x leader) would.
	all, err := h.store.List(ctx)
	require.NoError(t, err)
	require.Len(t, all, 1)
	_, err = h.store.MarkHandoff(ctx, all[0], "w1")
	require.NoError(t, err)

	require.Equal(t, "w1", <-entered, "the new owner processes the shard")
	mu.Lock()
	got := fmt.Sprint(journal[:3])
	mu.Unlock()
	require.Equal(t, "[w0 enter w0 exit w1 enter]", got, "one worker at a time")
	l, err := h.store.Get(ctx, all[0].Key)
	require.NoError(t, err)
	require.Equal(t, "w1", l.Owner)
	require.Empty(t, l.CheckpointOwner)
}
