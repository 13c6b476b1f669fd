package lease

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/checkpoint"
)

// SyncShardsFrom reads nothing while the recent view has every lease the
// shards need, and decides on a fresh scan otherwise: a view older than a
// lineage's processing and cleanup (the parent's lease deleted, the
// children's created after the view) must not recreate the parent, which
// would process it again from the start.
func TestSyncShardsFromRecentView(t *testing.T) {
	ctx := context.Background()
	shards := []Shard{
		{ID: "p", Closed: true},
		{ID: "a", ParentIDs: []string{"p"}},
		{ID: "b", ParentIDs: []string{"p"}},
	}
	cs := &countingStore{Store: NewMemoryStore(), calls: map[string]int{}}
	stale, err := cs.List(ctx) // the view, before any lease
	require.NoError(t, err)
	require.NotNil(t, stale)

	// The lineage moves on: leases created, p finished and cleaned up.
	made, _, err := SyncShards(ctx, cs, shards, checkpoint.TrimHorizon)
	require.NoError(t, err)
	require.Equal(t, []string{"p", "a", "b"}, keys(made))
	current, err := cs.List(ctx)
	require.NoError(t, err)
	require.NoError(t, cs.Delete(ctx, "p"))
	for _, k := range []string{"a", "b"} {
		l, err := cs.Get(ctx, k)
		require.NoError(t, err)
		l, err = cs.Take(ctx, l, "w")
		require.NoError(t, err)
		_, err = cs.UpdateCheckpoint(ctx, l, checkpoint.At("5", 0))
		require.NoError(t, err)
	}

	// A view with every lease: no read, nothing created.
	cs.reset()
	made, listed, err := SyncShardsFrom(ctx, cs, current, shards, checkpoint.TrimHorizon)
	require.NoError(t, err)
	require.Empty(t, made)
	require.Equal(t, keys(current), keys(listed))
	require.Zero(t, cs.reset()["List"], "decided from the view")

	// A stale view lacking the children: a fresh scan decides, and p is
	// not recreated (its children have leases).
	made, listed, err = SyncShardsFrom(ctx, cs, stale, shards, checkpoint.TrimHorizon)
	require.NoError(t, err)
	require.Empty(t, made, "nothing recreated")
	require.Equal(t, []string{"a", "b"}, keys(listed), "from a fresh scan")
	require.Equal(t, 1, cs.reset()["List"])
	_, err = cs.Get(ctx, "p")
	require.ErrorIs(t, err, ErrNotFound)

	// No view (the coordinator has not scanned yet): SyncShards.
	_, _, err = SyncShardsFrom(ctx, cs, nil, shards, checkpoint.TrimHorizon)
	require.NoError(t, err)
	require.Equal(t, 1, cs.reset()["List"])

	// Why a view that lacks a lease is not trusted: deciding on it would
	// bring p back, to be processed again.
	made, err = syncShards(ctx, cs, stale, shards, checkpoint.TrimHorizon)
	require.NoError(t, err)
	require.Equal(t, []string{"p"}, keys(made))
}
