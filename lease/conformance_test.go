package lease

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/checkpoint"
)

// testStoreConformance checks the semantics every Store must share. It runs
// against MemoryStore here and against DynamoStore on dynalite under the
// integration tag. newStore returns an empty store; putItem stores a raw
// lease table item as another tool could have written it.
func testStoreConformance(t *testing.T, newStore func(t *testing.T) Store, putItem func(t *testing.T, s Store, item map[string]types.AttributeValue)) {
	ctx := context.Background()
	fresh := func(key string) Lease {
		return Lease{Key: key, Checkpoint: checkpoint.TrimHorizon, ParentShardIDs: []string{"p0"}, StartingHashKey: "0", EndingHashKey: "10"}
	}

	t.Run("ListOwned", func(t *testing.T) {
		s := newStore(t)
		for _, k := range []string{"a", "b", "c", "d"} {
			_, err := s.Create(ctx, fresh(k))
			require.NoError(t, err)
		}
		take := func(k, owner string) Lease {
			l, err := s.Get(ctx, k)
			require.NoError(t, err)
			l, err = s.Take(ctx, l, owner)
			require.NoError(t, err)
			return l
		}
		take("a", "w1")
		take("b", "w2")
		c := take("c", "w1")
		_, err := s.Release(ctx, c)
		require.NoError(t, err)
		d := take("d", "w2")
		_, err = s.MarkHandoff(ctx, d, "w1")
		require.NoError(t, err)
		oi := s.(OwnerIndex)
		got, err := oi.ListOwned(ctx, "w1")
		require.NoError(t, err)
		require.Equal(t, []string{"a", "d"}, got, "released leases are not owned; marked ones are the next owner's")
		got, err = oi.ListOwned(ctx, "w2")
		require.NoError(t, err)
		require.Equal(t, []string{"b"}, got)
		got, err = oi.ListOwned(ctx, "nobody")
		require.NoError(t, err)
		require.Empty(t, got)
	})

	t.Run("CreateGetList", func(t *testing.T) {
		s := newStore(t)
		ok, err := s.Create(ctx, fresh("b"))
		require.NoError(t, err)
		require.True(t, ok)
		ok, err = s.Create(ctx, fresh("b"))
		require.NoError(t, err)
		require.False(t, ok, "create if absent")
		_, err = s.Create(ctx, fresh("a"))
		require.NoError(t, err)
		got, err := s.Get(ctx, "b")
		require.NoError(t, err)
		require.Equal(t, fresh("b"), got)
		_, err = s.Get(ctx, "missing")
		require.ErrorIs(t, err, ErrNotFound)
		all, err := s.List(ctx)
		require.NoError(t, err)
		require.Equal(t, []string{"a", "b"}, keys(all))
	})

	t.Run("RenewTakeRelease", func(t *testing.T) {
		s := newStore(t)
		_, err := s.Create(ctx, fresh("k"))
		require.NoError(t, err)
		l, err := s.Get(ctx, "k")
		require.NoError(t, err)

		_, err = s.Renew(ctx, Lease{Key: "k", Owner: "w1", Counter: 0})
		require.ErrorIs(t, err, ErrConflict, "renew needs the owner")

		a, err := s.Take(ctx, l, "w1")
		require.NoError(t, err)
		require.Equal(t, "w1", a.Owner)
		require.Equal(t, int64(1), a.Counter)
		require.Equal(t, int64(0), a.OwnerSwitchesSinceCheckpoint, "taking an unowned lease is no owner switch (KCL)")

		_, err = s.Take(ctx, l, "w2")
		var ce *ConflictError
		require.ErrorAs(t, err, &ce, "take on a stale counter fails")
		require.Equal(t, "take", ce.Op)

		a, err = s.Renew(ctx, a)
		require.NoError(t, err)
		require.Equal(t, int64(2), a.Counter)
		_, err = s.Renew(ctx, Lease{Key: "k", Owner: "w2", Counter: 2})
		require.ErrorIs(t, err, ErrConflict, "renew by a non-owner fails")

		b, err := s.Take(ctx, a, "w2")
		require.NoError(t, err)
		require.Equal(t, int64(3), b.Counter)
		require.Equal(t, int64(1), b.OwnerSwitchesSinceCheckpoint, "taken from another owner")
		_, err = s.Renew(ctx, a)
		require.ErrorIs(t, err, ErrConflict, "old holder cannot renew")
		_, err = s.UpdateCheckpoint(ctx, a, checkpoint.At("5", 0))
		require.ErrorIs(t, err, ErrConflict, "old holder cannot checkpoint")

		r, err := s.Release(ctx, b)
		require.NoError(t, err)
		require.Equal(t, "", r.Owner)
		require.Equal(t, int64(4), r.Counter)
		again, err := s.Release(ctx, b)
		require.NoError(t, err, "a repeated write whose effect is in place succeeds (retry)")
		require.Equal(t, r, again)
		_, err = s.Release(ctx, a)
		require.ErrorIs(t, err, ErrConflict)
		got, err := s.Get(ctx, "k")
		require.NoError(t, err)
		require.Equal(t, r, got)

		// An unowned lease is taken on its observed counter.
		c, err := s.Take(ctx, got, "w1")
		require.NoError(t, err)
		require.Equal(t, "w1", c.Owner)
		require.Equal(t, int64(5), c.Counter)
		require.Equal(t, int64(1), c.OwnerSwitchesSinceCheckpoint, "taken after a release: no switch")

		_, err = s.Renew(ctx, Lease{Key: "missing", Owner: "w1"})
		require.ErrorIs(t, err, ErrNotFound)
	})

	t.Run("Checkpoints", func(t *testing.T) {
		s := newStore(t)
		_, err := s.Create(ctx, fresh("k"))
		require.NoError(t, err)
		l, _ := s.Get(ctx, "k")
		l, err = s.Take(ctx, l, "w1")
		require.NoError(t, err)
		p := checkpoint.At("123456789012345678901234567890", 4)
		l, err = s.UpdatePendingCheckpoint(ctx, l, &p, []byte("state"))
		require.NoError(t, err)
		require.Equal(t, p, *l.PendingCheckpoint)
		require.Equal(t, []byte("state"), l.PendingCheckpointState)
		require.Equal(t, checkpoint.TrimHorizon, l.Checkpoint)

		l, err = s.UpdateCheckpoint(ctx, l, p)
		require.NoError(t, err)
		require.Equal(t, p, l.Checkpoint)
		require.Nil(t, l.PendingCheckpoint, "checkpoint clears the pending checkpoint")
		require.Nil(t, l.PendingCheckpointState)
		require.Equal(t, int64(0), l.OwnerSwitchesSinceCheckpoint)
		require.Equal(t, int64(3), l.Counter)

		l, err = s.UpdatePendingCheckpoint(ctx, l, &p, nil)
		require.NoError(t, err)
		l, err = s.UpdatePendingCheckpoint(ctx, l, nil, nil)
		require.NoError(t, err)
		require.Nil(t, l.PendingCheckpoint)

		l, err = s.UpdateChildShards(ctx, l, []string{"c2", "c1"})
		require.NoError(t, err)
		require.ElementsMatch(t, []string{"c1", "c2"}, l.ChildShardIDs)
		l, err = s.UpdateCheckpoint(ctx, l, checkpoint.ShardEnd)
		require.NoError(t, err)
		require.True(t, l.Finished())

		got, err := s.Get(ctx, "k")
		require.NoError(t, err)
		require.Equal(t, l, got)
		require.Equal(t, []string{"p0"}, got.ParentShardIDs, "updates keep other attributes")

		_, err = s.UpdateCheckpoint(ctx, l, checkpoint.Position{})
		require.Error(t, err)

		require.NoError(t, s.Delete(ctx, "k"))
		require.NoError(t, s.Delete(ctx, "k"))
		_, err = s.Get(ctx, "k")
		require.ErrorIs(t, err, ErrNotFound)
	})

	// KCL 3.x attributes are kept; a take or release ends a KCL 3.x
	// hand-over (checkpointOwner) as KCL's own take does.
	t.Run("KCL3Attributes", func(t *testing.T) {
		s := newStore(t)
		l := fresh("k")
		l.Owner, l.CheckpointOwner = "w0", "kcl-worker"
		l.ThroughputKBps = 3
		l.Extra = map[string]types.AttributeValue{
			"someKCLAttribute": &types.AttributeValueMemberN{Value: "3"},
		}
		_, err := s.Create(ctx, l)
		require.NoError(t, err)
		got, err := s.Get(ctx, "k")
		require.NoError(t, err)
		require.Equal(t, l.Extra, got.Extra)
		require.Equal(t, "kcl-worker", got.CheckpointOwner)
		stale := got
		stale.CheckpointOwner = ""
		_, err = s.Take(ctx, stale, "w1")
		require.ErrorIs(t, err, ErrConflict, "writes are conditional on checkpointOwner")
		got, err = s.Take(ctx, got, "w1")
		require.NoError(t, err)
		require.Equal(t, map[string]types.AttributeValue{"someKCLAttribute": &types.AttributeValueMemberN{Value: "3"}}, got.Extra)
		require.Equal(t, 3.0, got.ThroughputKBps, "kept by a take")
		require.Empty(t, got.CheckpointOwner)
		require.Equal(t, int64(1), got.OwnerSwitchesSinceCheckpoint, "moved from the worker processing it")
		got, err = s.Get(ctx, "k")
		require.NoError(t, err)
		require.Empty(t, got.CheckpointOwner)
		got.ThroughputKBps = 4.25
		got, err = s.Renew(ctx, got)
		require.NoError(t, err)
		require.Equal(t, 4.25, got.ThroughputKBps, "written by a renewal")
		got, err = s.Get(ctx, "k")
		require.NoError(t, err)
		require.Equal(t, 4.25, got.ThroughputKBps)
		got, err = s.Release(ctx, got)
		require.NoError(t, err)
		require.Contains(t, got.Extra, "someKCLAttribute")
	})

	// A graceful handoff as KCL 3.x writes it: MarkHandoff names the next
	// owner as leaseOwner and the holder as checkpointOwner without moving
	// the counter; the holder's stale writes fail with the marked lease in
	// the error; it goes on writing as checkpointOwner, and completes with
	// Take(l, l.Owner).
	t.Run("Handoff", func(t *testing.T) {
		s := newStore(t)
		_, err := s.Create(ctx, fresh("k"))
		require.NoError(t, err)
		l, err := s.Get(ctx, "k")
		require.NoError(t, err)
		held, err := s.Take(ctx, l, "old")
		require.NoError(t, err)

		_, err = s.MarkHandoff(ctx, held, "old")
		require.Error(t, err, "to itself")
		m, err := s.MarkHandoff(ctx, held, "new")
		require.NoError(t, err)
		require.Equal(t, "new", m.Owner)
		require.Equal(t, "old", m.CheckpointOwner)
		require.Equal(t, held.Counter, m.Counter, "no counter move (KCL 3.x)")
		require.True(t, m.InHandoff())
		require.Equal(t, "old", m.Processor())
		again, err := s.MarkHandoff(ctx, held, "new")
		require.NoError(t, err, "a retried mark that landed succeeds")
		require.Equal(t, m, again)
		_, err = s.MarkHandoff(ctx, held, "third")
		require.ErrorIs(t, err, ErrConflict, "a second wanter loses")
		_, err = s.MarkHandoff(ctx, m, "third")
		require.Error(t, err, "already in handoff")

		_, err = s.Renew(ctx, held)
		var ce *ConflictError
		require.ErrorAs(t, err, &ce, "the holder's stale renewal fails")
		require.NotNil(t, ce.Current)
		require.Equal(t, m, *ce.Current, "with the marked lease")

		m, err = s.Renew(ctx, m)
		require.NoError(t, err, "the holder renews as checkpointOwner")
		m, err = s.UpdateCheckpoint(ctx, m, checkpoint.At("7", 0))
		require.NoError(t, err)
		require.Equal(t, "old", m.CheckpointOwner, "a checkpoint keeps the handoff")

		_, err = s.Take(ctx, held, "new")
		require.ErrorIs(t, err, ErrConflict)
		done, err := s.Take(ctx, m, m.Owner)
		require.NoError(t, err)
		require.Equal(t, "new", done.Owner)
		require.Empty(t, done.CheckpointOwner)
		require.Equal(t, m.Counter+1, done.Counter)
		require.Zero(t, done.OwnerSwitchesSinceCheckpoint, "completing a handoff is no owner switch (KCL 3.x)")
		require.Equal(t, checkpoint.At("7", 0), done.Checkpoint)
		_, err = s.Renew(ctx, m)
		require.ErrorIs(t, err, ErrConflict, "the old holder is fenced")
		got, err := s.Get(ctx, "k")
		require.NoError(t, err)
		require.Equal(t, done, got)

		// A withdrawn request: the holder keeps the lease, at the same
		// counter, and its stale writes fail once with the lease restored.
		m2, err := s.MarkHandoff(ctx, done, "third")
		require.NoError(t, err)
		_, err = s.CancelHandoff(ctx, done)
		require.Error(t, err, "not in handoff as passed")
		back, err := s.CancelHandoff(ctx, m2)
		require.NoError(t, err)
		require.Equal(t, "new", back.Owner)
		require.Empty(t, back.CheckpointOwner)
		require.Equal(t, done.Counter, back.Counter)
		_, err = s.Renew(ctx, m2)
		require.ErrorAs(t, err, &ce, "the stale marked view fails")
		require.Equal(t, back, *ce.Current)
		_, err = s.Renew(ctx, back)
		require.NoError(t, err)
	})

	// An item without leaseCounter (another tool wrote it) is listed with
	// counter 0 and can be taken on it: its shard is not silently skipped.
	t.Run("MissingLeaseCounterTakeable", func(t *testing.T) {
		s := newStore(t)
		putItem(t, s, map[string]types.AttributeValue{
			AttrLeaseKey:   &types.AttributeValueMemberS{Value: "k"},
			AttrCheckpoint: &types.AttributeValueMemberS{Value: checkpoint.SentinelTrimHorizon},
		})
		all, err := s.List(ctx)
		require.NoError(t, err)
		require.Len(t, all, 1)
		require.Equal(t, int64(0), all[0].Counter)
		got, err := s.Take(ctx, all[0], "w1")
		require.NoError(t, err)
		require.Equal(t, "w1", got.Owner)
		require.Equal(t, int64(1), got.Counter)
		_, err = s.Renew(ctx, got)
		require.NoError(t, err)
		// Once it has a counter, counter 0 no longer matches.
		_, err = s.Take(ctx, all[0], "w2")
		require.ErrorIs(t, err, ErrConflict)
	})

	// A NULL leaseCounter (another tool wrote it) reads as counter 0 like
	// a missing one, so it must be takeable on counter 0 like a missing
	// one: listed but never takeable would silently skip its shard.
	t.Run("NullLeaseCounterTakeable", func(t *testing.T) {
		s := newStore(t)
		putItem(t, s, map[string]types.AttributeValue{
			AttrLeaseKey:     &types.AttributeValueMemberS{Value: "k"},
			AttrCheckpoint:   &types.AttributeValueMemberS{Value: checkpoint.SentinelTrimHorizon},
			AttrLeaseCounter: &types.AttributeValueMemberNULL{Value: true},
		})
		all, err := s.List(ctx)
		require.NoError(t, err)
		require.Len(t, all, 1)
		require.Equal(t, int64(0), all[0].Counter)
		got, err := s.Take(ctx, all[0], "w1")
		require.NoError(t, err)
		require.Equal(t, "w1", got.Owner)
		require.Equal(t, int64(1), got.Counter)
		// The first taker wrote a counter: a second taker on the same
		// observation loses.
		_, err = s.Take(ctx, all[0], "w2")
		require.ErrorIs(t, err, ErrConflict)
	})

	// Non-lease items (KCL 3.x entityType) are invisible to List and Get.
	t.Run("NonLeaseItemsSkipped", func(t *testing.T) {
		s := newStore(t)
		_, err := s.Create(ctx, fresh("a"))
		require.NoError(t, err)
		other := fresh("metrics")
		other.Extra = map[string]types.AttributeValue{"entityType": &types.AttributeValueMemberS{Value: "WORKER_METRICS"}}
		_, err = s.Create(ctx, other)
		require.NoError(t, err)
		all, err := s.List(ctx)
		require.NoError(t, err)
		require.Equal(t, []string{"a"}, keys(all))
		_, err = s.Get(ctx, "metrics")
		require.ErrorIs(t, err, ErrNotFound)
	})

	// Many writers race on the same observed counter: exactly one wins.
	t.Run("ConcurrentTakers", func(t *testing.T) {
		s := newStore(t)
		_, err := s.Create(ctx, fresh("k"))
		require.NoError(t, err)
		l, _ := s.Get(ctx, "k")
		const n = 8
		var wins atomic.Int32
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := s.Take(ctx, l, fmt.Sprintf("w%d", i))
				switch {
				case err == nil:
					wins.Add(1)
				case !errors.Is(err, ErrConflict):
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		require.Equal(t, int32(1), wins.Load())
		got, _ := s.Get(ctx, "k")
		require.Equal(t, int64(1), got.Counter)
	})

	// A holder's checkpoints race a thief's take: every success consumes a
	// distinct counter and the final state is consistent.
	t.Run("ConcurrentHolderAndThief", func(t *testing.T) {
		s := newStore(t)
		_, err := s.Create(ctx, fresh("k"))
		require.NoError(t, err)
		l, _ := s.Get(ctx, "k")
		l, err = s.Take(ctx, l, "holder")
		require.NoError(t, err)
		var wg sync.WaitGroup
		var holderWrites, thiefWins atomic.Int32
		wg.Add(2)
		go func() {
			defer wg.Done()
			cur := l
			for i := 1; i <= 10; i++ {
				next, err := s.UpdateCheckpoint(ctx, cur, checkpoint.At(fmt.Sprint(i), 0))
				if err != nil {
					return
				}
				holderWrites.Add(1)
				cur = next
			}
		}()
		go func() {
			defer wg.Done()
			obs := l
			for range 10 {
				if _, err := s.Take(ctx, obs, "thief"); err == nil {
					thiefWins.Add(1)
					return
				}
				obs, _ = s.Get(ctx, "k")
			}
		}()
		wg.Wait()
		got, err := s.Get(ctx, "k")
		require.NoError(t, err)
		require.Equal(t, int64(1)+int64(holderWrites.Load())+int64(thiefWins.Load()), got.Counter)
		if thiefWins.Load() == 1 {
			require.Equal(t, "thief", got.Owner)
		}
	})
}

func keys(ls []Lease) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.Key
	}
	return out
}

func TestMemoryStoreConformance(t *testing.T) {
	testStoreConformance(t, func(*testing.T) Store { return NewMemoryStore() },
		func(t *testing.T, s Store, item map[string]types.AttributeValue) {
			l, err := UnmarshalItem(item)
			require.NoError(t, err)
			m := s.(*MemoryStore)
			m.mu.Lock()
			m.leases[l.Key] = normalize(l)
			m.mu.Unlock()
		})
}
