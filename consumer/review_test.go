package consumer_test

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/aggregation"
	"github.com/shardflow/shardflow/checkpoint"
	"github.com/shardflow/shardflow/clock"
	"github.com/shardflow/shardflow/consumer"
	"github.com/shardflow/shardflow/kinesistest"
	"github.com/shardflow/shardflow/lease"
)

// shardProc records per shard what its processors saw; the processor of
// the shard named in block waits in ProcessRecords until unblock is closed.
type shardProc struct {
	mu      sync.Mutex
	started map[string]bool
	data    map[string][]string
	ended   chan string
	block   string
	unblock chan struct{}
	blocked chan struct{}
	once    sync.Once
}

func newShardProc(block string) *shardProc {
	return &shardProc{
		started: map[string]bool{},
		data:    map[string][]string{},
		ended:   make(chan string, 16),
		block:   block,
		unblock: make(chan struct{}),
		blocked: make(chan struct{}),
	}
}

func (f *shardProc) factory() consumer.ProcessorFactory {
	return consumer.ProcessorFactoryFunc(func(shardID string) consumer.RecordProcessor {
		return &shardProcOne{f: f, shard: shardID}
	})
}

func (f *shardProc) isStarted(shard string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.started[shard]
}

func (f *shardProc) got(shard string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.data[shard]...)
}

type shardProcOne struct {
	f     *shardProc
	shard string
}

func (p *shardProcOne) Initialize(context.Context, consumer.InitializeInput) error {
	p.f.mu.Lock()
	p.f.started[p.shard] = true
	p.f.mu.Unlock()
	return nil
}

func (p *shardProcOne) ProcessRecords(ctx context.Context, in consumer.ProcessRecordsInput) error {
	if p.shard == p.f.block {
		p.f.once.Do(func() { close(p.f.blocked) })
		select {
		case <-p.f.unblock:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	p.f.mu.Lock()
	for _, r := range in.Records {
		p.f.data[p.shard] = append(p.f.data[p.shard], string(r.Data))
	}
	p.f.mu.Unlock()
	return in.Checkpointer.Checkpoint(ctx)
}

func (p *shardProcOne) LeaseLost(context.Context, consumer.LeaseLostInput) {}

func (p *shardProcOne) ShardEnded(ctx context.Context, in consumer.ShardEndedInput) error {
	if err := in.Checkpointer.Checkpoint(ctx); err != nil {
		return err
	}
	p.f.ended <- p.shard
	return nil
}

func (p *shardProcOne) ShutdownRequested(ctx context.Context, in consumer.ShutdownRequestedInput) error {
	return in.Checkpointer.Checkpoint(ctx)
}

func putAt(t *testing.T, srv *kinesistest.Server, stream, hashKey, data string) {
	t.Helper()
	_, err := srv.PutRecord(context.Background(), &kinesis.PutRecordInput{
		StreamName: aws.String(stream), PartitionKey: aws.String("k"), ExplicitHashKey: aws.String(hashKey), Data: []byte(data),
	})
	require.NoError(t, err)
}

// A merge child whose other parent has no lease yet (that parent is the
// child of a split whose own parent is still being processed, and no shard
// sync ran since) must not start before that parent was processed: the
// lease created at the first parent's shard end must not let the child
// overtake it, nor hide the leaseless parent from the shard sync.
func TestMergeChildWaitsForLeaselessParent(t *testing.T) {
	ctx := context.Background()
	srv := kinesistest.New(kinesistest.Options{})
	srv.MustCreateStream("s", 2)
	ids := srv.ShardIDs("s")
	shards, err := srv.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("s")})
	require.NoError(t, err)
	r0, r1 := shards.Shards[0].HashKeyRange, shards.Shards[1].HashKeyRange
	quarter := midpoint(t, aws.ToString(r0.StartingHashKey), aws.ToString(r0.EndingHashKey))
	putAt(t, srv, "s", aws.ToString(r0.StartingHashKey), "p0")

	f := newShardProc(ids[0])
	c, err := consumer.New(srv, lease.NewMemoryStore(), f.factory(), consumer.Config{
		ApplicationName: "app", StreamName: "s", WorkerID: "w",
		InitialPosition:         consumer.InitialPosition{Type: consumer.TrimHorizon},
		IdleTimeBetweenReads:    consumer.MinIdleTimeBetweenReads,
		FailoverTime:            time.Hour, // leases never expire, whatever the machine's speed
		LeaseInitialTakeDelay:   -1,        // both shards in the first pass
		ShardSyncInterval:       time.Hour, // only the start-up sync and shard ends create leases
		ParentShardPollInterval: 50 * time.Millisecond,
		Logger:                  testLogger(t),
	})
	require.NoError(t, err)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(rctx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-f.blocked // shard 0 lags behind

	// Split shard 0 (children 2 and 3), merge 3 with 1 (child 4).
	_, err = srv.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String("s"), ShardToSplit: aws.String(ids[0]), NewStartingHashKey: aws.String(quarter)})
	require.NoError(t, err)
	putAt(t, srv, "s", quarter, "in3")
	ids = srv.ShardIDs("s")
	_, err = srv.MergeShards(ctx, &kinesis.MergeShardsInput{StreamName: aws.String("s"), ShardToMerge: aws.String(ids[3]), AdjacentShardToMerge: aws.String(ids[1])})
	require.NoError(t, err)
	ids = srv.ShardIDs("s")
	merged := ids[4]
	putAt(t, srv, "s", aws.ToString(r1.StartingHashKey), "in4")

	require.Equal(t, ids[1], <-f.ended, "shard 1 ends first")
	// The merge child's lease exists now; it must wait for shard 3, which
	// cannot start before shard 0 ends.
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		require.False(t, f.isStarted(merged), "merge child %s started while its parent %s was not processed", merged, ids[3])
		time.Sleep(20 * time.Millisecond)
	}
	close(f.unblock)
	waitFor(t, func() bool { return len(f.got(merged)) > 0 })
	require.Equal(t, []string{"in3"}, f.got(ids[3]))
	require.Equal(t, []string{"in4"}, f.got(merged))
}

