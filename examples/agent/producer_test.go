package main

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/aggregation"
	"github.com/shardflow/shardflow/kinesistest"
	"github.com/shardflow/shardflow/producer"
)

// streamLines returns the user records stored in the stream, deaggregated.
func streamLines(srv *kinesistest.Server, stream string) []string {
	var out []string
	for _, sh := range srv.ShardIDs(stream) {
		for _, r := range srv.Records(stream, sh) {
			recs, _ := aggregation.Deaggregate(nil, r.Data, *r.PartitionKey)
			for _, u := range recs {
				out = append(out, string(u.Data))
			}
		}
	}
	return out
}

// watchedSink tells the test when the producer's buffer is full, so the
// next Put blocks.
type watchedSink struct {
	ProducerSink
	max  int
	once sync.Once
	full chan struct{}
}

func (s *watchedSink) Put(ctx context.Context, key string, data []byte, done func(error)) error {
	if n, _ := s.Producer.Outstanding(); n >= s.max {
		s.once.Do(func() { close(s.full) })
	}
	return s.ProducerSink.Put(ctx, key, data, done)
}

// End to end through the real producer into the in-memory Kinesis: the
// stream stalls (PutRecords hangs), the producer's buffer fills, Put blocks
// and the agent stops reading; when the stream recovers, with throttling on
// some records, every line is in the stream exactly once.
func TestProducerStalledStreamEndToEnd(t *testing.T) {
	const stream = "logs"
	srv := kinesistest.New(kinesistest.Options{Seed: 7})
	t.Cleanup(func() { srv.Close() })
	srv.MustCreateStream(stream, 2)

	release := make(chan struct{})
	srv.SetHook(func(ctx context.Context, op string) error {
		if op != kinesistest.OpPutRecords {
			return nil
		}
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})

	const maxBuffered = 200
	prod, err := producer.New(srv, stream, producer.Config{
		MaxBufferedRecords:    maxBuffered,
		AggregationMaxCount:   20,
		RecordMaxBufferedTime: 10 * time.Millisecond,
		RequestTimeout:        30 * time.Second,
		RecordTTL:             time.Minute,
		Logger:                testLogger(t),
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = prod.Close(context.Background())
	})

	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	lines := numbered("e2e", 1, 3000)
	appendLines(t, path, lines...)
	sink := &watchedSink{ProducerSink: ProducerSink{Producer: prod}, max: maxBuffered, full: make(chan struct{})}
	a := newTestAgent(t, Config{Files: path, Sink: sink, IsPermanent: IsPermanentProducerError, OffsetsPath: filepath.Join(dir, "offsets.json")})

	ctx := t.Context() // go test -timeout is the only bound: a slow machine must not fail this
	polled := make(chan error, 1)
	go func() { polled <- a.Poll(ctx) }()
	select {
	case <-sink.full:
	case err := <-polled:
		t.Fatalf("poll finished although the stream is stalled: %v", err)
	case <-ctx.Done():
		t.Fatal("the producer's buffer never filled")
	}
	st := a.Stats()
	require.LessOrEqual(t, st.LinesRead, int64(maxBuffered+1), "the agent stops reading while the producer is full")
	require.Zero(t, st.LinesSent)

	// Recovery, with a fifth of the records throttled once in a while.
	srv.FailRecords(0.2, "ProvisionedThroughputExceededException")
	close(release)
	require.NoError(t, waitFor(t, polled))
	require.NoError(t, prod.Flush(ctx))
	srv.FailRecords(0, "")
	for a.Stats().InFlight > 0 { // records the producer gave up on are sent again
		require.NoError(t, a.Poll(ctx))
		require.NoError(t, prod.Flush(ctx))
	}
	st = a.Stats()
	require.EqualValues(t, len(lines), st.LinesSent)
	require.Zero(t, st.LagBytes)
	got := streamLines(srv, stream)
	require.Len(t, got, len(lines), "exactly once")
	require.ElementsMatch(t, lines, got)

	require.NoError(t, a.SaveOffsets())
	saved, err := loadOffsets(filepath.Join(dir, "offsets.json"))
	require.NoError(t, err)
	require.EqualValues(t, len(lines), saved[0].Line)
}
