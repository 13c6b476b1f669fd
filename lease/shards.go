package lease

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/shardflow/shardflow/checkpoint"
)

// Shard is a stream's shard as listed by Kinesis, for SyncShards and
// CreateChildLeases (the package does not depend on the Kinesis SDK).
type Shard struct {
	ID string
	// ParentIDs are the parent and adjacent parent shard ids (none, one,
	// or two for a merge).
	ParentIDs []string
	// StartingHashKey and EndingHashKey are the hash key range as decimal
	// strings.
	StartingHashKey, EndingHashKey string
	// Closed is set when the shard has an ending sequence number.
	Closed bool
	// StreamID is the serialized StreamIdentifier of the shard's stream in
	// multi-stream mode ("" in single-stream mode): its lease is keyed
	// MultiStreamKey(StreamID, ID) and carries KCL's streamName and
	// shardId attributes. ID and ParentIDs stay bare shard ids.
	StreamID string
}

// Key returns the shard's lease key.
func (s Shard) Key() string { return MultiStreamKey(s.StreamID, s.ID) }

func (s Shard) parentKeys() []string {
	return Lease{StreamID: s.StreamID, ParentShardIDs: s.ParentIDs}.ParentKeys()
}

func (s Shard) lease(start checkpoint.Position) Lease {
	l := Lease{
		Key:             s.Key(),
		Checkpoint:      start,
		ParentShardIDs:  append([]string(nil), s.ParentIDs...),
		StartingHashKey: s.StartingHashKey,
		EndingHashKey:   s.EndingHashKey,
	}
	if s.StreamID != "" {
		l.StreamID, l.ShardID = s.StreamID, s.ID
	}
	return l
}

// SyncShards creates the leases the stream's shards need (KCL's
// HierarchicalShardSyncer, simplified) and returns the leases it created
// and the table as listed before:
//   - a shard whose lease exists, or one of whose descendants has a lease
//     (its lineage was processed and the lease possibly cleaned up), is left
//     alone;
//   - a shard with a parent that has (or now gets) a lease starts at
//     TRIM_HORIZON, so nothing written after the split or merge is missed;
//   - any other shard starts at initial (checkpoint.TrimHorizon,
//     AtTimestamp or Latest); with Latest, closed shards without leased
//     ancestry get no lease (nothing new will arrive).
//
// Creates are conditional (if absent), so workers syncing at once agree.
// In multi-stream mode shards is one stream's list (each with its
// StreamID); the other streams' leases in the table are left alone.
func SyncShards(ctx context.Context, store Store, shards []Shard, initial checkpoint.Position) (created, listed []Lease, err error) {
	listed, err = store.List(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("lease: shard sync: %w", err)
	}
	created, err = syncShards(ctx, store, listed, shards, initial)
	return created, listed, err
}

// errStaleView stops a dry run of syncShards at the first lease it would
// create.
var errStaleView = errors.New("lease: shard sync needs a fresh scan")

// SyncShardsFrom is SyncShards deciding from recent, a scan made earlier
// (Coordinator.LastScan), instead of a scan of its own, as long as that
// view says no lease is missing, which is the steady state: it then
// returns recent as listed and costs no read. A view that lacks a lease
// the shards need may only be stale (the lease created since, or its
// lineage processed and cleaned up since, which must not be recreated),
// so then SyncShards decides on a fresh scan. What DeleteFinished does
// with the view is safe whatever its age: a finished lease stays finished
// and a started child stays started.
func SyncShardsFrom(ctx context.Context, store Store, recent []Lease, shards []Shard, initial checkpoint.Position) (created, listed []Lease, err error) {
	if recent != nil {
		switch _, err := syncShards(ctx, nil, recent, shards, initial); {
		case err == nil:
			return nil, recent, nil
		case !errors.Is(err, errStaleView):
			return nil, nil, err
		}
	}
	return SyncShards(ctx, store, shards, initial)
}

