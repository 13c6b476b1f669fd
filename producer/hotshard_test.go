package producer

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/kinesistest"
)

// TestHotShardDoesNotStallOthers: a shard over its limit is throttled
// locally (token bucket, backoff) while another shard's records go at
// their buffering deadline. The fake enforces the service limits. Fake
// clock.
func TestHotShardDoesNotStallOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := newBubbleClock()
		srv, stream := newFake(t, 2, kinesistest.Options{Clock: clk, Limits: true, Seed: 5})
		p := newProducer(t, srv, stream, Config{Clock: clk, Logger: discardLogger(), DisableAggregation: true})
		driveUntil(t, clk, 0, func() bool { p.mu.Lock(); defer p.mu.Unlock(); return p.lanes != nil })
		ctx := context.Background()
		var hot, cold []put
		for i := 0; i < 4000; i++ {
			d := fmt.Sprintf("hot-%d", i)
			f, err := p.PutRecord(ctx, Record{PartitionKey: "h", ExplicitHashKey: "0", Data: []byte(d)}, nil)
			require.NoError(t, err)
			hot = append(hot, put{"h", d, f})
		}
		start := clk.Now()
		for i := 0; i < 200; i++ {
			d := fmt.Sprintf("cold-%d", i)
			f, err := p.PutRecord(ctx, Record{PartitionKey: "c", ExplicitHashKey: "340282366920938463463374607431768211455", Data: []byte(d)}, nil)
			require.NoError(t, err)
			cold = append(cold, put{"c", d, f})
		}
		driveUntil(t, clk, 10*time.Millisecond, func() bool { r, _ := p.Outstanding(); return r == 0 })
		require.Empty(t, reconcile(t, srv, stream, append(hot, cold...), false))
		var lastCold, lastHot time.Time
		for _, c := range cold {
			a := c.f.Result().Attempts
			lastCold = maxTime(lastCold, a[len(a)-1].Time)
		}
		for _, h := range hot {
			a := h.f.Result().Attempts
			lastHot = maxTime(lastHot, a[len(a)-1].Time)
		}
		require.LessOrEqual(t, lastCold.Sub(start), 2*DefaultRecordMaxBufferedTime, "cold shard held back")
		require.GreaterOrEqual(t, lastHot.Sub(start), 2500*time.Millisecond, "hot shard not limited")
	})
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// TestPeriodicMapRefresh: a reshard nobody's results reveal is picked up
// after ShardMapRefreshInterval. In a synctest bubble.
func TestPeriodicMapRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := newBubbleClock()
		srv, stream := newFake(t, 1, kinesistest.Options{Clock: clk})
		p := newProducer(t, srv, stream, Config{Clock: clk, Logger: discardLogger()})
		shards := func() int { p.mu.Lock(); defer p.mu.Unlock(); return len(p.shards) }
		driveUntil(t, clk, 0, func() bool { return shards() == 1 })
		_, err := srv.SplitShard(context.Background(), &kinesis.SplitShardInput{
			StreamName: aws.String(stream), ShardToSplit: aws.String("shardId-000000000000"),
			NewStartingHashKey: aws.String("170141183460469231731687303715884105728"),
		})
		require.NoError(t, err)
		clk.Advance(DefaultShardMapRefreshInterval - time.Second)
		for i := 0; i < 100; i++ {
			runtime.Gosched()
		}
		require.Equal(t, 1, shards())
		driveUntil(t, clk, 100*time.Millisecond, func() bool { return shards() == 2 })
	})
}

// TestCloseStopsGoroutines: nothing the producer started outlives Close.
func TestCloseStopsGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	srv, stream := newFake(t, 2, kinesistest.Options{})
	p, err := New(srv, stream, fastConfig())
	require.NoError(t, err)
	puts := putN(t, p, "g", 100)
	require.NoError(t, p.Close(context.Background()))
	waitAll(t, puts)
	// Close has waited for its goroutines; the runtime may take a moment
	// to retire them. A leak hangs here (go test -timeout shows it).
	for runtime.NumGoroutine() > before {
		runtime.Gosched()
	}
}
