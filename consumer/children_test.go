package consumer_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/consumer"
	"github.com/shardflow/shardflow/kinesistest"
)

// never is an interval no test lives to see: a pass scheduled that far
// away cannot be what made a test pass, on any machine.
const never = 1000 * time.Hour

// After a split and a merge the children are processed without waiting
// for a take interval: the worker that finished a parent takes the new
// child leases at once (lease.Coordinator.TakeNow). Scheduled take passes
// and shard syncs are never due here, so the test cannot pass through
// them however slow the machine; leases never expire (FailoverTime of an
// hour), so no expiry muddles it either.
func TestChildrenStartPromptlyAfterReshard(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	n := 4000
	srv := kinesistest.New(kinesistest.Options{})
	h := newHarness(t, srv, srv, 4, n)
	w := h.start("w0", func(c *consumer.Config) {
		c.FailoverTime = time.Hour
		c.LeaseTakeInterval = never
		c.LeaseExpiryScanInterval = -1 // no scans between take passes
		c.LeaseInitialTakeDelay = -1   // a lone worker: all four at once
		c.ShardSyncInterval = never
	})
	h.produce(ctx, n/4)
	require.NoError(t, h.tr.waitUnique(ctx, n/4))
	require.Len(t, w.c.Shards(), 4)

	ids := srv.ShardIDs(h.stream)
	shards, err := srv.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(h.stream)})
	require.NoError(t, err)
	r := shards.Shards[0].HashKeyRange
	mid := midpoint(t, aws.ToString(r.StartingHashKey), aws.ToString(r.EndingHashKey))
	start := time.Now()
	_, err = srv.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String(h.stream), ShardToSplit: aws.String(ids[0]), NewStartingHashKey: aws.String(mid)})
	require.NoError(t, err)
	_, err = srv.MergeShards(ctx, &kinesis.MergeShardsInput{StreamName: aws.String(h.stream), ShardToMerge: aws.String(ids[2]), AdjacentShardToMerge: aws.String(ids[3])})
	require.NoError(t, err)
	// Records after the reshard land only on shard 1 and the children.
	h.produce(ctx, n-n/4)

	require.NoError(t, h.tr.waitUnique(ctx, n))
	t.Logf("reshard to every child record processed: %v", time.Since(start))
	require.ElementsMatch(t, append([]string{ids[1]}, childIDs(t, srv, h.stream, ids)...), w.c.Shards())
	h.finish(ctx, w)
}

// childIDs returns the open shards that are not in parents.
func childIDs(t *testing.T, srv *kinesistest.Server, stream string, parents []string) []string {
	t.Helper()
	var out []string
	for _, id := range srv.ShardIDs(stream) {
		isParent := false
		for _, p := range parents {
			isParent = isParent || p == id
		}
		if !isParent {
			out = append(out, id)
		}
	}
	require.Len(t, out, 3)
	return out
}

// A merge whose parents are processed by different workers: the child
// starts as soon as the second parent ends, taken by the worker that
// finished it, not after a parent poll or take interval (both ten minutes
// here). No worker holds the child while a parent is still running.
func TestMergeChildStartsPromptlyAcrossWorkers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	n := 4000
	srv := kinesistest.New(kinesistest.Options{})
	h := newHarness(t, srv, srv, 4, n)
	mod := func(c *consumer.Config) {
		c.FailoverTime = time.Hour
		c.LeaseTakeInterval = never
		c.LeaseExpiryScanInterval = -1
		c.LeaseInitialTakeDelay = -1
		c.MaxLeasesForWorker = 2 // two each, whichever starts first
		c.ShardSyncInterval = never
		c.ParentShardPollInterval = never
	}
	// One after the other, so their first passes do not race for the same
	// leases (a lost race would leave a lease for a pass that never comes).
	w0 := h.start("w0", mod)
	waitFor(t, func() bool { return len(w0.c.Shards()) == 2 })
	w1 := h.start("w1", mod)
	waitFor(t, func() bool { return len(w1.c.Shards()) == 2 })
	h.produce(ctx, n/4)
	require.NoError(t, h.tr.waitUnique(ctx, n/4))

	// Two adjacent shards held by different workers.
	ids := srv.ShardIDs(h.stream)
	owners := h.owners()
	a := -1
	for i := 0; i+1 < len(ids); i++ {
		if owners[ids[i]] != owners[ids[i+1]] {
			a = i
			break
		}
	}
	require.GreaterOrEqual(t, a, 0, "owners %v", owners)
	_, err := srv.MergeShards(ctx, &kinesis.MergeShardsInput{StreamName: aws.String(h.stream), ShardToMerge: aws.String(ids[a]), AdjacentShardToMerge: aws.String(ids[a+1])})
	require.NoError(t, err)
	h.produce(ctx, n-n/4)

	require.NoError(t, h.tr.waitUnique(ctx, n))
	h.finish(ctx, w0, w1)
	require.Zero(t, h.leaseLost.Load())
}
