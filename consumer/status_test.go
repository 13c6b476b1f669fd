package consumer_test

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/checkpoint"
	"github.com/shardflow/shardflow/clock"
	"github.com/shardflow/shardflow/consumer"
	"github.com/shardflow/shardflow/kinesistest"
	"github.com/shardflow/shardflow/lease"
)

// cpProc checkpoints after each batch and tells the test.
type cpProc struct{ batches chan []consumer.Record }

func (p *cpProc) Initialize(context.Context, consumer.InitializeInput) error { return nil }
func (p *cpProc) ProcessRecords(ctx context.Context, in consumer.ProcessRecordsInput) error {
	if err := in.Checkpointer.Checkpoint(ctx); err != nil {
		return err
	}
	if len(in.Records) > 0 {
		p.batches <- in.Records
	}
	return nil
}
func (p *cpProc) LeaseLost(context.Context, consumer.LeaseLostInput) {}
func (p *cpProc) ShardEnded(ctx context.Context, in consumer.ShardEndedInput) error {
	return in.Checkpointer.Checkpoint(ctx)
}
func (p *cpProc) ShutdownRequested(ctx context.Context, in consumer.ShutdownRequestedInput) error {
	return in.Checkpointer.Checkpoint(ctx)
}

func TestStatus(t *testing.T) {
	srv := kinesistest.New(kinesistest.Options{})
	srv.MustCreateStream("s", 1)
	p := &cpProc{batches: make(chan []consumer.Record, 16)}
	c, err := consumer.New(srv, lease.NewMemoryStore(), consumer.ProcessorFactoryFunc(func(string) consumer.RecordProcessor { return p }), consumer.Config{
		ApplicationName: "app", StreamName: "s", WorkerID: "w",
		InitialPosition:       consumer.InitialPosition{Type: consumer.TrimHorizon},
		IdleTimeBetweenReads:  consumer.MinIdleTimeBetweenReads,
		FailoverTime:          time.Hour,
		LeaseInitialTakeDelay: -1,
		Logger:                testLogger(t),
	})
	require.NoError(t, err)
	st := c.Status()
	require.False(t, st.Ready)
	require.False(t, st.Stopped)
	require.True(t, st.Healthy(), "a consumer starting is healthy")
	require.Equal(t, "w", st.WorkerID)
	require.Equal(t, consumer.DefaultUnhealthyAfter, st.UnhealthyAfter)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	put(t, srv, "a", "b")
	recs := <-p.batches
	last := recs[len(recs)-1].Position()
	var sh consumer.ShardStatus
	waitFor(t, func() bool {
		st = c.Status()
		if len(st.Shards) != 1 {
			return false
		}
		sh = st.Shards[0]
		return sh.Checkpoint == last && !sh.LastProcessed.IsZero()
	})
	require.True(t, st.Ready)
	require.True(t, st.Healthy())
	require.Equal(t, 1, st.Leases)
	require.Equal(t, "shardId-000000000000", sh.LeaseKey)
	require.Equal(t, "shardId-000000000000", sh.ShardID)
	require.Empty(t, sh.StreamID)
	require.Equal(t, consumer.ShardProcessing, sh.State)
	require.Equal(t, "processing", sh.State.String())
	require.GreaterOrEqual(t, sh.MillisBehindLatest, int64(0))
	require.False(t, sh.LastFetch.IsZero())
	require.True(t, st.StoreFailingSince.IsZero())
	require.True(t, st.StreamFailingSince.IsZero())

	require.NoError(t, c.Shutdown(context.Background()))
	st = c.Status()
	require.True(t, st.Stopped)
	require.False(t, st.Ready)
	require.False(t, st.Healthy(), "a stopped consumer is not healthy")
	require.NoError(t, st.Err)
	require.Empty(t, st.Shards)
}