// syncShards is SyncShards on listed; with a nil store it creates nothing
// and fails with errStaleView where it would.
func syncShards(ctx context.Context, store Store, listed []Lease, shards []Shard, initial checkpoint.Position) (created []Lease, err error) {
	// Everything below is keyed by lease key, so shards of different
	// streams with the same shard id never meet.
	byID := make(map[string]*Shard, len(shards))
	children := childrenOf(shards)
	for i := range shards {
		byID[shards[i].Key()] = &shards[i]
	}
	has := make(map[string]bool, len(listed))
	for _, l := range listed {
		has[l.Key] = true
	}
	memoBelow := map[string]bool{}
	var leasedBelow func(id string) bool
	leasedBelow = func(id string) bool {
		if v, ok := memoBelow[id]; ok {
			return v
		}
		memoBelow[id] = false // cycle guard
		for _, ch := range children[id] {
			if has[ch] || leasedBelow(ch) {
				memoBelow[id] = true
				return true
			}
		}
		return false
	}
	// ensure reports whether id has, gets or no longer needs a lease (its
	// lineage was processed), creating the lease if needed.
	visiting := map[string]bool{}
	var ensure func(id string) (bool, error)
	ensure = func(id string) (bool, error) {
		if has[id] {
			return true, nil
		}
		s, ok := byID[id]
		if !ok || visiting[id] {
			return false, nil
		}
		visiting[id] = true
		if leasedBelow(id) {
			// Processed earlier (its lease was cleaned up): its other
			// children must start at TRIM_HORIZON like the leased one.
			has[id] = true
			return true, nil
		}
		start := checkpoint.Position{}
		for _, p := range s.parentKeys() {
			ok, err := ensure(p)
			if err != nil {
				return false, err
			}
			if ok {
				start = checkpoint.TrimHorizon
			}
		}
		if start.IsZero() {
			if initial.Sentinel == checkpoint.SentinelLatest && s.Closed {
				return false, nil // closed, and LATEST skips history
			}
			start = initial
		}
		l := s.lease(start)
		if store == nil {
			return false, errStaleView
		}
		made, err := store.Create(ctx, l)
		if err != nil {
			return false, fmt.Errorf("lease: shard sync: create %s: %w", id, err)
		}
		has[id] = true
		if made {
			created = append(created, l)
		}
		return true, nil
	}
	for i := range shards {
		if _, err := ensure(shards[i].Key()); err != nil {
			return created, err
		}
	}
	return created, nil
}

// childrenOf maps each parent's lease key to its children's lease keys.
func childrenOf(shards []Shard) map[string][]string {
	children := make(map[string][]string)
	for _, s := range shards {
		for _, p := range s.parentKeys() {
			children[p] = append(children[p], s.Key())
		}
	}
	return children
}

// DeleteFinished deletes the SHARD_END leases among listed whose children
// (childShardIds, or the stream's shards naming them as parent) have all
// checkpointed past their initial position (KCL's lease cleanup rule), and
// returns their keys. Only then is a parent's lease certainly not needed:
// a child whose parent lease is gone starts at once, and SyncShards never
// recreates a lease above a leased descendant. Deleting it as soon as the
// children have leases would also make a KCL worker reading the table (a
// fleet moving back to KCL) see children without their parent's SHARD_END
// before they started. Failed deletes are returned joined; the others
// still happen.
func DeleteFinished(ctx context.Context, store Store, listed []Lease, shards []Shard) (deleted []string, err error) {
	children := childrenOf(shards)
	started := make(map[string]bool, len(listed))
	present := make(map[string]bool, len(listed))
	for _, l := range listed {
		// A real position or SHARD_END; a sentinel start position
		// (TRIM_HORIZON, AT_TIMESTAMP, LATEST) means not started yet.
		started[l.Key] = !l.Checkpoint.IsSentinel() || l.Finished()
		present[l.Key] = true
	}
	var errs []error
	for _, l := range listed {
		if !l.Finished() {
			continue
		}
		// Parents go first (KCL's rule too): deleting this lease while a
		// parent's is still here would leave that parent with a child
		// lease that no longer exists, so it could never be cleaned up.
		if slices.ContainsFunc(l.ParentKeys(), func(p string) bool { return present[p] }) {
			continue
		}
		kids := l.ChildKeys()
		if len(kids) == 0 {
			kids = children[l.Key]
		}
		if len(kids) == 0 {
			continue // children unknown yet
		}
		all := true
		for _, k := range kids {
			all = all && started[k]
		}
		if !all {
			continue
		}
		if err := store.Delete(ctx, l.Key); err != nil {
			errs = append(errs, fmt.Errorf("lease: delete finished %s: %w", l.Key, err))
			continue
		}
		deleted = append(deleted, l.Key)
	}
	return deleted, errors.Join(errs...)
}

// CreateChildLeases creates the leases of a finished shard's children
// (from GetRecords' ChildShards) at TRIM_HORIZON and returns those it
// created. The caller makes sure every other parent of a merge child has a
// lease first (SyncShards does, parents before children): a child lease
// created before its other parent's would let the child start without
// waiting for it.
func CreateChildLeases(ctx context.Context, store Store, children []Shard) (created []Lease, err error) {
	for _, ch := range children {
		l := ch.lease(checkpoint.TrimHorizon)
		made, err := store.Create(ctx, l)
		if err != nil {
			return created, fmt.Errorf("lease: create child lease %s: %w", l.Key, err)
		}
		if made {
			created = append(created, l)
		}
	}
	return created, nil
}
