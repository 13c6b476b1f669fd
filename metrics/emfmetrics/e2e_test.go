package emfmetrics

import (
	"bytes"
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
)

// A real producer and consumer on kinesistest: every line they cause is
// valid EMF, and the sums add up. Nothing waits on time.
func TestProducerAndConsumerLines(t *testing.T) {
	ctx := t.Context()
	const stream, app, records, shards = "orders", "orders-app", 300, 3
	srv := kinesistest.New(kinesistest.Options{})
	t.Cleanup(func() { _ = srv.Close() })
	srv.MustCreateStream(stream, shards)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	var out bytes.Buffer
	e, err := New(&out, Options{})
	require.NoError(t, err)
	pm, err := e.Producer(stream)
	require.NoError(t, err)
	cm, err := e.Consumer(app)
	require.NoError(t, err)

	srv.FailNext(kinesistest.OpPutRecords, 1, &types.ProvisionedThroughputExceededException{Message: aws.String("slow down")})
	p, err := producer.New(srv, stream, producer.Config{Metrics: pm, Logger: quiet})
	require.NoError(t, err)
	for i := range records {
		_, err := p.Put(ctx, fmt.Sprintf("key-%d", i), []byte("payload"))
		require.NoError(t, err)
	}
	require.NoError(t, p.Close(ctx)) // waits for every outcome

	var seen atomic.Int64
	all := make(chan struct{})
	c, err := consumer.New(srv, lease.NewMemoryStore(), consumer.ProcessRecord(func(context.Context, string, consumer.Record) error {
		if seen.Add(1) == records {
			close(all)
		}
		return nil
	}), consumer.Config{
		ApplicationName: app, StreamName: stream,
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
	require.NoError(t, c.Shutdown(ctx))
	require.NoError(t, <-runErr)
	require.NoError(t, e.Flush())

	docs := parseEMF(t, out.Bytes())
	shardIDs := srv.ShardIDs(stream)
	var put, processed, throttled float64
	perShard := map[string]bool{}
	for _, d := range docs {
		switch d.Namespace {
		case DefaultProducerNamespace:
			require.Equal(t, stream, d.str(t, dimStream))
			if _, ok := d.Root[dimShard]; ok {
				require.Contains(t, shardIDs, d.str(t, dimShard))
			}
			if _, ok := d.Root[kplUserRecordsPut.name]; ok {
				put += d.values(t, kplUserRecordsPut.name)[0]
				perShard[d.str(t, dimShard)] = true
			}
			if _, ok := d.Root[kplErrorsByCode.name]; ok {
				require.Equal(t, "ProvisionedThroughputExceededException", d.str(t, dimCode))
				throttled += d.values(t, kplErrorsByCode.name)[0]
			}
		case app:
			if _, ok := d.Root[kclRecordsProcessed.name]; ok {
				require.Equal(t, opProcessTask, d.str(t, dimOperation))
				require.Contains(t, shardIDs, d.str(t, dimShard))
				processed += d.values(t, kclRecordsProcessed.name)[0]
			}
		default:
			t.Fatalf("unexpected namespace %s", d.Namespace)
		}
	}
	require.Equal(t, float64(records), put)
	require.Len(t, perShard, shards)
	require.Positive(t, throttled)
	require.GreaterOrEqual(t, processed, float64(records))
	require.Equal(t, []float64{records}, find(t, docs, DefaultProducerNamespace, map[string]string{dimStream: stream}).values(t, kplUserRecordsReceived.name))
	require.GreaterOrEqual(t, find(t, docs, app, map[string]string{dimOperation: opTakeLeases}).values(t, kclTakenLeases.name)[0], float64(shards))
}
