package lease

import (
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/shardflow/shardflow/checkpoint"
)

// KCL's attribute names in the lease table.
const (
	AttrLeaseKey                     = "leaseKey"
	AttrLeaseOwner                   = "leaseOwner"
	AttrLeaseCounter                 = "leaseCounter"
	AttrOwnerSwitchesSinceCheckpoint = "ownerSwitchesSinceCheckpoint"
	AttrCheckpoint                   = "checkpoint"
	AttrCheckpointSubSequence        = "checkpointSubSequenceNumber"
	AttrPendingCheckpoint            = "pendingCheckpoint"
	AttrPendingCheckpointSubSequence = "pendingCheckpointSubSequenceNumber"
	AttrPendingCheckpointState       = "pendingCheckpointState"
	AttrParentShardID                = "parentShardId"
	AttrChildShardIDs                = "childShardIds"
	AttrStartingHashKey              = "startingHashKey"
	AttrEndingHashKey                = "endingHashKey"
	AttrEntityType                   = "entityType"
	// AttrCheckpointOwner is KCL 3.x's checkpointOwner, set only while a
	// lease is handed over gracefully: leaseOwner already names the next
	// owner, checkpointOwner the worker still processing (and
	// checkpointing) the shard until it hands over.
	AttrCheckpointOwner = "checkpointOwner"
	// AttrThroughputKBps is KCL 3.x's throughputKBps: the lease's recent
	// throughput as measured by its holder, in KiB/s.
	AttrThroughputKBps = "throughputKBps"
)

// EntityTypeLease is the entityType KCL 3.x gives lease items. Items with
// another entityType (worker metrics, leader lock) are not leases.
const EntityTypeLease = "LEASE"

// Lease is one row of a KCL lease table: a shard, who holds it, its fencing
// counter and the checkpoint reached in it.
type Lease struct {
	// Key is the leaseKey: the shard id, or in multi-stream mode KCL's
	// "account:stream:creationEpoch:shardId" (MultiStreamKey).
	Key string
	// StreamID is the serialized StreamIdentifier of a multi-stream lease
	// (KCL's streamName attribute, "account:stream:creationEpoch"); "" in
	// single-stream mode, where the item has no streamName.
	StreamID string
	// ShardID is the bare shard id of a multi-stream lease (KCL's shardId
	// attribute); "" in single-stream mode, where Key is the shard id. Use
	// Shard() for either.
	ShardID string
	// Owner is the worker holding the lease; "" when unowned.
	Owner string
	// Counter is the fencing counter, +1 on every renew, take, release and
	// checkpoint.
	Counter int64
	// Checkpoint is the position processing has reached.
	Checkpoint checkpoint.Position
	// PendingCheckpoint is the position written by PrepareCheckpoint, or nil.
	PendingCheckpoint *checkpoint.Position
	// PendingCheckpointState is the application's opaque prepared state.
	PendingCheckpointState []byte
	// OwnerSwitchesSinceCheckpoint counts ownership changes since the last
	// checkpoint.
	OwnerSwitchesSinceCheckpoint int64
	// ParentShardIDs and ChildShardIDs link the shard to its lineage. They
	// are bare shard ids in both modes, as KCL writes them; ParentKeys and
	// ChildKeys map them to lease keys.
	ParentShardIDs []string
	ChildShardIDs  []string
	// StartingHashKey and EndingHashKey are the shard's hash key range as
	// decimal strings; "" when unknown.
	StartingHashKey, EndingHashKey string
	// CheckpointOwner is KCL 3.x's checkpointOwner: during a graceful
	// handoff it names the worker that still processes the shard, while
	// Owner names the worker it is being handed to. "" otherwise.
	CheckpointOwner string
	// ThroughputKBps is KCL 3.x's throughputKBps: the data rate its holder
	// measured over its last renewal intervals (KiB/s), written with each
	// renewal; 0 when never measured. Balancing by load uses it.
	ThroughputKBps float64
	// Extra holds attributes this package does not interpret (KCL 3.x's
	// throughputKBps, checkpointOwner, entityType, ...), as read. They are
	// preserved in the table because every update touches only the
	// attributes it changes; Create writes them back as given.
	Extra map[string]types.AttributeValue
}

