package lease

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/checkpoint"
)

// SyncShards on a split: with LATEST the closed parent with no leased
// ancestry gets no lease, its children start at LATEST; with TRIM_HORIZON
// the parent starts there and its children at TRIM_HORIZON after it. A
// second sync creates nothing. DeleteFinished removes a finished parent
// only once every child has checkpointed past its start.
func TestSyncShardsAndDeleteFinished(t *testing.T) {
	ctx := context.Background()
	shards := []Shard{
		{ID: "p", Closed: true, StartingHashKey: "0", EndingHashKey: "9"},
		{ID: "a", ParentIDs: []string{"p"}, StartingHashKey: "0", EndingHashKey: "4"},
		{ID: "b", ParentIDs: []string{"p"}, StartingHashKey: "5", EndingHashKey: "9"},
	}

	latest := NewMemoryStore()
	made, _, err := SyncShards(ctx, latest, shards, checkpoint.Latest)
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b"}, keys(made))
	for _, l := range made {
		require.Equal(t, checkpoint.Latest, l.Checkpoint)
	}

	s := NewMemoryStore()
	made, _, err = SyncShards(ctx, s, shards, checkpoint.TrimHorizon)
	require.NoError(t, err)
	require.Equal(t, []string{"p", "a", "b"}, keys(made), "parents before children")
	got, err := s.Get(ctx, "a")
	require.NoError(t, err)
	require.Equal(t, []string{"p"}, got.ParentShardIDs)
	require.Equal(t, "0", got.StartingHashKey)
	made, listed, err := SyncShards(ctx, s, shards, checkpoint.TrimHorizon)
	require.NoError(t, err)
	require.Empty(t, made)
	require.Len(t, listed, 3)

	// p finished, a started, b not yet: p stays.
	finish := func(key string, pos checkpoint.Position) {
		l, err := s.Get(ctx, key)
		require.NoError(t, err)
		l, err = s.Take(ctx, l, "w")
		require.NoError(t, err)
		_, err = s.UpdateCheckpoint(ctx, l, pos)
		require.NoError(t, err)
	}
	finish("p", checkpoint.ShardEnd)
	finish("a", checkpoint.At("5", 0))
	listed, err = s.List(ctx)
	require.NoError(t, err)
	deleted, err := DeleteFinished(ctx, s, listed, shards)
	require.NoError(t, err)
	require.Empty(t, deleted)
	finish("b", checkpoint.At("6", 0))
	listed, err = s.List(ctx)
	require.NoError(t, err)
	deleted, err = DeleteFinished(ctx, s, listed, shards)
	require.NoError(t, err)
	require.Equal(t, []string{"p"}, deleted)

	// The lineage was processed: p is not created again.
	made, _, err = SyncShards(ctx, s, shards, checkpoint.TrimHorizon)
	require.NoError(t, err)
	require.Empty(t, made)

	// Child leases from ChildShards.
	c := NewMemoryStore()
	made, err = CreateChildLeases(ctx, c, shards[1:])
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b"}, keys(made))
	require.Equal(t, checkpoint.TrimHorizon, made[0].Checkpoint)
	made, err = CreateChildLeases(ctx, c, shards[1:])
	require.NoError(t, err)
	require.Empty(t, made, "conditional on absence")
}
