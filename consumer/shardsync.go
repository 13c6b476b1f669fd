package consumer

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardflow/shardflow/internal/shardlist"
	"github.com/shardflow/shardflow/lease"
)

// listShards returns every shard of the stream, open and closed.
func (c *Consumer) listShards(ctx context.Context, s *stream) ([]types.Shard, error) {
	list := func(ctx context.Context, in *kinesis.ListShardsInput) (*kinesis.ListShardsOutput, error) {
		return c.kc.ListShards(ctx, in)
	}
	shards, err := shardlist.All(ctx, list, s.listInput())
	if err != nil {
		return nil, fmt.Errorf("list shards: %w", err)
	}
	return shards, nil
}

// syncShards lists the stream's shards and has the lease package create
// the leases they need (lease.SyncShards) and, unless KeepFinishedLeases,
// delete finished ones no longer needed (lease.DeleteFinished).
func (c *Consumer) syncShards(ctx context.Context, s *stream) (created int, err error) {
	return c.syncShardsRecent(ctx, s, false)
}

// syncShardsRecent is syncShards; with recent it decides from the lease
// coordinator's last scan when that is younger than ShardSyncInterval
// (lease.SyncShardsFrom), so the periodic sync of a fleet in steady state
// reads nothing from the lease table: every worker's coordinator scans it
// anyway.
func (c *Consumer) syncShardsRecent(ctx context.Context, s *stream, recent bool) (created int, err error) {
	shards, err := c.listShards(ctx, s)
	if err != nil {
		return 0, err
	}
	ls := leaseShards(s.id, shards)
	var view []lease.Lease
	if recent {
		if v, at := c.coord.LastScan(); v != nil && c.cfg.Clock.Now().Sub(at) < c.cfg.ShardSyncInterval {
			view = v
		}
	}
	made, listed, err := lease.SyncShardsFrom(ctx, c.store, view, ls, s.initialCheckpoint())
	for _, l := range made {
		s.log.Info("created lease", "shard", l.Shard(), "checkpoint", l.Checkpoint.String(), "parents", l.ParentShardIDs)
	}
	if err != nil {
		return len(made), err
	}
	if !c.cfg.KeepFinishedLeases {
		deleted, err := lease.DeleteFinished(ctx, c.store, listed, ls)
		for _, k := range deleted {
			s.log.Info("deleted finished lease", "lease", k)
		}
		if err != nil {
			// Not fatal for the sync: the next one tries again.
			s.log.Warn("deleting finished leases failed", "err", err)
		}
	}
	return len(made), nil
}

// leaseShards describes the stream's shards for the lease package.
func leaseShards(streamID string, shards []types.Shard) []lease.Shard {
	out := make([]lease.Shard, len(shards))
	for i := range shards {
		s := &shards[i]
		out[i] = lease.Shard{
			StreamID:  streamID,
			ID:        aws.ToString(s.ShardId),
			ParentIDs: shardParents(s),
			Closed:    s.SequenceNumberRange != nil && s.SequenceNumberRange.EndingSequenceNumber != nil,
		}
		if r := s.HashKeyRange; r != nil {
			out[i].StartingHashKey, out[i].EndingHashKey = aws.ToString(r.StartingHashKey), aws.ToString(r.EndingHashKey)
		}
	}
	return out
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
func (c *Consumer) createChildLeases(ctx context.Context, s *stream, shardID string, children []types.ChildShard) error {
	sync := false
	for _, ch := range children {
		for _, p := range ch.ParentShards {
			if p == shardID {
				continue
			}
			_, err := c.store.Get(ctx, lease.MultiStreamKey(s.id, p))
			switch {
			case errors.Is(err, lease.ErrNotFound):
				sync = true
			case err != nil:
				return fmt.Errorf("read lease of parent shard %s: %w", p, err)
			}
		}
	}
	if sync {
		n, err := c.syncShards(ctx, s)
		if err != nil {
			return fmt.Errorf("shard sync for a merge child: %w", err)
		}
		if n > 0 {
			s.log.Info("shard sync for a merge child created leases", "created", n)
		}
	}
	kids := make([]lease.Shard, len(children))
	for i, ch := range children {
		kids[i] = lease.Shard{StreamID: s.id, ID: aws.ToString(ch.ShardId), ParentIDs: ch.ParentShards}
		if r := ch.HashKeyRange; r != nil {
			kids[i].StartingHashKey, kids[i].EndingHashKey = aws.ToString(r.StartingHashKey), aws.ToString(r.EndingHashKey)
		}
	}
	made, err := lease.CreateChildLeases(ctx, c.store, kids)
	for _, l := range made {
		s.log.Info("created child lease", "shard", l.Shard(), "parents", l.ParentShardIDs)
	}
	return err
}
