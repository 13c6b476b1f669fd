package consumer

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardflow/shardflow/checkpoint"
	"github.com/shardflow/shardflow/lease"
)

// listShards returns every shard of the stream, open and closed.
func (c *Consumer) listShards(ctx context.Context) ([]types.Shard, error) {
	var shards []types.Shard
	in := &kinesis.ListShardsInput{}
	if c.cfg.StreamARN != "" {
		in.StreamARN = aws.String(c.cfg.StreamARN)
	} else {
		in.StreamName = aws.String(c.cfg.StreamName)
	}
	for {
		out, err := c.kc.ListShards(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list shards: %w", err)
		}
		shards = append(shards, out.Shards...)
		if out.NextToken == nil || *out.NextToken == "" {
			return shards, nil
		}
		// With NextToken the stream must not be named again.
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
}

// syncShards creates leases for shards that need one (KCL's
// HierarchicalShardSyncer, simplified):
//   - a shard whose lease exists, or one of whose descendants has a lease
//     (its lineage was processed and the lease possibly cleaned up), is left
//     alone;
//   - a shard with a parent that has (or now gets) a lease starts at
//     TRIM_HORIZON, so nothing written after the split or merge is missed;
//   - any other shard starts at the initial position; with LATEST, closed
//     shards without leased ancestry get no lease (nothing new will arrive).
//
// Creates are conditional (if absent), so workers syncing at once agree.
func (c *Consumer) syncShards(ctx context.Context) (created int, err error) {
	shards, err := c.listShards(ctx)
	if err != nil {
		return 0, err
	}
	leases, err := c.store.List(ctx)
	if err != nil {
		return 0, fmt.Errorf("list leases: %w", err)
	}
	byID := make(map[string]*types.Shard, len(shards))
	children := make(map[string][]string)
	for i := range shards {
		s := &shards[i]
		id := aws.ToString(s.ShardId)
		byID[id] = s
		for _, p := range shardParents(s) {
			children[p] = append(children[p], id)
		}
	}
	has := make(map[string]bool, len(leases))
	for _, l := range leases {
		has[l.Key] = true
	}
	// leasedBelow reports whether a descendant of id has a lease.
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
		for _, p := range shardParents(s) {
			ok, err := ensure(p)
			if err != nil {
				return false, err
			}
			if ok {
				start = checkpoint.TrimHorizon
			}
		}
		if start.IsZero() {
			switch c.cfg.InitialPosition.Type {
			case TrimHorizon:
				start = checkpoint.TrimHorizon
			case AtTimestamp:
				start = checkpoint.AtTimestamp
			default:
				if s.SequenceNumberRange != nil && s.SequenceNumberRange.EndingSequenceNumber != nil {
					return false, nil // closed, and LATEST skips history
				}
				start = checkpoint.Latest
			}
		}
		l := lease.Lease{
			Key:            id,
			Checkpoint:     start,
			ParentShardIDs: shardParents(s),
		}
		if r := s.HashKeyRange; r != nil {
			l.StartingHashKey, l.EndingHashKey = aws.ToString(r.StartingHashKey), aws.ToString(r.EndingHashKey)
		}
		made, err := c.store.Create(ctx, l)
		if err != nil {
			return false, fmt.Errorf("create lease %s: %w", id, err)
		}
		has[id] = true
		if made {
			created++
			c.log.Info("created lease", "shard", id, "checkpoint", start.String(), "parents", l.ParentShardIDs)
		}
		return true, nil
	}
	for i := range shards {
		if _, err := ensure(aws.ToString(shards[i].ShardId)); err != nil {
			return created, err
		}
	}
	if !c.cfg.KeepFinishedLeases {
		c.cleanFinished(ctx, leases, children)
	}
	return created, nil
}

