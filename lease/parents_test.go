package lease

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/checkpoint"
)

// unreadableStore is a MemoryStore holding one item it cannot read, as
// DynamoStore does with a malformed item: List leaves it out, Get fails
// with ErrUnreadable.
type unreadableStore struct {
	*MemoryStore
	bad string
}

func (s *unreadableStore) List(ctx context.Context) ([]Lease, error) {
	all, err := s.MemoryStore.List(ctx)
	var out []Lease
	for _, l := range all {
		if l.Key != s.bad {
			out = append(out, l)
		}
	}
	return out, err
}

func (s *unreadableStore) Get(ctx context.Context, key string) (Lease, error) {
	if key == s.bad {
		return Lease{}, fmt.Errorf("lease: %s: %w: checkpoint: malformed", key, ErrUnreadable)
	}
	return s.MemoryStore.Get(ctx, key)
}

// A child whose parent's lease item cannot be read is not taken (it would
// wait forever for the parent, holding a slot of the worker's share) and
// the parent is reported at Error with both keys. A parent that is really
// gone (cleaned up after it finished) does not block its child.
func TestChildOfUnreadableParentIsNotTaken(t *testing.T) {
	ctx := context.Background()
	store := &unreadableStore{MemoryStore: NewMemoryStore(), bad: "parent"}
	seed(t, store, "parent")
	for _, l := range []Lease{
		{Key: "child", Checkpoint: checkpoint.TrimHorizon, ParentShardIDs: []string{"parent"}},
		{Key: "orphan", Checkpoint: checkpoint.TrimHorizon, ParentShardIDs: []string{"cleaned-up"}},
	} {
		_, err := store.Create(ctx, l)
		require.NoError(t, err)
	}
	var logs bytes.Buffer
	c, clk := manual(t, store, Config{})
	c.log = slog.New(slog.NewTextHandler(&logs, nil))
	c.takePass(ctx, true)
	require.Equal(t, []string{"orphan"}, keys(c.Held()), "the child of the unreadable parent is left alone")
	require.Contains(t, logs.String(), `level=ERROR msg="parent lease unreadable`)
	require.Contains(t, logs.String(), "lease=child parent=parent")

	// Still not taken later, when nothing else is left to take.
	clk.Advance(3 * c.cfg.FailoverTime)
	c.takePass(ctx, true)
	require.Equal(t, []string{"orphan"}, keys(c.Held()))
}
