package consumer_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/checkpoint"
	"github.com/shardflow/shardflow/consumer"
	"github.com/shardflow/shardflow/kinesistest"
	"github.com/shardflow/shardflow/lease"
)

func TestConfigValidation(t *testing.T) {
	srv := kinesistest.New(kinesistest.Options{})
	store := lease.NewMemoryStore()
	f := consumer.ProcessRecord(func(context.Context, string, consumer.Record) error { return nil })
	ok := consumer.Config{ApplicationName: "app", StreamName: "s"}
	for name, mod := range map[string]func(*consumer.Config){
		"no application":         func(c *consumer.Config) { c.ApplicationName = "" },
		"no stream":              func(c *consumer.Config) { c.StreamName = "" },
		"idle under 200ms":       func(c *consumer.Config) { c.IdleTimeBetweenReads = 100 * time.Millisecond },
		"max records over 10000": func(c *consumer.Config) { c.MaxRecords = 10001 },
		"timestamp missing":      func(c *consumer.Config) { c.InitialPosition.Type = consumer.AtTimestamp },
		"negative failover":      func(c *consumer.Config) { c.FailoverTime = -time.Second },
		"initial take delay >= take interval": func(c *consumer.Config) {
			c.LeaseTakeInterval, c.LeaseInitialTakeDelay = time.Second, time.Second
		},
		"backoff max < initial": func(c *consumer.Config) {
			c.ProcessorRetryBackoff = consumer.Backoff{Initial: time.Second, Max: time.Millisecond}
		},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := ok
			mod(&cfg)
			_, err := consumer.New(srv, store, f, cfg)
			require.ErrorIs(t, err, consumer.ErrInvalidConfig)
		})
	}
	c, err := consumer.New(srv, store, f, ok)
	require.NoError(t, err)
	require.NotEmpty(t, c.WorkerID(), "a default worker id")
	require.NotEqual(t, consumer.DefaultWorkerID(), consumer.DefaultWorkerID())
}

// single runs one worker on a one-shard stream.
func single(t *testing.T, p consumer.RecordProcessor, mod func(*consumer.Config)) (*kinesistest.Server, lease.Store, *consumer.Consumer, chan error) {
	t.Helper()
	srv := kinesistest.New(kinesistest.Options{})
	srv.MustCreateStream("s", 1)
	store := lease.NewMemoryStore()
	cfg := consumer.Config{
		ApplicationName:      "app",
		StreamName:           "s",
		WorkerID:             "w",
		InitialPosition:      consumer.InitialPosition{Type: consumer.TrimHorizon},
		IdleTimeBetweenReads: consumer.MinIdleTimeBetweenReads,
		// The lease never expires on its own, however slow the machine:
		// a lease lost to a late renewal would redeliver records and
		// break tests that count deliveries.
		FailoverTime:          time.Hour,
		ProcessorRetryBackoff: consumer.Backoff{Initial: time.Millisecond, Max: 10 * time.Millisecond},
		Logger:                testLogger(t),
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := consumer.New(srv, store, consumer.ProcessorFactoryFunc(func(string) consumer.RecordProcessor { return p }), cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done // a hang is reported by the test binary's -timeout
	})
	return srv, store, c, done
}

// put stores data in one PutRecords call: the records arrive together, so
// a poll sees all of them or none, however the goroutines are scheduled
// (one PutRecord each let a poll land between them on a busy machine).
func put(t *testing.T, srv *kinesistest.Server, data ...string) {
	t.Helper()
	entries := make([]types.PutRecordsRequestEntry, len(data))
	for i, d := range data {
		entries[i] = types.PutRecordsRequestEntry{PartitionKey: aws.String("k"), Data: []byte(d)}
	}
	out, err := srv.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: entries})
	require.NoError(t, err)
	require.Zero(t, aws.ToInt32(out.FailedRecordCount))
}

// chanProc hands each call to the test.
type chanProc struct {
	batches    chan consumer.ProcessRecordsInput
	release    chan error // ProcessRecords returns what it receives here
	lost       chan consumer.Checkpointer
	shutdown   chan struct{}
	lastCP     atomic.Pointer[consumer.Checkpointer]
	ctxEnded   chan error
	blockOnCtx bool
}