// Cancelling Run's context leaves no goroutine of the consumer running,
// and neither do Shutdown nor a Shutdown whose context ended.
func TestNoGoroutinesLeftAfterStop(t *testing.T) {
	for _, how := range []string{"cancel", "shutdown", "shutdown-expired"} {
		base := runtime.NumGoroutine()
		p := newChanProc()
		srv := kinesistest.New(kinesistest.Options{})
		srv.MustCreateStream("s", 1)
		c, err := consumer.New(srv, lease.NewMemoryStore(), consumer.ProcessorFactoryFunc(func(string) consumer.RecordProcessor { return p }), consumer.Config{
			ApplicationName: "app", StreamName: "s", WorkerID: "w",
			InitialPosition:      consumer.InitialPosition{Type: consumer.TrimHorizon},
			IdleTimeBetweenReads: consumer.MinIdleTimeBetweenReads,
			// The lease must not expire on its own: on a busy machine a
			// renewal late by a second would lose it, and a pipeline that
			// gets LeaseLost instead of ShutdownRequested leaves this
			// test's waiter behind, a goroutine that never exits.
			FailoverTime:      time.Hour,
			ShardSyncInterval: 50 * time.Millisecond,
			Logger:            testLogger(t),
		})
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		put(t, srv, "a")
		<-p.batches
		p.release <- nil
		switch how {
		case "cancel":
			cancel()
			require.ErrorIs(t, <-done, context.Canceled)
		case "shutdown":
			go func() { <-p.shutdown }()
			require.NoError(t, c.Shutdown(context.Background()))
			require.NoError(t, <-done)
		default:
			sctx, scancel := context.WithCancel(context.Background())
			scancel()
			require.ErrorIs(t, c.Shutdown(sctx), context.Canceled)
			<-done
		}
		cancel()
		// Goroutines may take a moment to exit; one that never does is
		// reported (with every stack) by the test binary's -timeout.
		waitFor(t, func() bool { return runtime.NumGoroutine() <= base })
	}
}

// Leases handed back (graceful shutdown) are not counted as losses.
func TestReleasedLeasesAreNotCountedAsLost(t *testing.T) {
	p := newChanProc()
	m := &countingMetrics{}
	srv, _, c, done := single(t, p, func(cfg *consumer.Config) { cfg.Metrics = m })
	put(t, srv, "a")
	<-p.batches
	p.release <- nil
	// The shard ends: its lease is released, and its children are taken.
	// (single's leases never expire, so no loss can come from a slow
	// renewal.)
	ids := srv.ShardIDs("s")
	_, err := srv.SplitShard(context.Background(), &kinesis.SplitShardInput{
		StreamName: aws.String("s"), ShardToSplit: aws.String(ids[0]), NewStartingHashKey: aws.String("1000"),
	})
	require.NoError(t, err)
	waitFor(t, func() bool { return m.taken.Load() >= 3 })
	for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); {
		require.Zero(t, m.lost.Load(), "the ended shard's released lease is not lost")
		time.Sleep(10 * time.Millisecond)
	}
	go func() {
		for range p.shutdown {
		}
	}()
	require.NoError(t, c.Shutdown(context.Background()))
	close(p.shutdown)
	require.NoError(t, <-done)
	done <- nil
	require.Zero(t, m.lost.Load(), "a released lease is not lost")
}

