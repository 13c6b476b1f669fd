package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/checkpoint"
	"github.com/shardflow/shardflow/consumer"
	"github.com/shardflow/shardflow/kinesistest"
	"github.com/shardflow/shardflow/lease"
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
	ended     chan struct{} // if set, closed in ShardEnded
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
	if p.ended != nil {
		close(p.ended)
	}
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

// Shutdown with a context already done still releases the leases (a short
// bounded write), so other workers need not wait for them to expire.
func TestShutdownWithDoneContextReleasesLeases(t *testing.T) {
	p := &docStyleProc{done: make(chan string, 16), failed: make(chan struct{})}
	srv, store, c, done := single(t, p, func(cfg *consumer.Config) { cfg.FailoverTime = time.Hour })
	put(t, srv, "a")
	require.Equal(t, "a", <-p.done)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, c.Shutdown(ctx), context.Canceled)
	require.NoError(t, <-done)
	done <- nil
	l, err := store.Get(context.Background(), "shardId-000000000000")
	require.NoError(t, err)
	require.Empty(t, l.Owner, "released although Shutdown's context was done")
}

// takeWatch is a lease store that reports takes of one key.
type takeWatch struct {
	lease.Store
	key   string
	taken chan struct{}
	once  sync.Once
}

func (s *takeWatch) Take(ctx context.Context, l lease.Lease, owner string) (lease.Lease, error) {
	if l.Key == s.key {
		s.once.Do(func() { close(s.taken) })
	}
	return s.Store.Take(ctx, l, owner)
}

// shutdownBlocker blocks in ShutdownRequested until released.
type shutdownBlocker struct {
	*chanProc
	inShutdown chan struct{}
	proceed    chan struct{}
}

func (p *shutdownBlocker) ShutdownRequested(ctx context.Context, in consumer.ShutdownRequestedInput) error {
	close(p.inShutdown)
	<-p.proceed
	return in.Checkpointer.Checkpoint(ctx)
}

// A worker that is shutting down takes no leases, even while its
// processors finish.
func TestShuttingDownWorkerTakesNoLeases(t *testing.T) {
	srv := kinesistest.New(kinesistest.Options{})
	srv.MustCreateStream("s", 1)
	store := &takeWatch{Store: lease.NewMemoryStore(), key: "shardId-000000000099", taken: make(chan struct{})}
	p := &shutdownBlocker{chanProc: newChanProc(), inShutdown: make(chan struct{}), proceed: make(chan struct{})}
	c, err := consumer.New(srv, store, consumer.ProcessorFactoryFunc(func(string) consumer.RecordProcessor { return p }), consumer.Config{
		ApplicationName: "app", StreamName: "s", WorkerID: "w",
		InitialPosition:      consumer.InitialPosition{Type: consumer.TrimHorizon},
		IdleTimeBetweenReads: consumer.MinIdleTimeBetweenReads,
		FailoverTime:         time.Hour,
		// Take passes back to back (real time is irrelevant: the test
		// waits for passes to happen, whenever they do).
		LeaseExpiryScanInterval: time.Millisecond,
		Logger:                  testLogger(t),
	})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- c.Run(context.Background()) }()
	put(t, srv, "a")
	<-p.batches
	p.release <- nil

	shut := make(chan error, 1)
	go func() { shut <- c.Shutdown(context.Background()) }()
	<-p.inShutdown
	_, err = store.Create(context.Background(), lease.Lease{Key: "shardId-000000000099", Checkpoint: checkpoint.TrimHorizon})
	require.NoError(t, err)
	// A negative check, so a window of real time: before the fix a take
	// pass every millisecond takes the lease at once. A slow machine can
	// only make this miss the bug, never fail.
	select {
	case <-store.taken:
		t.Error("a worker shutting down took a lease")
	case <-time.After(200 * time.Millisecond):
	}
	close(p.proceed)
	require.NoError(t, <-shut)
	require.NoError(t, <-done)
	l, err := store.Get(context.Background(), store.key)
	require.NoError(t, err)
	require.Empty(t, l.Owner)
}

// unreadableParentStore leaves out one lease item it cannot read, as
// lease.DynamoStore does with a malformed item, and reports releases.
type unreadableParentStore struct {
	lease.Store
	bad      string
	released chan string
}

func (s *unreadableParentStore) List(ctx context.Context) ([]lease.Lease, error) {
	all, err := s.Store.List(ctx)
	out := all[:0]
	for _, l := range all {
		if l.Key != s.bad {
			out = append(out, l)
		}
	}
	return out, err
}

func (s *unreadableParentStore) Get(ctx context.Context, key string) (lease.Lease, error) {
	if key == s.bad {
		return lease.Lease{}, fmt.Errorf("lease: %s: %w: checkpoint: malformed", key, lease.ErrUnreadable)
	}
	return s.Store.Get(ctx, key)
}

func (s *unreadableParentStore) Release(ctx context.Context, l lease.Lease) (lease.Lease, error) {
	got, err := s.Store.Release(ctx, l)
	if err == nil {
		s.released <- l.Key
	}
	return got, err
}

// A child lease this worker holds (left over from its earlier run) whose
// parent's lease item cannot be read is reported and released, instead of
// waiting forever and holding a slot of the worker's share.
func TestChildOfUnreadableParentIsReleased(t *testing.T) {
	ctx := context.Background()
	store := &unreadableParentStore{Store: lease.NewMemoryStore(), bad: "parent", released: make(chan string, 4)}
	for _, l := range []lease.Lease{
		{Key: "parent", Checkpoint: checkpoint.TrimHorizon},
		{Key: "child", Checkpoint: checkpoint.TrimHorizon, ParentShardIDs: []string{"parent"}},
	} {
		_, err := store.Create(ctx, l)
		require.NoError(t, err)
	}
	l, err := store.Get(ctx, "child")
	require.NoError(t, err)
	_, err = store.Take(ctx, l, "w")
	require.NoError(t, err)

	srv := kinesistest.New(kinesistest.Options{})
	srv.MustCreateStream("s", 1)
	c, err := consumer.New(srv, store, consumer.ProcessRecord(func(context.Context, string, consumer.Record) error { return nil }), consumer.Config{
		ApplicationName: "app", StreamName: "s", WorkerID: "w",
		FailoverTime: time.Hour,
		Logger:       testLogger(t),
	})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	require.Equal(t, "child", <-store.released)
	require.NoError(t, c.Shutdown(ctx))
	require.NoError(t, <-done)
}