func newChanProc() *chanProc {
	return &chanProc{
		batches:  make(chan consumer.ProcessRecordsInput, 16),
		release:  make(chan error, 16),
		lost:     make(chan consumer.Checkpointer, 1),
		shutdown: make(chan struct{}, 1),
		ctxEnded: make(chan error, 1),
	}
}

func (p *chanProc) Initialize(context.Context, consumer.InitializeInput) error { return nil }
func (p *chanProc) ProcessRecords(ctx context.Context, in consumer.ProcessRecordsInput) error {
	cp := in.Checkpointer
	p.lastCP.Store(&cp)
	select {
	case p.batches <- in:
	case <-ctx.Done():
		return ctx.Err()
	}
	if p.blockOnCtx {
		<-ctx.Done()
		// The old owner tries to checkpoint anyway.
		p.ctxEnded <- in.Checkpointer.Checkpoint(context.Background())
		return ctx.Err()
	}
	select {
	case err := <-p.release:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
func (p *chanProc) LeaseLost(context.Context, consumer.LeaseLostInput) {
	var cp consumer.Checkpointer
	if v := p.lastCP.Load(); v != nil {
		cp = *v
	}
	p.lost <- cp
}
func (p *chanProc) ShardEnded(ctx context.Context, in consumer.ShardEndedInput) error {
	return in.Checkpointer.Checkpoint(ctx)
}
func (p *chanProc) ShutdownRequested(ctx context.Context, in consumer.ShutdownRequestedInput) error {
	p.shutdown <- struct{}{}
	return in.Checkpointer.Checkpoint(ctx)
}

// Lease loss interrupts a processor at once (its context ends), calls
// LeaseLost, and the old owner's checkpoints are refused.
func TestLeaseLostStopsShardAndRefusesCheckpoints(t *testing.T) {
	p := newChanProc()
	p.blockOnCtx = true
	// The worker learns of the theft at its next renewal: renew often. A
	// slow machine can only make it lose the lease by expiry instead, with
	// the same outcome.
	srv, store, _, _ := single(t, p, func(cfg *consumer.Config) { cfg.FailoverTime = time.Second })
	put(t, srv, "a", "b")
	in := <-p.batches
	require.Len(t, in.Records, 2)

	// Another worker takes the lease.
	l, err := store.Get(context.Background(), "shardId-000000000000")
	require.NoError(t, err)
	_, err = store.Take(context.Background(), l, "thief")
	require.NoError(t, err)

	// The blocked ProcessRecords was interrupted and its checkpoint refused.
	require.ErrorIs(t, <-p.ctxEnded, checkpoint.ErrLeaseLost)
	<-p.lost
	l, err = store.Get(context.Background(), "shardId-000000000000")
	require.NoError(t, err)
	require.Equal(t, "thief", l.Owner)
	require.Equal(t, checkpoint.TrimHorizon, l.Checkpoint, "nothing checkpointed by the old owner")
}

// Shutdown waits for the batch in progress, calls ShutdownRequested, then
// releases the lease; Run returns nil.
func TestShutdownIsGraceful(t *testing.T) {
	p := newChanProc()
	srv, store, c, done := single(t, p, nil)
	put(t, srv, "a")
	<-p.batches

	shut := make(chan error, 1)
	go func() { shut <- c.Shutdown(context.Background()) }()
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v while a batch was being processed", err)
	case <-p.shutdown:
		t.Fatal("ShutdownRequested while a batch was being processed")
	case <-time.After(50 * time.Millisecond):
	}
	p.release <- nil
	<-p.shutdown
	require.NoError(t, <-shut)
	require.NoError(t, <-done)
	done <- nil

	l, err := store.Get(context.Background(), "shardId-000000000000")
	require.NoError(t, err)
	require.Empty(t, l.Owner, "lease released")
	require.Equal(t, "a", string(in0(t, srv)), "sanity")
	require.False(t, l.Checkpoint.IsSentinel(), "ShutdownRequested checkpointed the delivered batch")
	require.NoError(t, c.Shutdown(context.Background()), "Shutdown is idempotent")
}

func in0(t *testing.T, srv *kinesistest.Server) []byte {
	recs := srv.Records("s", "shardId-000000000000")
	require.NotEmpty(t, recs)
	return recs[0].Data
}

// A failing processor gets the same records again; records it checkpointed
// before failing are not redelivered.
func TestProcessorErrorRetriesRemainder(t *testing.T) {
	p := newChanProc()
	srv, _, _, _ := single(t, p, nil)
	put(t, srv, "a", "b", "c")
	in := <-p.batches
	require.Len(t, in.Records, 3)
	require.NoError(t, in.Checkpointer.CheckpointAt(context.Background(), in.Records[0].Position()))
	p.release <- errors.New("boom")
	in = <-p.batches
	require.Len(t, in.Records, 2, "redelivered from after the checkpoint")
	require.Equal(t, "b", string(in.Records[0].Data))
	p.release <- nil
}

func TestProcessRecordAdapter(t *testing.T) {
	var calls atomic.Int64
	seen := make(chan string, 16)
	fn := func(ctx context.Context, shardID string, r consumer.Record) error {
		if string(r.Data) == "b" && calls.Add(1) == 1 {
			return errors.New("first try fails")
		}
		seen <- string(r.Data)
		return nil
	}
	srv := kinesistest.New(kinesistest.Options{})
	srv.MustCreateStream("s", 1)
	store := lease.NewMemoryStore()
	c, err := consumer.New(srv, store, consumer.ProcessRecord(fn), consumer.Config{
		ApplicationName: "app", StreamName: "s", WorkerID: "w",
		InitialPosition:       consumer.InitialPosition{Type: consumer.TrimHorizon},
		IdleTimeBetweenReads:  consumer.MinIdleTimeBetweenReads,
		FailoverTime:          time.Hour, // no expiry, no redelivery
		ProcessorRetryBackoff: consumer.Backoff{Initial: time.Millisecond, Max: time.Millisecond},
		Logger:                testLogger(t),
	})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- c.Run(context.Background()) }()
	put(t, srv, "a", "b", "c")
	var got []string
	for len(got) < 3 {
		got = append(got, <-seen)
	}
	require.Equal(t, []string{"a", "b", "c"}, got, "a is not redelivered, b is retried")
	require.NoError(t, c.Shutdown(context.Background()))
	require.NoError(t, <-done)
	l, err := store.Get(context.Background(), "shardId-000000000000")
	require.NoError(t, err)
	recs := srv.Records("s", "shardId-000000000000")
	require.Equal(t, checkpoint.At(aws.ToString(recs[2].SequenceNumber), 0), l.Checkpoint)
}

// With LATEST, records written before the shard's iterator was taken are
// not delivered; later ones are.
func TestInitialPositionLatest(t *testing.T) {
	p := newChanProc()
	srv := kinesistest.New(kinesistest.Options{})
	srv.MustCreateStream("s", 1)
	put(t, srv, "old")
	c, err := consumer.New(srv, lease.NewMemoryStore(), consumer.ProcessorFactoryFunc(func(string) consumer.RecordProcessor { return p }), consumer.Config{
		ApplicationName: "app", StreamName: "s", WorkerID: "w",
		IdleTimeBetweenReads:               consumer.MinIdleTimeBetweenReads,
		CallProcessRecordsEvenForEmptyList: true,
		FailoverTime:                       time.Hour, // no expiry, no restart at a later LATEST
		Logger:                             testLogger(t),
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	in := <-p.batches // an empty batch: the iterator exists
	require.Empty(t, in.Records)
	put(t, srv, "new")
	p.release <- nil
	for {
		in = <-p.batches
		p.release <- nil
		if len(in.Records) > 0 {
			break
		}
	}
	require.Len(t, in.Records, 1)
	require.Equal(t, "new", string(in.Records[0].Data))
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
}