// Setting only one bound of a Backoff takes the default for the other,
// adjusted so the pair is valid.
func TestBackoffPartialSettings(t *testing.T) {
	srv := kinesistest.New(kinesistest.Options{})
	f := consumer.ProcessRecord(func(context.Context, string, consumer.Record) error { return nil })
	for _, b := range []consumer.Backoff{{Max: 100 * time.Millisecond}, {Initial: time.Minute}} {
		_, err := consumer.New(srv, lease.NewMemoryStore(), f, consumer.Config{
			ApplicationName: "app", StreamName: "s",
			ProcessorRetryBackoff: b, ThrottleBackoff: b,
		})
		require.NoError(t, err, "%+v", b)
	}
}

// stubbornProc ignores its context: the first instance blocks in
// ProcessRecords until unblock is closed.
type stubbornProc struct {
	inst    int
	log     chan string
	unblock chan struct{}
}

func (p *stubbornProc) Initialize(context.Context, consumer.InitializeInput) error {
	p.log <- "init" + string(rune('0'+p.inst))
	return nil
}

func (p *stubbornProc) ProcessRecords(ctx context.Context, in consumer.ProcessRecordsInput) error {
	p.log <- "process" + string(rune('0'+p.inst))
	if p.inst == 1 {
		<-p.unblock
		p.log <- "return1"
		return nil
	}
	return in.Checkpointer.Checkpoint(ctx)
}

func (p *stubbornProc) LeaseLost(context.Context, consumer.LeaseLostInput) {
	p.log <- "lost" + string(rune('0'+p.inst))
}
func (p *stubbornProc) ShardEnded(ctx context.Context, in consumer.ShardEndedInput) error {
	return in.Checkpointer.Checkpoint(ctx)
}
func (p *stubbornProc) ShutdownRequested(context.Context, consumer.ShutdownRequestedInput) error {
	return nil
}

// A lease lost and taken back while the old processor is still busy (it
// ignores its context) gets a new processor only after the old one
// returned and got LeaseLost: never two pipelines for one shard.
func TestReacquiredLeaseWaitsForOldPipeline(t *testing.T) {
	ctx := context.Background()
	log := make(chan string, 64)
	unblock := make(chan struct{})
	var n int
	var mu sync.Mutex
	srv := kinesistest.New(kinesistest.Options{})
	srv.MustCreateStream("s", 1)
	store := lease.NewMemoryStore()
	const key = "shardId-000000000000"
	// The lease exists before Run and the record is there, so the first
	// take pass and read need no time to pass.
	_, err := store.Create(ctx, lease.Lease{Key: key, Checkpoint: checkpoint.TrimHorizon})
	require.NoError(t, err)
	put(t, srv, "a")
	// The consumer runs on a fake clock that moves only when the test
	// moves it, and never by a failover time: its lease cannot expire on
	// its own however slow the machine (a loss the test did not cause
	// would change which processor instance blocks).
	clk := clock.NewFake(time.Time{})
	c, err := consumer.New(srv, store, consumer.ProcessorFactoryFunc(func(string) consumer.RecordProcessor {
		mu.Lock()
		defer mu.Unlock()
		n++
		return &stubbornProc{inst: n, log: log, unblock: unblock}
	}), consumer.Config{
		ApplicationName: "app", StreamName: "s", WorkerID: "w",
		InitialPosition:         consumer.InitialPosition{Type: consumer.TrimHorizon},
		IdleTimeBetweenReads:    consumer.MinIdleTimeBetweenReads,
		FailoverTime:            time.Minute,
		LeaseExpiryScanInterval: time.Second,
		LeaseInitialTakeDelay:   -1,
		Clock:                   clk,
		Logger:                  testLogger(t),
	})
	require.NoError(t, err)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(rctx) }()
	t.Cleanup(func() { cancel(); <-done })
	require.Equal(t, "init1", <-log)
	require.Equal(t, "process1", <-log)

	l, err := store.Get(ctx, key)
	require.NoError(t, err)
	l, err = store.Take(ctx, l, "thief")
	require.NoError(t, err)
	_, err = store.Release(ctx, l)
	require.NoError(t, err)
	// Let w's renewal find the lease lost and a take pass take it back,
	// a second at a time, until w holds it again (far less than the
	// failover time passes before it does: a renewal interval and a scan).
	for {
		l, err = store.Get(ctx, key)
		require.NoError(t, err)
		if l.Owner == "w" && l.Counter > 2 {
			break
		}
		clk.Advance(time.Second)
		time.Sleep(time.Millisecond)
	}
	select {
	case ev := <-log:
		t.Fatalf("%s while the old processor is still in ProcessRecords", ev)
	case <-time.After(300 * time.Millisecond):
	}
	close(unblock)
	require.Equal(t, "return1", <-log)
	require.Equal(t, "lost1", <-log)
	require.Equal(t, "init2", <-log)
	require.Equal(t, "process2", <-log)
}

