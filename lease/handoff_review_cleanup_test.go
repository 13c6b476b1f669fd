package lease

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/checkpoint"
)

// Review: main's cleanFinished deleted a finished lease only once its
// parents' leases were gone ("parents' leases go first"); DeleteFinished
// dropped that rule. P split into C1, C2; C1 ended and its child G started;
// C2 has not started. C1 is deleted while P remains, and P then waits for a
// child lease that no longer exists: it is never cleaned up.
func TestReviewDeleteFinishedParentsFirst(t *testing.T) {
	ctx := context.Background()
	s := NewMemoryStore()
	for _, l := range []Lease{
		{Key: "P", Checkpoint: checkpoint.ShardEnd, ChildShardIDs: []string{"C1", "C2"}},
		{Key: "C1", Checkpoint: checkpoint.ShardEnd, ParentShardIDs: []string{"P"}, ChildShardIDs: []string{"G"}},
		{Key: "C2", Checkpoint: checkpoint.TrimHorizon, ParentShardIDs: []string{"P"}},
		{Key: "G", Checkpoint: checkpoint.At("5", 0), ParentShardIDs: []string{"C1"}},
	} {
		_, err := s.Create(ctx, l)
		require.NoError(t, err)
	}
	shards := []Shard{{ID: "P", Closed: true}, {ID: "C1", ParentIDs: []string{"P"}, Closed: true}, {ID: "C2", ParentIDs: []string{"P"}}, {ID: "G", ParentIDs: []string{"C1"}}}
	listed, _ := s.List(ctx)
	_, err := DeleteFinished(ctx, s, listed, shards)
	require.NoError(t, err)
	// C2 starts later.
	c2, _ := s.Get(ctx, "C2")
	c2, err = s.Take(ctx, c2, "w")
	require.NoError(t, err)
	_, err = s.UpdateCheckpoint(ctx, c2, checkpoint.At("9", 0))
	require.NoError(t, err)
	for range 3 {
		listed, _ = s.List(ctx)
		_, err = DeleteFinished(ctx, s, listed, shards)
		require.NoError(t, err)
	}
	_, err = s.Get(ctx, "P")
	require.ErrorIs(t, err, ErrNotFound, "P's lease is never cleaned up once C1's went first")
}
