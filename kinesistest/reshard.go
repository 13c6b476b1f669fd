package kinesistest

import (
	"time"

	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// Resharding completes at once: the stream never shows UPDATING, the parents
// close and the children open in the same instant.

func (s *Server) openShardLocked(st *stream, id string) (*shard, error) {
	if _, ok := shardIndex(id); !ok {
		return nil, errCouldNotFindShard(s, st.name, id)
	}
	sh := st.shard(id)
	if sh == nil || st.expired(sh, s.clk.Now()) {
		return nil, errCouldNotFindShard(s, st.name, id)
	}
	if !sh.open() {
		return nil, errInvalidArg("Shard %s in stream %s under account %s has already been merged or split, and thus is not eligible for merging or splitting.", sh.id, st.name, s.account)
	}
	return sh, nil
}

// SplitShard closes a shard and opens two children that divide its hash
// range at NewStartingHashKey.
func (s *Server) SplitShard(ctx context.Context, in *kinesis.SplitShardInput, _ ...func(*kinesis.Options)) (*kinesis.SplitShardOutput, error) {
	if err := s.gate(ctx, OpSplitShard); err != nil {
		return nil, err
	}
	hk := aws.ToString(in.NewStartingHashKey)
	key, wellFormed, inRange := parseHashKey(hk)
	if !wellFormed {
		return nil, validationError(hk, "newStartingHashKey", "Member must satisfy regular expression pattern: 0|([1-9]\\d{0,38})")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.lookupLocked(in.StreamName, in.StreamARN)
	if err != nil {
		return nil, err
	}
	sh, err := s.openShardLocked(st, aws.ToString(in.ShardToSplit))
	if err != nil {
		return nil, err
	}
	// As on the service, the key must be
	// greater than start+1 and less than end.
	startPlus1, _ := sh.start.add(u128{0, 1})
	if !inRange || key.cmp(startPlus1) <= 0 || key.cmp(sh.end) >= 0 {
		return nil, errInvalidArg("NewStartingHashKey %s used in SplitShard() on shard %s in stream %s under account %s is not both greater than one plus the shard's StartingHashKey %s and less than the shard's EndingHashKey %s.",
			hk, sh.id, st.name, s.account, sh.start, sh.end)
	}
	if cur := s.openShardTotalLocked(); cur+1 > s.shardLimit {
		return nil, s.shardLimitErr(cur, 1)
	}
	now := s.clk.Now()
	splitLocked(st, sh, key, now)
	s.notifyLocked()
	return &kinesis.SplitShardOutput{}, s.afterApply(OpSplitShard)
}

// MergeShards closes two shards with adjacent hash ranges and opens one child
// covering both; ShardToMerge becomes its ParentShardId and
// AdjacentShardToMerge its AdjacentParentShardId.
func (s *Server) MergeShards(ctx context.Context, in *kinesis.MergeShardsInput, _ ...func(*kinesis.Options)) (*kinesis.MergeShardsOutput, error) {
	if err := s.gate(ctx, OpMergeShards); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.lookupLocked(in.StreamName, in.StreamARN)
	if err != nil {
		return nil, err
	}
	a, err := s.openShardLocked(st, aws.ToString(in.ShardToMerge))
	if err != nil {
		return nil, err
	}
	b, err := s.openShardLocked(st, aws.ToString(in.AdjacentShardToMerge))
	if err != nil {
		return nil, err
	}
	lo, hi := a, b
	if b.start.cmp(a.start) < 0 {
		lo, hi = b, a
	}
	next, overflow := lo.end.add(u128{0, 1})
	if a == b || overflow || next.cmp(hi.start) != 0 {
		return nil, errInvalidArg("Shards %s and %s in stream %s under account %s are not an adjacent pair of shards eligible for merging",
			a.id, b.id, st.name, s.account)
	}
	s.mergeLocked(st, a, b, s.clk.Now())
	s.notifyLocked()
	return &kinesis.MergeShardsOutput{}, s.afterApply(OpMergeShards)
}

// splitLocked closes sh and opens its two children, the right one starting
// at key; s.mu must be held.
func splitLocked(st *stream, sh *shard, key u128, now time.Time) (left, right *shard) {
	st.closeShard(sh, now)
	left = st.addShard(sh.start, key.sub(u128{0, 1}), sh.id, "", now)
	right = st.addShard(key, sh.end, sh.id, "", now)
	return left, right
}

func (s *Server) mergeLocked(st *stream, a, b *shard, now time.Time) *shard {
	lo, hi := a, b
	if b.start.cmp(a.start) < 0 {
		lo, hi = b, a
	}
	st.closeShard(a, now)
	st.closeShard(b, now)
	return st.addShard(lo.start, hi.end, a.id, b.id, now)
}

// UpdateShardCount scales a stream to TargetShardCount shards of equal hash
// ranges (UNIFORM_SCALING) through splits and merges, as the service does;
// like the service it may leave short-lived intermediate shards (closed,
// empty) in the lineage. The target must lie within half and double the
// open shard count.
func (s *Server) UpdateShardCount(ctx context.Context, in *kinesis.UpdateShardCountInput, _ ...func(*kinesis.Options)) (*kinesis.UpdateShardCountOutput, error) {
	if err := s.gate(ctx, OpUpdateShardCount); err != nil {
		return nil, err
	}
	if in.ScalingType != types.ScalingTypeUniformScaling {
		return nil, validationError(in.ScalingType, "scalingType", "Member must satisfy enum value set: [UNIFORM_SCALING]")
	}
	target := int(aws.ToInt32(in.TargetShardCount))
	if target < 1 {
		return nil, validationError(target, "targetShardCount", "Member must have value greater than or equal to 1")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.lookupLocked(in.StreamName, in.StreamARN)
	if err != nil {
		return nil, err
	}
	now := s.clk.Now()
	recent := st.scaleOps[:0]
	for _, t := range st.scaleOps {
		if now.Sub(t) < 24*time.Hour {
			recent = append(recent, t)
		}
	}
	st.scaleOps = recent
	if len(recent) >= 10 {
		return nil, errLimit("Rate exceeded for stream %s under account %s: UpdateShardCount may scale a stream at most 10 times in a rolling 24-hour period.", st.name, s.account)
	}
	open := st.openShards()
	cur := len(open)
	switch {
	case target > 2*cur:
		return nil, errLimit("UpdateShardCount cannot scale up over double your current open shard count. Current open shard count: %d Target shard count: %d", cur, target)
	case 2*target < cur:
		return nil, errLimit("UpdateShardCount cannot scale down below half your current open shard count. Current open shard count: %d Target shard count: %d", cur, target)
	}
	if total := s.openShardTotalLocked(); total-cur+target > s.shardLimit {
		return nil, s.shardLimitErr(total, target-cur)
	}
	st.scaleOps = append(st.scaleOps, now)
	ranges := evenRanges(u128{}, maxU128, target)
	// Split every open shard at each target boundary inside it, so every
	// piece lies within one target range...
	var pieces []*shard
	for _, sh := range open {
		cur := sh
		for _, r := range ranges[1:] {
			b := r[0]
			if cur.start.cmp(b) < 0 && b.cmp(cur.end) <= 0 {
				left, right := splitLocked(st, cur, b, now)
				pieces = append(pieces, left)
				cur = right
			}
		}
		pieces = append(pieces, cur)
	}
	// ...then merge the pieces of each target range left to right.
	for _, r := range ranges {
		var acc *shard
		for _, p := range pieces {
			if p.start.cmp(r[0]) < 0 || p.end.cmp(r[1]) > 0 {
				continue
			}
			if acc == nil {
				acc = p
			} else {
				acc = s.mergeLocked(st, acc, p, now)
			}
		}
	}
	s.notifyLocked()
	return &kinesis.UpdateShardCountOutput{
		StreamName:        aws.String(st.name),
		StreamARN:         aws.String(st.arn),
		CurrentShardCount: aws.Int32(int32(cur)),
		TargetShardCount:  aws.Int32(int32(target)),
	}, s.afterApply(OpUpdateShardCount)
}