// An iterator that expires while records are prefetched but not yet
// delivered is renewed after the last record read: the prefetched records
// are delivered once, and nothing after them is skipped.
func TestExpiredIteratorWithPrefetchedRecords(t *testing.T) {
	p := newChanProc()
	m := &countingMetrics{}
	calls := make(chan struct{}, 1024)
	// The hook itself fails the first read after expireNext is set, and
	// says so: a FailNext queued while a read is between its hook and its
	// fault check may miss that read, which could then return c before
	// any expiry (failed 2 in 100 under load).
	var expireNext atomic.Bool
	expired := make(chan struct{}, 1)
	srv, _, _, _ := single(t, p, func(cfg *consumer.Config) { cfg.Metrics = m })
	srv.SetHook(func(_ context.Context, op string) error {
		if op == kinesistest.OpGetRecords {
			if expireNext.CompareAndSwap(true, false) {
				expired <- struct{}{}
				return &types.ExpiredIteratorException{Message: aws.String("expired")}
			}
			calls <- struct{}{}
		}
		return nil
	})
	put(t, srv, "a")
	in := <-p.batches
	require.Equal(t, "a", string(in.Records[0].Data))
	put(t, srv, "b")
	for len(calls) > 0 {
		<-calls
	}
	<-calls
	<-calls // a read started after b was written has returned b
	expireNext.Store(true)
	<-expired // the iterator expired with b prefetched and c not yet written
	put(t, srv, "c")
	p.release <- nil
	var got []string
	for len(got) < 2 {
		in := <-p.batches
		p.release <- nil
		for _, r := range in.Records {
			got = append(got, string(r.Data))
		}
	}
	require.Equal(t, []string{"b", "c"}, got)
	require.Equal(t, int64(1), m.expired.Load())
	select {
	case in := <-p.batches:
		t.Fatalf("unexpected batch %v", in.Records)
	case <-time.After(250 * time.Millisecond):
	}
}

// Enhanced fan-out survives refused subscriptions (the previous one still
// in use) and reads every record once, in order.
func TestFanOutSubscriptionErrors(t *testing.T) {
	srv := kinesistest.New(kinesistest.Options{})
	srv.MustCreateStream("s", 1)
	c, seen := newFanOutConsumer(t, srv)
	// (Throttling and internal errors are retried by the SDK client first,
	// slowly; the consumer handles them in the same branch as this one.)
	srv.FailNext(kinesistest.OpSubscribeToShard, 3, &types.ResourceInUseException{Message: aws.String("in use")})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	put(t, srv, "a", "b")
	require.Equal(t, "a", <-seen)
	require.Equal(t, "b", <-seen)
	put(t, srv, "c", "d")
	require.Equal(t, "c", <-seen)
	require.Equal(t, "d", <-seen)
	select {
	case s := <-seen:
		t.Fatalf("%s delivered again", s)
	case <-time.After(200 * time.Millisecond):
	}
}

// A deregistered fan-out consumer is registered again, and reading goes on
// from where it stopped.
func TestFanOutConsumerReregistered(t *testing.T) {
	srv := kinesistest.New(kinesistest.Options{})
	arn := srv.MustCreateStream("s", 1)
	c, seen := newFanOutConsumer(t, srv)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	put(t, srv, "a")
	require.Equal(t, "a", <-seen)
	_, err := srv.DeregisterStreamConsumer(ctx, &kinesis.DeregisterStreamConsumerInput{StreamARN: aws.String(arn), ConsumerName: aws.String("app")})
	require.NoError(t, err)
	put(t, srv, "b")
	require.Equal(t, "b", <-seen, "reading goes on after the consumer was deregistered")
	out, err := srv.ListStreamConsumers(ctx, &kinesis.ListStreamConsumersInput{StreamARN: aws.String(arn)})
	require.NoError(t, err)
	require.Len(t, out.Consumers, 1)
}

