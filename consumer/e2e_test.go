package consumer_test

import (
	"context"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/clock"
	"github.com/shardflow/shardflow/consumer"
	"github.com/shardflow/shardflow/kinesistest"
)

const (
	e2eShards  = 8
	e2eRecords = 200_000
)

// e2eContext is the context of an end-to-end test. It has no deadline: on
// a slow machine the test takes longer, it does not fail; a hang is caught
// by the test binary's -timeout.
func e2eContext(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return ctx
}

// (a) A worker dies without shutting down: its shards move to the others
// after the failover time and every record is processed.
func TestE2EKillWorker(t *testing.T) {
	ctx := e2eContext(t)
	n := recordCount(e2eRecords)
	srv := kinesistest.New(kinesistest.Options{})
	h := newHarness(t, srv, srv, e2eShards, n)
	w0, w1, w2 := h.start("w0", nil), h.start("w1", nil), h.start("w2", nil)

	h.produce(ctx, n/3)
	require.NoError(t, h.tr.waitUnique(ctx, n/6))
	// Wait until w2 holds shards, then kill it.
	waitFor(t, func() bool {
		for _, o := range h.owners() {
			if o == "w2" {
				return true
			}
		}
		return false
	})
	w2.cancel()
	require.ErrorIs(t, <-w2.done, context.Canceled)
	w2.done <- nil
	h.produce(ctx, n-n/3)

	h.finish(ctx, w0, w1)
	for k, o := range h.owners() {
		require.NotEqual(t, "w2", o, "lease %s still with the dead worker", k)
	}
}

// (b) Split and merge while producing: nothing is lost and per key the
// records are processed in order across parent and child shards. Child
// leases come from GetRecords' ChildShards, or (as with kinesalite, which
// reports none) from the shard sync.
func TestE2EReshardDuringProduction(t *testing.T) {
	for _, tc := range []struct {
		name string
		kc   func(*kinesistest.Server) consumer.Kinesis
	}{
		{"ChildShards", func(s *kinesistest.Server) consumer.Kinesis { return s }},
		{"ShardSyncOnly", func(s *kinesistest.Server) consumer.Kinesis { return noChildShards{s} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := e2eContext(t)
			n := recordCount(e2eRecords)
			if tc.name != "ChildShards" {
				n /= 4
			}
			srv := kinesistest.New(kinesistest.Options{})
			h := newHarness(t, srv, tc.kc(srv), e2eShards, n)
			// Slow readers and a fast shard sync: children get leases while
			// their parents still have a backlog, so reading a child before
			// its parents ended would break the per-key order.
			mod := func(c *consumer.Config) {
				c.KeepFinishedLeases = true // checked below
				c.MaxRecords = 1
				c.ShardSyncInterval = 300 * time.Millisecond
			}
			ws := []*worker{h.start("w0", mod), h.start("w1", mod), h.start("w2", mod)}
			reshard(ctx, t, h, n)
			h.finish(ctx, ws...)
			require.GreaterOrEqual(t, h.shardsEnded.Load(), int64(3), "the split parent and both merge parents end")
			ls, err := h.store.List(ctx)
			require.NoError(t, err)
			require.Len(t, ls, e2eShards+3, "leases for 2 split children and 1 merge child")
			for _, l := range ls {
				if len(l.ChildShardIDs) > 0 || l.Finished() {
					require.True(t, l.Finished(), "lease %s", l.Key)
				}
			}
		})
	}
}

// reshard produces n records in three parts with a split of shard 0 and a
// merge of shards 2 and 3 in between.
func reshard(ctx context.Context, t *testing.T, h *harness, n int) {
	srv := h.srv
	h.produce(ctx, n/3)
	ids := srv.ShardIDs(h.stream)
	shards, err := srv.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(h.stream)})
	require.NoError(t, err)
	r := shards.Shards[0].HashKeyRange
	mid := midpoint(t, aws.ToString(r.StartingHashKey), aws.ToString(r.EndingHashKey))
	_, err = srv.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String(h.stream), ShardToSplit: aws.String(ids[0]), NewStartingHashKey: aws.String(mid)})
	require.NoError(t, err)
	h.produce(ctx, n/3)
	_, err = srv.MergeShards(ctx, &kinesis.MergeShardsInput{StreamName: aws.String(h.stream), ShardToMerge: aws.String(ids[2]), AdjacentShardToMerge: aws.String(ids[3])})
	require.NoError(t, err)
	h.produce(ctx, n-2*(n/3))
}

// noChildShards hides GetRecords' ChildShards, like kinesalite.
type noChildShards struct{ *kinesistest.Server }

func (k noChildShards) GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	out, err := k.Server.GetRecords(ctx, in, optFns...)
	if out != nil {
		out.ChildShards = nil
	}
	return out, err
}

