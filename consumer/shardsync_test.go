package consumer

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/checkpoint"
	"github.com/shardflow/shardflow/kinesistest"
	"github.com/shardflow/shardflow/lease"
)

func TestSyncShards(t *testing.T) {
	ctx := context.Background()
	newStream := func(t *testing.T) *kinesistest.Server {
		srv := kinesistest.New(kinesistest.Options{})
		srv.MustCreateStream("s", 2)
		// shardId-0 splits into shardId-2 and shardId-3.
		_, err := srv.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String("s"), ShardToSplit: aws.String("shardId-000000000000"), NewStartingHashKey: aws.String("1000")})
		require.NoError(t, err)
		return srv
	}
	sync := func(t *testing.T, srv *kinesistest.Server, store lease.Store, pos InitialPositionType) map[string]lease.Lease {
		c, err := New(srv, store, ProcessRecord(nil), Config{ApplicationName: "a", StreamName: "s", InitialPosition: InitialPosition{Type: pos}})
		require.NoError(t, err)
		_, err = c.syncShards(ctx, testStream(c))
		require.NoError(t, err)
		ls, err := store.List(ctx)
		require.NoError(t, err)
		m := map[string]lease.Lease{}
		for _, l := range ls {
			m[l.Key] = l
		}
		return m
	}

	t.Run("TrimHorizon leases every shard, children after parents", func(t *testing.T) {
		m := sync(t, newStream(t), lease.NewMemoryStore(), TrimHorizon)
		require.Len(t, m, 4)
		for _, k := range []string{"shardId-000000000000", "shardId-000000000001", "shardId-000000000002", "shardId-000000000003"} {
			require.Equal(t, checkpoint.TrimHorizon, m[k].Checkpoint, k)
		}
		require.Equal(t, []string{"shardId-000000000000"}, m["shardId-000000000002"].ParentShardIDs)
		require.NotEmpty(t, m["shardId-000000000002"].EndingHashKey)
	})
	t.Run("Latest skips closed history", func(t *testing.T) {
		m := sync(t, newStream(t), lease.NewMemoryStore(), Latest)
		require.Len(t, m, 3)
		require.NotContains(t, m, "shardId-000000000000")
		require.Equal(t, checkpoint.Latest, m["shardId-000000000002"].Checkpoint)
	})
	t.Run("Latest: children of a leased parent start at TRIM_HORIZON", func(t *testing.T) {
		srv := kinesistest.New(kinesistest.Options{})
		srv.MustCreateStream("s", 1)
		store := lease.NewMemoryStore()
		m := sync(t, srv, store, Latest)
		require.Equal(t, checkpoint.Latest, m["shardId-000000000000"].Checkpoint)
		_, err := srv.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String("s"), ShardToSplit: aws.String("shardId-000000000000"), NewStartingHashKey: aws.String("1000")})
		require.NoError(t, err)
		m = sync(t, srv, store, Latest)
		require.Len(t, m, 3)
		require.Equal(t, checkpoint.TrimHorizon, m["shardId-000000000001"].Checkpoint)
		require.Equal(t, checkpoint.TrimHorizon, m["shardId-000000000002"].Checkpoint)
	})
	t.Run("a parent whose child is leased is not leased again", func(t *testing.T) {
		store := lease.NewMemoryStore()
		_, err := store.Create(ctx, lease.Lease{Key: "shardId-000000000002", Checkpoint: checkpoint.At("5", 0), ParentShardIDs: []string{"shardId-000000000000"}})
		require.NoError(t, err)
		m := sync(t, newStream(t), store, Latest)
		require.NotContains(t, m, "shardId-000000000000", "its lease was cleaned up after it finished")
		// The sibling starts at TRIM_HORIZON even under LATEST: its parent
		// was processed.
		require.Equal(t, checkpoint.TrimHorizon, m["shardId-000000000003"].Checkpoint)
		require.Equal(t, checkpoint.At("5", 0), m["shardId-000000000002"].Checkpoint)
	})
}

func TestSyncShardsCleansFinishedLeases(t *testing.T) {
	ctx := context.Background()
	srv := kinesistest.New(kinesistest.Options{})
	srv.MustCreateStream("s", 1)
	store := lease.NewMemoryStore()
	_, err := store.Create(ctx, lease.Lease{Key: "shardId-000000000000", Checkpoint: checkpoint.ShardEnd})
	require.NoError(t, err)
	_, err = srv.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String("s"), ShardToSplit: aws.String("shardId-000000000000"), NewStartingHashKey: aws.String("1000")})
	require.NoError(t, err)
	c, err := New(srv, store, ProcessRecord(nil), Config{ApplicationName: "a", StreamName: "s"})
	require.NoError(t, err)
	// First pass creates the children; the parent goes only once every
	// child has checkpointed past its initial position (KCL's rule).
	_, err = c.syncShards(ctx, testStream(c))
	require.NoError(t, err)
	_, err = c.syncShards(ctx, testStream(c))
	require.NoError(t, err)
	ls, err := store.List(ctx)
	require.NoError(t, err)
	require.Len(t, ls, 3, "children have leases but have not started: the parent stays")
	for _, l := range ls[1:] {
		require.Equal(t, checkpoint.TrimHorizon, l.Checkpoint, "children of a processed parent start at TRIM_HORIZON")
	}
	checkpointChild := func(key string, pos checkpoint.Position) {
		t.Helper()
		l, err := store.Get(ctx, key)
		require.NoError(t, err)
		l, err = store.Take(ctx, l, "w")
		require.NoError(t, err)
		_, err = store.UpdateCheckpoint(ctx, l, pos)
		require.NoError(t, err)
	}
	checkpointChild("shardId-000000000001", checkpoint.At("7", 0))
	_, err = c.syncShards(ctx, testStream(c))
	require.NoError(t, err)
	_, err = store.Get(ctx, "shardId-000000000000")
	require.NoError(t, err, "one child has not checkpointed yet: the parent stays")

	checkpointChild("shardId-000000000002", checkpoint.ShardEnd) // an empty child that ended counts
	_, err = c.syncShards(ctx, testStream(c))
	require.NoError(t, err)
	_, err = store.Get(ctx, "shardId-000000000000")
	require.ErrorIs(t, err, lease.ErrNotFound, "every child checkpointed past its start: the parent is deleted")
}

