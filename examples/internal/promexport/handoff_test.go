// A shard handed over gracefully (the default way leases move when a
// worker joins) is not a loss, so LeaseLost is not called: the old owner
// must still drop its lag series (ShardReleased), or a lag alert on
// max by (shard) fires on a shard that is caught up.

package promexport

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/clock"
	"github.com/shardflow/shardflow/consumer"
	"github.com/shardflow/shardflow/kinesistest"
	"github.com/shardflow/shardflow/lease"
)

func lagSeries(t *testing.T, r *Registry) int {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, r.Write(&b))
	return strings.Count(b.String(), "shardflow_consumer_behind_latest_seconds{")
}

func TestHandedOffShardKeepsItsLagSeries(t *testing.T) {
	srv := kinesistest.New(kinesistest.Options{})
	srv.MustCreateStream("s", 2)
	for i := range 10 {
		_, err := srv.PutRecord(context.Background(), &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String(fmt.Sprintf("k%d", i)), Data: []byte("x")})
		require.NoError(t, err)
	}
	store := lease.NewMemoryStore()
	clk := clock.NewFake(time.Unix(1_800_000_000, 0))
	run := func(worker string, reg *Registry) *consumer.Consumer {
		c, err := consumer.New(srv, store, consumer.ProcessRecord(func(context.Context, string, consumer.Record) error { return nil }), consumer.Config{
			ApplicationName: "app", StreamName: "s", WorkerID: worker,
			InitialPosition:       consumer.InitialPosition{Type: consumer.TrimHorizon},
			IdleTimeBetweenReads:  consumer.MinIdleTimeBetweenReads,
			FailoverTime:          10 * time.Second,
			LeaseInitialTakeDelay: -1,
			Clock:                 clk,
			Metrics:               reg.Consumer("s"),
			Logger:                slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		return c
	}
	advanceUntil := func(cond func() bool) {
		for !cond() {
			clk.Advance(500 * time.Millisecond)
			time.Sleep(time.Millisecond)
		}
	}
	regA, regB := New(), New()
	a := run("a", regA)
	advanceUntil(func() bool { return len(a.Status().Shards) == 2 && lagSeries(t, regA) == 2 })

	b := run("b", regB)
	// b asks for its share; a hands one shard over gracefully.
	advanceUntil(func() bool {
		return len(a.Status().Shards) == 1 && len(b.Status().Shards) == 1 && lagSeries(t, regB) == 1
	})
	var out bytes.Buffer
	require.NoError(t, regA.Write(&out))
	require.NotContains(t, out.String(), "shardflow_consumer_leases_lost_total{", "handed over, not lost: LeaseLost was not called")
	require.Equal(t, 1, lagSeries(t, regA), "a processes one shard: its handed-over shard's lag is b's to report")
}
