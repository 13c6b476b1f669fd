package consumer_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/checkpoint"
	"github.com/shardflow/shardflow/clock"
	"github.com/shardflow/shardflow/consumer"
	"github.com/shardflow/shardflow/kinesistest"
	"github.com/shardflow/shardflow/lease"
)

// A ResourceNotFoundException for a shard that ListShards still shows open
// is retried, not taken for the shard's end (which would checkpoint
// SHARD_END and drop the shard's later records for good).
func TestResourceNotFoundOnOpenShardIsRetried(t *testing.T) {
	for _, op := range []string{kinesistest.OpGetShardIterator, kinesistest.OpGetRecords} {
		t.Run(op, func(t *testing.T) {
			p := &docStyleProc{done: make(chan string, 16), failed: make(chan struct{}), ended: make(chan struct{})}
			srv, store, c, done := single(t, p, func(cfg *consumer.Config) {
				cfg.FailoverTime = time.Hour
				cfg.ThrottleBackoff = consumer.Backoff{Initial: time.Millisecond, Max: time.Millisecond}
			})
			_ = c
			srv.FailNext(op, 2, &types.ResourceNotFoundException{Message: aws.String("Shard shardId-000000000000 in stream s under account 000000000000 does not exist")})
			put(t, srv, "a")
			select {
			case got := <-p.done:
				require.Equal(t, "a", got)
			case <-p.ended:
				t.Fatal("an open shard was ended on ResourceNotFoundException")
			}
			require.NoError(t, c.Shutdown(context.Background()))
			require.NoError(t, <-done)
			done <- nil
			l, err := store.Get(context.Background(), "shardId-000000000000")
			require.NoError(t, err)
			require.False(t, l.Finished())
		})
	}
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// retentionMetrics counts retention restarts.
type retentionMetrics struct {
	consumer.NopMetrics
	mu       sync.Mutex
	restarts int
}

func (m *retentionMetrics) RetentionRestart(string) {
	m.mu.Lock()
	m.restarts++
	m.mu.Unlock()
}

// A checkpoint older than the stream's retention, which the iterator call
// refuses, restarts the shard at TRIM_HORIZON (as KCL does) instead of
// retrying forever; the loss is logged at Error with its range and counted.
func TestCheckpointOlderThanRetentionRestartsAtTrimHorizon(t *testing.T) {
	ctx := context.Background()
	kclk := clock.NewFake(time.Time{}) // the stream's clock, for retention
	srv := kinesistest.New(kinesistest.Options{Clock: kclk})
	srv.MustCreateStream("s", 1)
	put(t, srv, "a", "b")
	old := srv.Records("s", "shardId-000000000000")
	kclk.Advance(25 * time.Hour) // a and b are past the 24 h retention
	put(t, srv, "c")
	recs := srv.Records("s", "shardId-000000000000")
	last := recs[len(recs)-1]

	store := lease.NewMemoryStore()
	_, err := store.Create(ctx, lease.Lease{Key: "shardId-000000000000", Checkpoint: checkpoint.At(aws.ToString(old[0].SequenceNumber), 0)})
	require.NoError(t, err)
	// The service refuses a trimmed starting sequence number.
	srv.FailNext(kinesistest.OpGetShardIterator, 1, &types.InvalidArgumentException{Message: aws.String("StartingSequenceNumber is past the stream's retention")})

	var logs syncBuffer
	m := &retentionMetrics{}
	p := &docStyleProc{done: make(chan string, 16), failed: make(chan struct{})}
	c, err := consumer.New(srv, store, consumer.ProcessorFactoryFunc(func(string) consumer.RecordProcessor { return p }), consumer.Config{
		ApplicationName: "app", StreamName: "s", WorkerID: "w",
		IdleTimeBetweenReads: consumer.MinIdleTimeBetweenReads,
		FailoverTime:         time.Hour,
		ThrottleBackoff:      consumer.Backoff{Initial: time.Millisecond, Max: time.Millisecond},
		Logger:               slog.New(slog.NewTextHandler(&logs, nil)),
		Metrics:              m,
	})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	require.Equal(t, "c", <-p.done, "resumed at the trim horizon")
	require.NoError(t, c.Shutdown(ctx))
	require.NoError(t, <-done)

	m.mu.Lock()
	require.Equal(t, 1, m.restarts)
	m.mu.Unlock()
	out := logs.String()
	require.Contains(t, out, "level=ERROR")
	var line string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "records lost to the stream's retention") {
			line = l
		}
	}
	require.Contains(t, line, "lost_after="+aws.ToString(old[0].SequenceNumber))
	require.Contains(t, line, "lost_before="+aws.ToString(last.SequenceNumber))
	l, err := store.Get(ctx, "shardId-000000000000")
	require.NoError(t, err)
	require.Equal(t, checkpoint.At(aws.ToString(last.SequenceNumber), 0), l.Checkpoint)
}

// Enhanced fan-out: a ResourceNotFoundException from SubscribeToShard for
// a shard ListShards shows open is retried, not taken for its end.
func TestFanOutResourceNotFoundOnOpenShardIsRetried(t *testing.T) {
	srv := kinesistest.New(kinesistest.Options{})
	srv.MustCreateStream("s", 1)
	c, seen := newFanOutConsumer(t, srv)
	srv.FailNext(kinesistest.OpSubscribeToShard, 2, &types.ResourceNotFoundException{Message: aws.String("Shard shardId-000000000000 does not exist")})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	put(t, srv, "a")
	require.Equal(t, "a", <-seen, "the open shard is still read")
	require.NoError(t, c.Shutdown(ctx))
}

// Enhanced fan-out: a starting position the service refuses as past the
// retention restarts the subscription at TRIM_HORIZON.
func TestFanOutCheckpointOlderThanRetentionRestartsAtTrimHorizon(t *testing.T) {
	ctx := context.Background()
	kclk := clock.NewFake(time.Time{})
	srv := kinesistest.New(kinesistest.Options{Clock: kclk})
	srv.MustCreateStream("s", 1)
	put(t, srv, "a")
	old := srv.Records("s", "shardId-000000000000")
	kclk.Advance(25 * time.Hour)
	put(t, srv, "b")

	seen := make(chan string, 16)
	m := &retentionMetrics{}
	store := lease.NewMemoryStore()
	_, err := store.Create(ctx, lease.Lease{Key: "shardId-000000000000", Checkpoint: checkpoint.At(aws.ToString(old[0].SequenceNumber), 0)})
	require.NoError(t, err)
	c, err := consumer.New(srv.Client(), store, consumer.ProcessRecord(func(_ context.Context, _ string, r consumer.Record) error {
		seen <- string(r.Data)
		return nil
	}), consumer.Config{
		ApplicationName: "app", StreamName: "s", WorkerID: "w",
		EnhancedFanOut:  true,
		FailoverTime:    time.Hour,
		ThrottleBackoff: consumer.Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond},
		Metrics:         m,
		Logger:          testLogger(t),
	})
	require.NoError(t, err)
	srv.FailNext(kinesistest.OpSubscribeToShard, 1, &types.InvalidArgumentException{Message: aws.String("StartingSequenceNumber is past the stream's retention")})
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(rctx) }()
	t.Cleanup(func() { cancel(); <-done })
	require.Equal(t, "b", <-seen, "resumed at the trim horizon")
	m.mu.Lock()
	require.Equal(t, 1, m.restarts)
	m.mu.Unlock()
	require.NoError(t, c.Shutdown(ctx))
}