// Finished reports whether the lease's shard was processed to its end
// (checkpoint SHARD_END). Finished leases are neither balanced nor taken;
// the consumer deletes them once every child has checkpointed past its
// starting position.
// A sub-sequence number stored with the sentinel does not matter, as in KCL.
func (l Lease) Finished() bool { return l.Checkpoint.Sentinel == checkpoint.SentinelShardEnd }

// InHandoff reports whether the lease is being handed over gracefully
// (KCL 3.x's shutdownRequested): CheckpointOwner still processes it, Owner
// is the worker it goes to once CheckpointOwner has checkpointed.
func (l Lease) InHandoff() bool { return l.CheckpointOwner != "" && l.CheckpointOwner != l.Owner }

// Processor returns the worker that processes the shard now: the
// CheckpointOwner during a handoff, otherwise the Owner (KCL 3.x's
// actualOwner).
func (l Lease) Processor() string {
	if l.CheckpointOwner != "" {
		return l.CheckpointOwner
	}
	return l.Owner
}

// Clone returns a deep copy of l.
func (l Lease) Clone() Lease {
	c := l
	if l.PendingCheckpoint != nil {
		p := *l.PendingCheckpoint
		c.PendingCheckpoint = &p
	}
	c.PendingCheckpointState = slices.Clone(l.PendingCheckpointState)
	c.ParentShardIDs = slices.Clone(l.ParentShardIDs)
	c.ChildShardIDs = slices.Clone(l.ChildShardIDs)
	if l.Extra != nil {
		c.Extra = maps.Clone(l.Extra)
	}
	return c
}

// item is the lease table row as KCL writes it; attributevalue derives the
// exact DynamoDB types from the field types and tags.
type item struct {
	LeaseKey                     string   `dynamodbav:"leaseKey"`
	LeaseOwner                   string   `dynamodbav:"leaseOwner,omitempty"`
	LeaseCounter                 int64    `dynamodbav:"leaseCounter"`
	OwnerSwitchesSinceCheckpoint int64    `dynamodbav:"ownerSwitchesSinceCheckpoint"`
	Checkpoint                   string   `dynamodbav:"checkpoint"`
	CheckpointSubSequenceNumber  int64    `dynamodbav:"checkpointSubSequenceNumber"`
	PendingCheckpoint            *string  `dynamodbav:"pendingCheckpoint,omitempty"`
	PendingCheckpointSubSequence *int64   `dynamodbav:"pendingCheckpointSubSequenceNumber,omitempty"`
	PendingCheckpointState       []byte   `dynamodbav:"pendingCheckpointState,omitempty"`
	ParentShardID                []string `dynamodbav:"parentShardId,stringset,omitempty"`
	ChildShardIDs                []string `dynamodbav:"childShardIds,stringset,omitempty"`
	StartingHashKey              string   `dynamodbav:"startingHashKey,omitempty"`
	EndingHashKey                string   `dynamodbav:"endingHashKey,omitempty"`
	CheckpointOwner              string   `dynamodbav:"checkpointOwner,omitempty"`
	ThroughputKBps               float64  `dynamodbav:"throughputKBps,omitempty"`
	StreamName                   string   `dynamodbav:"streamName,omitempty"`
	ShardID                      string   `dynamodbav:"shardId,omitempty"`
}

var knownAttrs = map[string]bool{
	AttrLeaseKey: true, AttrLeaseOwner: true, AttrLeaseCounter: true,
	AttrOwnerSwitchesSinceCheckpoint: true, AttrCheckpoint: true, AttrCheckpointSubSequence: true,
	AttrPendingCheckpoint: true, AttrPendingCheckpointSubSequence: true, AttrPendingCheckpointState: true,
	AttrParentShardID: true, AttrChildShardIDs: true, AttrStartingHashKey: true, AttrEndingHashKey: true,
	AttrCheckpointOwner: true, AttrThroughputKBps: true, AttrStreamName: true, AttrShardID: true,
}