// Shutdown before Run prevents it; Run twice is refused; Shutdown racing
// with Run's context ending returns, and is idempotent.
func TestRunShutdownLifecycle(t *testing.T) {
	srv := kinesistest.New(kinesistest.Options{})
	srv.MustCreateStream("s", 1)
	newC := func() *consumer.Consumer {
		c, err := consumer.New(srv, lease.NewMemoryStore(), consumer.ProcessRecord(func(context.Context, string, consumer.Record) error { return nil }),
			consumer.Config{ApplicationName: "app", StreamName: "s", WorkerID: "w", FailoverTime: time.Second, Logger: testLogger(t)})
		require.NoError(t, err)
		return c
	}
	c := newC()
	require.NoError(t, c.Shutdown(context.Background()))
	require.ErrorIs(t, c.Run(context.Background()), consumer.ErrStopped)
	require.NoError(t, c.Shutdown(context.Background()))

	c = newC()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	for len(c.Shards()) == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	require.ErrorIs(t, c.Run(ctx), consumer.ErrStopped, "Run twice")
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			require.NoError(t, c.Shutdown(context.Background()))
		}()
	}
	cancel()
	wg.Wait()
	err := <-done
	require.True(t, err == nil || errors.Is(err, context.Canceled), "Run: %v", err)
	require.Empty(t, c.Shards())
}

// A worker resuming from a checkpoint inside a KPL aggregate skips the
// sub-records at or before it and delivers the rest, then later records;
// checkpointing that batch moves the checkpoint inside the aggregate.
func TestResumeInsideAggregate(t *testing.T) {
	ctx := context.Background()
	srv := kinesistest.New(kinesistest.Options{})
	srv.MustCreateStream("s", 1)
	blob, err := aggregation.Marshal([]aggregation.Record{
		{PartitionKey: "k", Data: []byte("s0")}, {PartitionKey: "k", Data: []byte("s1")}, {PartitionKey: "k", Data: []byte("s2")},
	})
	require.NoError(t, err)
	out, err := srv.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("k"), Data: blob})
	require.NoError(t, err)
	seq := aws.ToString(out.SequenceNumber)
	put(t, srv, "after")

	store := lease.NewMemoryStore()
	const key = "shardId-000000000000"
	_, err = store.Create(ctx, lease.Lease{Key: key, Checkpoint: checkpoint.At(seq, 1)})
	require.NoError(t, err)
	seen := make(chan string, 16)
	c, err := consumer.New(srv, store, consumer.ProcessRecord(func(_ context.Context, _ string, r consumer.Record) error {
		seen <- string(r.Data)
		return nil
	}), consumer.Config{
		ApplicationName: "app", StreamName: "s", WorkerID: "w", FailoverTime: time.Hour,
		IdleTimeBetweenReads: consumer.MinIdleTimeBetweenReads, Logger: testLogger(t),
	})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	require.Equal(t, "s2", <-seen)
	require.Equal(t, "after", <-seen)
	require.NoError(t, c.Shutdown(ctx))
	require.NoError(t, <-done)
	require.Empty(t, seen)
	l, err := store.Get(ctx, key)
	require.NoError(t, err)
	recs := srv.Records("s", key)
	require.Equal(t, checkpoint.At(aws.ToString(recs[1].SequenceNumber), 0), l.Checkpoint)
}

// newFanOutConsumer returns an enhanced fan-out consumer of stream "s" on
// srv's real SDK client, and the channel its processor sends each record's
// data to.
func newFanOutConsumer(t *testing.T, srv *kinesistest.Server) (*consumer.Consumer, chan string) {
	t.Helper()
	seen := make(chan string, 64)
	c, err := consumer.New(srv.Client(), lease.NewMemoryStore(), consumer.ProcessRecord(func(_ context.Context, _ string, r consumer.Record) error {
		seen <- string(r.Data)
		return nil
	}), consumer.Config{
		ApplicationName: "app", StreamName: "s", WorkerID: "w",
		InitialPosition: consumer.InitialPosition{Type: consumer.TrimHorizon},
		EnhancedFanOut:  true,
		FailoverTime:    time.Hour, // no expiry: nothing delivered twice because the machine is slow
		ThrottleBackoff: consumer.Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond},
		Logger:          testLogger(t),
	})
	require.NoError(t, err)
	return c, seen
}
