package otelmetrics

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/shardflow/shardflow/consumer"
	"github.com/shardflow/shardflow/kinesistest"
	"github.com/shardflow/shardflow/lease"
	"github.com/shardflow/shardflow/producer"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// totals adds a counter's points by shard.
func totals(t *testing.T, ms map[string]metricdata.Metrics, sp spec) map[string]int64 {
	t.Helper()
	m, ok := ms[sp.name]
	require.True(t, ok, "no %s", sp.name)
	out := map[string]int64{}
	for _, p := range m.Data.(metricdata.Sum[int64]).DataPoints {
		s, _ := p.Attributes.Value(keyShard)
		out[s.AsString()] += p.Value
	}
	return out
}

// A real producer and consumer on kinesistest, read through the manual
// reader. Nothing waits on time.
func TestProducerAndConsumerOnKinesistest(t *testing.T) {
	ctx := t.Context()
	const stream, records, shards = "orders", 300, 3
	srv := kinesistest.New(kinesistest.Options{})
	t.Cleanup(func() { _ = srv.Close() })
	srv.MustCreateStream(stream, shards)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	r, mp := newReader(t)
	pm, err := NewProducer(mp, stream)
	require.NoError(t, err)
	cm, err := NewConsumer(mp, stream)
	require.NoError(t, err)
	t.Cleanup(func() { _ = cm.Close() })

	srv.FailNext(kinesistest.OpPutRecords, 1, &types.ProvisionedThroughputExceededException{Message: aws.String("slow down")})
	p, err := producer.New(srv, stream, producer.Config{Metrics: pm, Logger: quiet})
	require.NoError(t, err)
	for i := range records {
		_, err := p.Put(ctx, fmt.Sprintf("key-%d", i), []byte("payload"))
		require.NoError(t, err)
	}
	require.NoError(t, p.Close(ctx))

	var seen atomic.Int64
	all := make(chan struct{})
	c, err := consumer.New(srv, lease.NewMemoryStore(), consumer.ProcessRecord(func(context.Context, string, consumer.Record) error {
		if seen.Add(1) == records {
			close(all)
		}
		return nil
	}), consumer.Config{
		ApplicationName: "orders-app", StreamName: stream,
		InitialPosition:       consumer.InitialPosition{Type: consumer.TrimHorizon},
		IdleTimeBetweenReads:  consumer.MinIdleTimeBetweenReads,
		LeaseInitialTakeDelay: -1,
		Metrics:               cm,
		Logger:                quiet,
	})
	require.NoError(t, err)
	runErr := make(chan error, 1)
	go func() { runErr <- c.Run(ctx) }()
	select {
	case <-all:
	case err := <-runErr:
		t.Fatalf("consumer stopped early: %v", err)
	}
	running := collect(t, r) // the lag, while the shards are processed here
	require.NoError(t, c.Shutdown(ctx))
	require.NoError(t, <-runErr)

	ms := collect(t, r)
	shardIDs := srv.ShardIDs(stream)
	put := totals(t, ms, pUserPut)
	require.Len(t, put, shards)
	var sumPut int64
	for s, n := range put {
		require.Contains(t, shardIDs, s)
		sumPut += n
	}
	require.Equal(t, int64(records), sumPut)
	require.Equal(t, int64(records), sum(t, ms, pReceived, set(keyStream.String(stream))))
	var throttled int64
	for _, p := range ms[pErrorsByCode.name].Data.(metricdata.Sum[int64]).DataPoints {
		code, _ := p.Attributes.Value(keyCode)
		require.Equal(t, "ProvisionedThroughputExceededException", code.AsString())
		throttled += p.Value
	}
	require.Positive(t, throttled)

	var processed int64
	for s, n := range totals(t, ms, cProcessed) {
		require.Contains(t, shardIDs, s)
		processed += n
	}
	require.GreaterOrEqual(t, processed, int64(records))
	// Every shard reported its lag; one whose lease was lost (possible only
	// on a machine stalled past the failover time) would have dropped out.
	lag := gauge[float64](t, running, cBehindLatest)
	require.NotEmpty(t, lag)
	require.LessOrEqual(t, len(lag), shards)
	// Shut down, the worker reports no shard's lag: its shards are
	// released (ShardReleased), for their next owner to report.
	if m, ok := ms[cBehindLatest.name]; ok {
		require.Empty(t, m.Data.(metricdata.Gauge[float64]).DataPoints)
	}
}