// A finished lease whose own parent's lease is still in the table is kept
// until that parent's lease is deleted (KCL's cleanup rule): deleting it
// first would leave the parent with a child lease that no longer exists, so
// the parent (which needs every child to have started) would stay in the
// table for good.
func TestSyncShardsCleansFinishedLeasesParentsFirst(t *testing.T) {
	ctx := context.Background()
	srv := kinesistest.New(kinesistest.Options{})
	srv.MustCreateStream("s", 1)
	split := func(shard, at string) {
		t.Helper()
		_, err := srv.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String("s"), ShardToSplit: aws.String(shard), NewStartingHashKey: aws.String(at)})
		require.NoError(t, err)
	}
	split("shardId-000000000000", "1000") // children 1 and 2
	split("shardId-000000000001", "500")  // children 3 and 4
	store := lease.NewMemoryStore()
	for _, l := range []lease.Lease{
		{Key: "shardId-000000000000", Checkpoint: checkpoint.ShardEnd},
		// 1 was processed to its end and its children have started ...
		{Key: "shardId-000000000001", Checkpoint: checkpoint.ShardEnd, ParentShardIDs: []string{"shardId-000000000000"}},
		{Key: "shardId-000000000003", Checkpoint: checkpoint.At("5", 0), ParentShardIDs: []string{"shardId-000000000001"}},
		{Key: "shardId-000000000004", Checkpoint: checkpoint.At("6", 0), ParentShardIDs: []string{"shardId-000000000001"}},
		// ... while its sibling 2 has not started yet, which keeps 0.
		{Key: "shardId-000000000002", Checkpoint: checkpoint.TrimHorizon, ParentShardIDs: []string{"shardId-000000000000"}},
	} {
		_, err := store.Create(ctx, l)
		require.NoError(t, err)
	}
	c, err := New(srv, store, ProcessRecord(nil), Config{ApplicationName: "a", StreamName: "s"})
	require.NoError(t, err)
	_, err = c.syncShards(ctx, testStream(c))
	require.NoError(t, err)
	_, err = store.Get(ctx, "shardId-000000000000")
	require.NoError(t, err, "child 2 has not started: 0 stays")

	l, err := store.Get(ctx, "shardId-000000000002")
	require.NoError(t, err)
	l, err = store.Take(ctx, l, "w")
	require.NoError(t, err)
	_, err = store.UpdateCheckpoint(ctx, l, checkpoint.At("7", 0))
	require.NoError(t, err)
	// Every finished lease goes within a pass per generation.
	for range 3 {
		_, err = c.syncShards(ctx, testStream(c))
		require.NoError(t, err)
	}
	ls, err := store.List(ctx)
	require.NoError(t, err)
	for _, l := range ls {
		require.False(t, l.Finished(), "finished lease %s left in the table", l.Key)
	}
}

// ListShards pages (1000 shards a page) are followed with NextToken alone.
func TestSyncShardsManyShards(t *testing.T) {
	ctx := context.Background()
	srv := kinesistest.New(kinesistest.Options{ShardLimit: 3000})
	srv.MustCreateStream("s", 2500)
	store := lease.NewMemoryStore()
	c, err := New(srv, store, ProcessRecord(nil), Config{ApplicationName: "a", StreamName: "s", InitialPosition: InitialPosition{Type: TrimHorizon}})
	require.NoError(t, err)
	n, err := c.syncShards(ctx, testStream(c))
	require.NoError(t, err)
	require.Equal(t, 2500, n)
	n, err = c.syncShards(ctx, testStream(c))
	require.NoError(t, err)
	require.Zero(t, n, "a second sync creates nothing")
	ls, err := store.List(ctx)
	require.NoError(t, err)
	require.Len(t, ls, 2500)
}

// testStream is the single stream of c as prepare sets it up, for tests
// that sync shards without running the consumer.
func testStream(c *Consumer) *stream {
	return &stream{name: c.cfg.StreamName, arn: c.cfg.StreamARN, byARN: c.cfg.StreamARN != "", initial: c.cfg.InitialPosition, consumerName: c.cfg.ConsumerName, log: c.log, tracked: true}
}