// A child shard whose parent has not ended says so.
func TestStatusWaitingForParents(t *testing.T) {
	srv := kinesistest.New(kinesistest.Options{})
	srv.MustCreateStream("s", 1)
	store := lease.NewMemoryStore()
	ctx := context.Background()
	// A parent held by a worker that never finishes it, and its child,
	// left owned by this worker by an earlier run (which it takes back at
	// once; a free child would not be taken before its parent ended).
	_, err := store.Create(ctx, lease.Lease{Key: "shardId-000000000000", Owner: "other", Checkpoint: checkpoint.TrimHorizon})
	require.NoError(t, err)
	_, err = store.Create(ctx, lease.Lease{Key: "shardId-000000000001", Owner: "w", ParentShardIDs: []string{"shardId-000000000000"}, Checkpoint: checkpoint.TrimHorizon})
	require.NoError(t, err)
	p := &cpProc{batches: make(chan []consumer.Record, 16)}
	c, err := consumer.New(srv, store, consumer.ProcessorFactoryFunc(func(string) consumer.RecordProcessor { return p }), consumer.Config{
		ApplicationName: "app", StreamName: "s", WorkerID: "w",
		FailoverTime:          time.Hour,
		LeaseInitialTakeDelay: -1,
		MaxLeasesForWorker:    1,
		Logger:                testLogger(t),
	})
	require.NoError(t, err)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(rctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, func() bool {
		st := c.Status()
		return len(st.Shards) == 1 && st.Shards[0].State == consumer.ShardWaitingForParents
	})
	st := c.Status()
	require.Equal(t, "shardId-000000000001", st.Shards[0].LeaseKey)
	require.Equal(t, checkpoint.TrimHorizon, st.Shards[0].Checkpoint)
	require.True(t, st.Shards[0].LastFetch.IsZero())
	require.EqualValues(t, -1, st.Shards[0].MillisBehindLatest)
}

func TestStatusHealthy(t *testing.T) {
	at := time.Unix(1_800_000_000, 0)
	for _, c := range []struct {
		name string
		st   consumer.Status
		want bool
	}{
		{"nothing failing", consumer.Status{At: at, UnhealthyAfter: time.Minute}, true},
		{"store failing, not long", consumer.Status{At: at, UnhealthyAfter: time.Minute, StoreFailingSince: at.Add(-time.Minute)}, true},
		{"store failing too long", consumer.Status{At: at, UnhealthyAfter: time.Minute, StoreFailingSince: at.Add(-time.Minute - 1)}, false},
		{"stream failing too long", consumer.Status{At: at, UnhealthyAfter: time.Minute, StreamFailingSince: at.Add(-time.Hour)}, false},
		{"failing, but off", consumer.Status{At: at, UnhealthyAfter: -1, StreamFailingSince: at.Add(-time.Hour)}, true},
		{"stopped", consumer.Status{At: at, UnhealthyAfter: time.Minute, Stopped: true}, false},
	} {
		require.Equal(t, c.want, c.st.Healthy(), c.name)
	}
}

// failingStore fails every call while fail is set, with DynamoDB's own
// error for an outage.
type failingStore struct {
	lease.Store
	fail atomic.Bool
}

func (s *failingStore) err() error {
	if s.fail.Load() {
		return &ddbtypes.InternalServerError{Message: aws.String("injected outage")}
	}
	return nil
}

func (s *failingStore) List(ctx context.Context) ([]lease.Lease, error) {
	if err := s.err(); err != nil {
		return nil, err
	}
	return s.Store.List(ctx)
}

func (s *failingStore) Renew(ctx context.Context, l lease.Lease) (lease.Lease, error) {
	if err := s.err(); err != nil {
		return lease.Lease{}, err
	}
	return s.Store.Renew(ctx, l)
}

func (s *failingStore) UpdateCheckpoint(ctx context.Context, l lease.Lease, pos checkpoint.Position) (lease.Lease, error) {
	if err := s.err(); err != nil {
		return lease.Lease{}, err
	}
	return s.Store.UpdateCheckpoint(ctx, l, pos)
}

func logCount(b *syncBuffer, line string) int { return strings.Count(b.String(), line) }

const (
	unhealthyLine = "calls failing for longer than UnhealthyAfter"
	recoveredLine = "calls succeed again"
)