// positionAttr returns the checkpoint attribute value for p: the sentinel
// name or the sequence number.
func positionAttr(p checkpoint.Position) string {
	if p.IsSentinel() {
		return p.Sentinel
	}
	return p.SequenceNumber
}

// MarshalItem returns l as a lease table item with KCL's attribute names and
// DynamoDB types: leaseKey S, leaseOwner S (absent when unowned),
// leaseCounter N, ownerSwitchesSinceCheckpoint N, checkpoint S,
// checkpointSubSequenceNumber N, pendingCheckpoint S and
// pendingCheckpointSubSequenceNumber N (absent when none),
// pendingCheckpointState B, parentShardId SS and childShardIds SS (absent
// when empty), startingHashKey and endingHashKey S; a multi-stream lease
// adds streamName S (the stream identifier) and shardId S, as KCL's
// multi-stream serializer. Extra attributes are copied unless they collide
// with those.
func MarshalItem(l Lease) (map[string]types.AttributeValue, error) {
	if l.Key == "" {
		return nil, fmt.Errorf("lease: empty lease key")
	}
	if err := checkStreamAttrs(l); err != nil {
		return nil, err
	}
	it := item{
		LeaseKey:                     l.Key,
		LeaseOwner:                   l.Owner,
		LeaseCounter:                 l.Counter,
		OwnerSwitchesSinceCheckpoint: l.OwnerSwitchesSinceCheckpoint,
		Checkpoint:                   positionAttr(l.Checkpoint),
		CheckpointSubSequenceNumber:  l.Checkpoint.SubSequenceNumber,
		StartingHashKey:              l.StartingHashKey,
		EndingHashKey:                l.EndingHashKey,
		CheckpointOwner:              l.CheckpointOwner,
		ThroughputKBps:               l.ThroughputKBps,
		StreamName:                   l.StreamID,
		ShardID:                      l.ShardID,
	}
	// DynamoDB rejects empty and duplicate sets, and attributevalue would
	// write an empty (non-nil) slice as NULL: empty values are omitted.
	if len(l.ParentShardIDs) > 0 {
		it.ParentShardID = sortedSet(l.ParentShardIDs)
	}
	if len(l.ChildShardIDs) > 0 {
		it.ChildShardIDs = sortedSet(l.ChildShardIDs)
	}
	if len(l.PendingCheckpointState) > 0 {
		it.PendingCheckpointState = l.PendingCheckpointState
	}
	if it.Checkpoint == "" {
		return nil, fmt.Errorf("lease: %s: no checkpoint (use checkpoint.TrimHorizon or another sentinel)", l.Key)
	}
	if p := l.PendingCheckpoint; p != nil {
		s, sub := positionAttr(*p), p.SubSequenceNumber
		it.PendingCheckpoint, it.PendingCheckpointSubSequence = &s, &sub
	}
	av, err := attributevalue.MarshalMap(it)
	if err != nil {
		return nil, fmt.Errorf("lease: %s: marshal: %w", l.Key, err)
	}
	for k, v := range l.Extra {
		if !knownAttrs[k] {
			av[k] = v
		}
	}
	return av, nil
}