// (c) Graceful shutdown of one worker: the others take its shards without
// waiting for the failover time.
func TestE2EGracefulShutdownHandOver(t *testing.T) {
	ctx := e2eContext(t)
	n := recordCount(e2eRecords)
	srv := kinesistest.New(kinesistest.Options{})
	h := newHarness(t, srv, srv, e2eShards, n)
	const failover = 10 * time.Second // KCL's default: far longer than the hand-over may take
	mod := func(c *consumer.Config) {
		c.FailoverTime = failover
		c.LeaseExpiryScanInterval = 200 * time.Millisecond
		c.LeaseTakeInterval = time.Second
	}
	w0, w1, w2 := h.start("w0", mod), h.start("w1", mod), h.start("w2", mod)

	h.produce(ctx, n/2)
	waitFor(t, func() bool { // leases spread over the three workers
		count := map[string]int{}
		for _, o := range h.owners() {
			count[o]++
		}
		return count["w0"] > 0 && count["w1"] > 0 && count["w2"] > 0
	})

	require.NoError(t, w2.c.Shutdown(ctx))
	released := time.Now()
	require.NoError(t, <-w2.done)
	w2.done <- nil
	for k, o := range h.owners() {
		require.NotEqual(t, "w2", o, "lease %s not released on shutdown", k)
	}
	require.NotZero(t, h.shutdowns.Load(), "processors got ShutdownRequested")
	// Released (unowned, checked above), the leases are taken by the
	// others' next scans, not after a failover time; how long that takes
	// on this machine is logged, not asserted.
	waitFor(t, func() bool {
		for _, o := range h.owners() {
			if o == "" {
				return false
			}
		}
		return true
	})
	t.Logf("hand-over took %v (failover time %v)", time.Since(released), failover)

	h.produce(ctx, n-n/2)
	h.finish(ctx, w0, w1)
}

// (d) Throttled reads and expired iterators lose nothing.
func TestE2EThrottlingAndExpiredIterators(t *testing.T) {
	ctx := e2eContext(t)
	n := recordCount(e2eRecords)
	// The server runs on a fake clock so iterators can really expire; the
	// consumers use real time.
	fake := clock.NewFake(time.Now())
	srv := kinesistest.New(kinesistest.Options{Clock: fake})
	h := newHarness(t, srv, srv, e2eShards, n)
	m := &countingMetrics{}
	mod := func(c *consumer.Config) { c.Metrics = m }
	ws := []*worker{h.start("w0", mod), h.start("w1", mod), h.start("w2", mod)}

	srv.Throttle(kinesistest.OpGetRecords, 0.3)
	srv.Throttle(kinesistest.OpGetShardIterator, 0.2)
	h.produce(ctx, n/2)
	require.NoError(t, h.tr.waitUnique(ctx, n/8))
	// Every iterator held now expires (5 minutes on the server's clock).
	fake.Advance(6 * time.Minute)
	srv.FailNext(kinesistest.OpGetRecords, 5, &types.ExpiredIteratorException{Message: aws.String("injected")})
	h.produce(ctx, n-n/2)
	fake.Advance(6 * time.Minute)

	dups := h.finish(ctx, ws...)
	require.NotZero(t, m.throttled.Load(), "throttling was seen")
	require.NotZero(t, m.expired.Load(), "expired iterators were seen")
	t.Logf("throttled=%d expired=%d duplicates=%d", m.throttled.Load(), m.expired.Load(), dups)
}

// (e) A processor error on one batch: the batch is delivered again and
// nothing is skipped; a panic is handled the same way.
func TestE2EProcessorErrorRedelivers(t *testing.T) {
	for _, mode := range []string{"error", "panic"} {
		t.Run(mode, func(t *testing.T) {
			ctx := e2eContext(t)
			n := recordCount(e2eRecords) / 2
			srv := kinesistest.New(kinesistest.Options{})
			h := newHarness(t, srv, srv, e2eShards, n)
			var mu sync.Mutex
			failedFirst := "" // first record of the batch that failed
			redelivered := make(chan struct{})
			h.fail = func(shard string, call int, recs []consumer.Record) error {
				if len(recs) == 0 {
					return nil
				}
				first := string(recs[0].Data)
				mu.Lock()
				defer mu.Unlock()
				switch failedFirst {
				case "":
					failedFirst = first
					if mode == "panic" {
						panic("injected panic")
					}
					return errInjected
				case first:
					select {
					case <-redelivered:
					default:
						close(redelivered)
					}
				}
				return nil
			}
			ws := []*worker{h.start("w0", nil), h.start("w1", nil), h.start("w2", nil)}
			h.produce(ctx, n)
			select {
			case <-redelivered:
			case <-ctx.Done():
				t.Fatal("failed batch never delivered again")
			}
			h.finish(ctx, ws...)
		})
	}
}

func midpoint(t *testing.T, lo, hi string) string {
	a, b, sum, two := new(big.Int), new(big.Int), new(big.Int), new(big.Int)
	_, ok1 := a.SetString(lo, 10)
	_, ok2 := b.SetString(hi, 10)
	require.True(t, ok1 && ok2)
	two.SetInt64(2)
	sum.Add(a, b)
	return sum.Div(sum, two).String()
}