// healthRun runs one worker on a fake clock and returns it once it
// processes its shard.
func healthRun(t *testing.T, srv *kinesistest.Server, store lease.Store, clk *clock.Fake, logs *syncBuffer) *consumer.Consumer {
	t.Helper()
	p := &cpProc{batches: make(chan []consumer.Record, 1024)}
	c, err := consumer.New(srv, store, consumer.ProcessorFactoryFunc(func(string) consumer.RecordProcessor { return p }), consumer.Config{
		ApplicationName: "app", StreamName: "s", WorkerID: "w",
		InitialPosition:      consumer.InitialPosition{Type: consumer.TrimHorizon},
		IdleTimeBetweenReads: consumer.MinIdleTimeBetweenReads,
		// The lease cannot expire while the test moves the clock.
		FailoverTime:          1000 * time.Hour,
		LeaseInitialTakeDelay: -1,
		UnhealthyAfter:        time.Minute,
		Clock:                 clk,
		Logger:                slog.New(slog.NewTextHandler(logs, nil)),
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	put(t, srv, "a")
	for len(c.Status().Shards) == 0 || c.Status().Shards[0].LastProcessed.IsZero() {
		clk.Advance(time.Second)
		time.Sleep(time.Millisecond)
	}
	require.True(t, c.Status().Healthy())
	return c
}

// advanceUntil moves the fake clock a step at a time until cond holds.
func advanceUntil(clk *clock.Fake, step time.Duration, cond func() bool) {
	for !cond() {
		clk.Advance(step)
		time.Sleep(time.Millisecond)
	}
}

// A lease store failing for longer than UnhealthyAfter makes the consumer
// unhealthy, logged once (not per failure); a success makes it healthy
// again, logged once too.
func TestStatusStoreFailing(t *testing.T) {
	srv := kinesistest.New(kinesistest.Options{})
	srv.MustCreateStream("s", 1)
	store := &failingStore{Store: lease.NewMemoryStore()}
	clk := clock.NewFake(time.Unix(1_800_000_000, 0))
	logs := &syncBuffer{}
	c := healthRun(t, srv, store, clk, logs)

	store.fail.Store(true)
	start := clk.Now()
	advanceUntil(clk, 10*time.Second, func() bool { return !c.Status().StoreFailingSince.IsZero() })
	st := c.Status()
	require.False(t, st.StoreFailingSince.Before(start))
	require.ErrorContains(t, st.StoreErr, "injected outage")
	require.True(t, st.StreamFailingSince.IsZero(), "Kinesis still answers")
	advanceUntil(clk, 10*time.Second, func() bool { return c.Status().StoreUnhealthy() })
	st = c.Status()
	require.False(t, st.Healthy())
	require.Greater(t, st.At.Sub(st.StoreFailingSince), time.Minute)
	// More failures, and the clock well past the bound: still one line.
	failedSince := st.StoreFailingSince
	for range 30 {
		clk.Advance(10 * time.Second)
		time.Sleep(time.Millisecond)
	}
	waitFor(t, func() bool { return logCount(logs, unhealthyLine) > 0 })
	require.Equal(t, 1, logCount(logs, unhealthyLine))
	require.Equal(t, failedSince, c.Status().StoreFailingSince, "failing continuously since the first failure")
	require.Zero(t, logCount(logs, recoveredLine))

	store.fail.Store(false)
	advanceUntil(clk, 10*time.Second, func() bool { return c.Status().StoreFailingSince.IsZero() })
	require.True(t, c.Status().Healthy())
	require.NoError(t, c.Status().StoreErr)
	waitFor(t, func() bool { return logCount(logs, recoveredLine) > 0 })
	require.Equal(t, 1, logCount(logs, recoveredLine))
	require.Equal(t, 1, logCount(logs, unhealthyLine))
}

// Kinesis calls failing (kinesistest's fault gate: InternalFailure on every
// GetRecords) for longer than UnhealthyAfter make the consumer unhealthy.
func TestStatusStreamFailing(t *testing.T) {
	srv := kinesistest.New(kinesistest.Options{})
	srv.MustCreateStream("s", 1)
	clk := clock.NewFake(time.Unix(1_800_000_000, 0))
	logs := &syncBuffer{}
	c := healthRun(t, srv, lease.NewMemoryStore(), clk, logs)

	srv.FailNext(kinesistest.OpGetRecords, 1<<30, nil)
	advanceUntil(clk, time.Second, func() bool { return !c.Status().StreamFailingSince.IsZero() })
	require.True(t, c.Status().Healthy(), "not failing for long yet")
	advanceUntil(clk, 5*time.Second, func() bool { return c.Status().StreamUnhealthy() })
	st := c.Status()
	require.False(t, st.Healthy())
	require.True(t, st.StoreFailingSince.IsZero(), "the lease store still answers")
	require.Error(t, st.StreamErr)
	for range 30 {
		clk.Advance(5 * time.Second)
		time.Sleep(time.Millisecond)
	}
	waitFor(t, func() bool { return logCount(logs, unhealthyLine) > 0 })
	require.Equal(t, 1, logCount(logs, unhealthyLine))

	srv.ResetFaults()
	advanceUntil(clk, 5*time.Second, func() bool { return c.Status().StreamFailingSince.IsZero() })
	require.True(t, c.Status().Healthy())
	waitFor(t, func() bool { return logCount(logs, recoveredLine) > 0 })
	require.Equal(t, 1, logCount(logs, recoveredLine))
}