// cleanFinished deletes SHARD_END leases whose children have all
// checkpointed past their initial position and whose parents' leases are
// gone (KCL's lease cleanup rule). Only
// then is the parent's lease certainly not needed: a child whose parent
// lease is gone starts at once, and the sync never recreates a lease above
// a leased descendant. Deleting it as soon as the children have leases
// would also make a KCL worker reading the table (a fleet moving back to
// KCL) see children without their parent's SHARD_END before they started.
func (c *Consumer) cleanFinished(ctx context.Context, leases []lease.Lease, children map[string][]string) {
	started := make(map[string]bool, len(leases))
	present := make(map[string]bool, len(leases))
	for _, l := range leases {
		// A real position or SHARD_END; a sentinel start position
		// (TRIM_HORIZON, AT_TIMESTAMP, LATEST) means not started yet.
		started[l.Key] = !l.Checkpoint.IsSentinel() || l.Finished()
		present[l.Key] = true
	}
	for _, l := range leases {
		if !l.Finished() {
			continue
		}
		// Parents' leases go first (KCL's rule too): deleting this one
		// while a parent's lease remains would leave that parent with a
		// child lease that no longer exists, so it would never qualify.
		if slices.ContainsFunc(l.ParentShardIDs, func(p string) bool { return present[p] }) {
			continue
		}
		kids := l.ChildShardIDs
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
		if err := c.store.Delete(ctx, l.Key); err != nil {
			c.log.Warn("deleting finished lease failed", "shard", l.Key, "err", err)
			continue
		}
		c.log.Info("deleted finished lease", "shard", l.Key, "children", kids)
	}
}

func shardParents(s *types.Shard) []string {
	var ps []string
	if p := aws.ToString(s.ParentShardId); p != "" {
		ps = append(ps, p)
	}
	if p := aws.ToString(s.AdjacentParentShardId); p != "" {
		ps = append(ps, p)
	}
	return ps
}

// createChildLeases creates the leases of a finished shard's children from
// GetRecords' (or SubscribeToShard's) ChildShards, before the parent
// checkpoints SHARD_END, so a crash in between cannot strand them.
//
// A merge child has another parent, which may have no lease yet: a split
// child whose own parent is still being processed gets its lease at that
// parent's end or at the next shard sync. A child lease created first
// would let the child start without waiting for it (a missing parent lease
// counts as processed) and would make the shard sync skip that parent for
// good (a shard with a leased descendant counts as processed). So when
// another parent has no lease, a full shard sync runs first: it creates
// leases parents before children.
func (c *Consumer) createChildLeases(ctx context.Context, shardID string, children []types.ChildShard) error {
	sync := false
	for _, ch := range children {
		for _, p := range ch.ParentShards {
			if p == shardID {
				continue
			}
			_, err := c.store.Get(ctx, p)
			switch {
			case errors.Is(err, lease.ErrNotFound):
				sync = true
			case err != nil:
				return fmt.Errorf("read lease of parent shard %s: %w", p, err)
			}
		}
	}
	if sync {
		n, err := c.syncShards(ctx)
		if err != nil {
			return fmt.Errorf("shard sync for a merge child: %w", err)
		}
		if n > 0 {
			c.log.Info("shard sync for a merge child created leases", "created", n)
		}
	}
	for _, ch := range children {
		l := lease.Lease{
			Key:            aws.ToString(ch.ShardId),
			Checkpoint:     checkpoint.TrimHorizon,
			ParentShardIDs: append([]string(nil), ch.ParentShards...),
		}
		if r := ch.HashKeyRange; r != nil {
			l.StartingHashKey, l.EndingHashKey = aws.ToString(r.StartingHashKey), aws.ToString(r.EndingHashKey)
		}
		made, err := c.store.Create(ctx, l)
		if err != nil {
			return fmt.Errorf("create child lease %s: %w", l.Key, err)
		}
		if made {
			c.log.Info("created child lease", "shard", l.Key, "parents", l.ParentShardIDs)
		}
	}
	return nil
}