// UnmarshalItem reads a lease table item written by KCL for Java or by this
// package. Attributes it does not interpret are kept in Lease.Extra. An
// item it cannot read (a malformed checkpoint, a wrong attribute type)
// fails with an error matching ErrUnreadable.
func UnmarshalItem(av map[string]types.AttributeValue) (Lease, error) {
	var it item
	if err := attributevalue.UnmarshalMap(av, &it); err != nil {
		return Lease{}, fmt.Errorf("lease: %s: %w: %w", itemKey(av), ErrUnreadable, err)
	}
	if it.LeaseKey == "" {
		return Lease{}, fmt.Errorf("lease: %w: item has no %s", ErrUnreadable, AttrLeaseKey)
	}
	l := Lease{
		Key:                          it.LeaseKey,
		Owner:                        it.LeaseOwner,
		Counter:                      it.LeaseCounter,
		OwnerSwitchesSinceCheckpoint: it.OwnerSwitchesSinceCheckpoint,
		PendingCheckpointState:       it.PendingCheckpointState,
		ParentShardIDs:               it.ParentShardID,
		ChildShardIDs:                it.ChildShardIDs,
		StartingHashKey:              it.StartingHashKey,
		EndingHashKey:                it.EndingHashKey,
		CheckpointOwner:              it.CheckpointOwner,
		ThroughputKBps:               it.ThroughputKBps,
		StreamID:                     it.StreamName,
		ShardID:                      it.ShardID,
	}
	if err := checkStreamAttrs(l); err != nil {
		return Lease{}, fmt.Errorf("%w: %w", ErrUnreadable, err)
	}
	// Sets come back in any order; keep the one order MemoryStore uses.
	l = normalize(l)
	if it.Checkpoint == "" {
		// KCL always writes a checkpoint; treat a missing one as the
		// beginning so the shard is not skipped.
		l.Checkpoint = checkpoint.TrimHorizon
	} else {
		p, err := checkpoint.Parse(it.Checkpoint, it.CheckpointSubSequenceNumber)
		if err != nil {
			return Lease{}, fmt.Errorf("lease: %s: %w: %s: %w", it.LeaseKey, ErrUnreadable, AttrCheckpoint, err)
		}
		l.Checkpoint = p
	}
	if it.PendingCheckpoint != nil {
		var sub int64
		if it.PendingCheckpointSubSequence != nil {
			sub = *it.PendingCheckpointSubSequence
		}
		p, err := checkpoint.Parse(*it.PendingCheckpoint, sub)
		if err != nil {
			return Lease{}, fmt.Errorf("lease: %s: %w: %s: %w", it.LeaseKey, ErrUnreadable, AttrPendingCheckpoint, err)
		}
		l.PendingCheckpoint = &p
	}
	for k, v := range av {
		if !knownAttrs[k] {
			if l.Extra == nil {
				l.Extra = make(map[string]types.AttributeValue)
			}
			l.Extra[k] = v
		}
	}
	return l, nil
}

// checkStreamAttrs checks that a multi-stream lease's key is its stream
// identifier and shard id joined (KCL's MultiStreamLease.getLeaseKey):
// parents are found by that mapping, so a mismatch would let a child start
// before its parent ended. A lease with neither attribute is a
// single-stream lease.
func checkStreamAttrs(l Lease) error {
	if l.StreamID == "" && l.ShardID == "" {
		return nil
	}
	if _, err := ParseStreamIdentifier(l.StreamID); err != nil {
		return fmt.Errorf("lease: %s: %s: %w", l.Key, AttrStreamName, err)
	}
	if l.ShardID == "" || MultiStreamKey(l.StreamID, l.ShardID) != l.Key {
		return fmt.Errorf("lease: %s: %w: %s %q and %s %q do not make the lease key", l.Key, ErrBadStreamIdentifier, AttrStreamName, l.StreamID, AttrShardID, l.ShardID)
	}
	return nil
}

// isLeaseItem reports whether a scanned item is a lease: entityType absent
// (KCL 2.x) or "LEASE" (KCL 3.x).
func isLeaseItem(av map[string]types.AttributeValue) bool {
	v, ok := av[AttrEntityType]
	if !ok {
		return true
	}
	s, ok := v.(*types.AttributeValueMemberS)
	return ok && s.Value == EntityTypeLease
}

func nAttr(v int64) *types.AttributeValueMemberN {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
}
