package lease

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/shardflow/shardflow/checkpoint"
)

// MemoryStore is an in-process Store with the same semantics as
// DynamoStore. It is for tests and single-process use.
type MemoryStore struct {
	mu     sync.Mutex
	leases map[string]Lease
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{leases: make(map[string]Lease)}
}

// List implements Store.
func (s *MemoryStore) List(ctx context.Context) ([]Lease, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Lease, 0, len(s.leases))
	for _, l := range s.leases {
		if isLeaseItem(l.Extra) { // as DynamoStore: skip KCL 3.x non-lease items
			out = append(out, l.Clone())
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Get implements Store.
func (s *MemoryStore) Get(ctx context.Context, key string) (Lease, error) {
	if err := ctx.Err(); err != nil {
		return Lease{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.leases[key]
	if !ok || !isLeaseItem(l.Extra) {
		return Lease{}, fmt.Errorf("lease: %s: %w", key, ErrNotFound)
	}
	return l.Clone(), nil
}

// Create implements Store.
func (s *MemoryStore) Create(ctx context.Context, l Lease) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if _, err := MarshalItem(l); err != nil { // same validation as DynamoStore
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.leases[l.Key]; ok {
		return false, nil
	}
	s.leases[l.Key] = normalize(l.Clone())
	return true, nil
}

// normalize makes a stored lease look as it would after a DynamoDB round
// trip: empty sets and byte slices are absent.
func normalize(l Lease) Lease {
	if len(l.ParentShardIDs) == 0 {
		l.ParentShardIDs = nil
	} else {
		l.ParentShardIDs = sortedSet(l.ParentShardIDs)
	}
	if len(l.ChildShardIDs) == 0 {
		l.ChildShardIDs = nil
	} else {
		l.ChildShardIDs = sortedSet(l.ChildShardIDs)
	}
	if len(l.PendingCheckpointState) == 0 {
		l.PendingCheckpointState = nil
	}
	if len(l.Extra) == 0 {
		l.Extra = nil
	}
	return l
}

func sortedSet(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}

// update applies f to the stored lease after checking the condition that
// every mutating write shares: same counter, same owner.
func (s *MemoryStore) update(ctx context.Context, op string, l Lease, f func(*Lease)) (Lease, error) {
	return s.updateStep(ctx, op, l, 1, f)
}

// updateStep is update with the counter moved by step (0 for MarkHandoff).
func (s *MemoryStore) updateStep(ctx context.Context, op string, l Lease, step int64, f func(*Lease)) (Lease, error) {
	if err := ctx.Err(); err != nil {
		return Lease{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.leases[l.Key]
	if !ok {
		return Lease{}, fmt.Errorf("lease: %s: %s: %w", l.Key, op, ErrNotFound)
	}
	if cur.Counter != l.Counter || cur.Owner != l.Owner || cur.CheckpointOwner != l.CheckpointOwner {
		// Same rule as DynamoStore: a write whose effect is already in
		// place (a retried write that landed) succeeds.
		if landed(cur, expected(l, f, step)) {
			return cur.Clone(), nil
		}
		c := cur.Clone()
		return Lease{}, &ConflictError{Op: op, Key: l.Key, Counter: l.Counter, Owner: l.Owner, Current: &c}
	}
	cur = expected(cur, f, step)
	s.leases[l.Key] = cur
	return cur.Clone(), nil
}

// Renew implements Store.
func (s *MemoryStore) Renew(ctx context.Context, l Lease) (Lease, error) {
	if l.Owner == "" {
		return Lease{}, fmt.Errorf("lease: %s: renew: no owner", l.Key)
	}
	return s.update(ctx, "renew", l, func(c *Lease) { c.ThroughputKBps = l.ThroughputKBps })
}

// Take implements Store.
func (s *MemoryStore) Take(ctx context.Context, l Lease, owner string) (Lease, error) {
	if owner == "" {
		return Lease{}, fmt.Errorf("lease: %s: take: empty owner", l.Key)
	}
	return s.update(ctx, "take", l, func(c *Lease) {
		if switchesOwner(*c, owner) {
			c.OwnerSwitchesSinceCheckpoint++
		}
		c.Owner, c.CheckpointOwner = owner, ""
	})
}

// MarkHandoff implements Store.
func (s *MemoryStore) MarkHandoff(ctx context.Context, l Lease, next string) (Lease, error) {
	if err := checkHandoff(l, next); err != nil {
		return Lease{}, err
	}
	return s.updateStep(ctx, "mark handoff", l, 0, func(c *Lease) { c.Owner, c.CheckpointOwner = next, l.Owner })
}

// CancelHandoff implements Store.
func (s *MemoryStore) CancelHandoff(ctx context.Context, l Lease) (Lease, error) {
	if !l.InHandoff() {
		return Lease{}, fmt.Errorf("lease: %s: cancel handoff: not in handoff", l.Key)
	}
	return s.updateStep(ctx, "cancel handoff", l, 0, func(c *Lease) { c.Owner, c.CheckpointOwner = l.CheckpointOwner, "" })
}

// switchesOwner reports whether a Take of l by owner moves the lease from
// another worker (ownerSwitchesSinceCheckpoint counts those). Taking an
// unowned lease is not a switch; nor is a Take by the lease's leaseOwner,
// which is how a marked lease's next owner completes the handoff (KCL 3.x's
// completion does not count it either).
func switchesOwner(l Lease, owner string) bool {
	p := l.Processor()
	return p != "" && p != owner && l.Owner != owner
}

// checkHandoff validates a MarkHandoff request.
func checkHandoff(l Lease, next string) error {
	switch {
	case l.Finished():
		return fmt.Errorf("lease: %s: mark handoff: finished (SHARD_END)", l.Key)
	case l.Owner == "" || next == "" || next == l.Owner:
		return fmt.Errorf("lease: %s: mark handoff: needs an owner (%q) and another next owner (%q)", l.Key, l.Owner, next)
	case l.CheckpointOwner != "":
		return fmt.Errorf("lease: %s: mark handoff: already in handoff from %s", l.Key, l.CheckpointOwner)
	}
	return nil
}

// Release implements Store.
func (s *MemoryStore) Release(ctx context.Context, l Lease) (Lease, error) {
	if l.Owner == "" {
		return Lease{}, fmt.Errorf("lease: %s: release: no owner", l.Key)
	}
	return s.update(ctx, "release", l, func(c *Lease) { c.Owner, c.CheckpointOwner = "", "" })
}

// UpdateCheckpoint implements Store.
func (s *MemoryStore) UpdateCheckpoint(ctx context.Context, l Lease, pos checkpoint.Position) (Lease, error) {
	if err := checkStorable(pos); err != nil {
		return Lease{}, fmt.Errorf("lease: %s: checkpoint: %w", l.Key, err)
	}
	return s.update(ctx, "checkpoint", l, func(c *Lease) {
		c.Checkpoint = pos
		c.PendingCheckpoint = nil
		c.PendingCheckpointState = nil
		c.OwnerSwitchesSinceCheckpoint = 0
	})
}

// UpdatePendingCheckpoint implements Store.
func (s *MemoryStore) UpdatePendingCheckpoint(ctx context.Context, l Lease, pos *checkpoint.Position, state []byte) (Lease, error) {
	if pos != nil {
		if err := checkStorable(*pos); err != nil {
			return Lease{}, fmt.Errorf("lease: %s: pending checkpoint: %w", l.Key, err)
		}
	}
	return s.update(ctx, "pending checkpoint", l, func(c *Lease) {
		if pos == nil {
			c.PendingCheckpoint, c.PendingCheckpointState = nil, nil
			return
		}
		p := *pos
		c.PendingCheckpoint = &p
		c.PendingCheckpointState = slices.Clone(state)
	})
}

// UpdateChildShards implements Store.
func (s *MemoryStore) UpdateChildShards(ctx context.Context, l Lease, children []string) (Lease, error) {
	return s.update(ctx, "child shards", l, func(c *Lease) { c.ChildShardIDs = slices.Clone(children) })
}

// Delete implements Store.
func (s *MemoryStore) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.leases, key)
	return nil
}

func checkStorable(p checkpoint.Position) error {
	if p.IsZero() {
		return fmt.Errorf("%w: empty position", checkpoint.ErrInvalidPosition)
	}
	return p.Validate()
}
