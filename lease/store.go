package lease

import (
	"context"
	"errors"
	"fmt"

	"github.com/shardflow/shardflow/checkpoint"
)

// Store errors; test with errors.Is.
var (
	// ErrNotFound means no lease has the key.
	ErrNotFound = errors.New("lease: not found")
	// ErrConflict means a conditional write failed: the lease's counter or
	// owner is no longer what the caller observed. For the holder this means
	// the lease is lost.
	ErrConflict = errors.New("lease: conditional write failed")
	// ErrUnreadable means a lease item exists but cannot be read as a
	// lease (written by another tool: a malformed checkpoint, a wrong
	// attribute type). List leaves such items out (and logs them); Get
	// returns this error for them. It is not transient: the item must be
	// fixed.
	ErrUnreadable = errors.New("lease: unreadable lease item")
	// ErrLeaseLost is checkpoint.ErrLeaseLost, returned by the Coordinator's
	// checkpoint writes when the lease is not (or no longer) held.
	ErrLeaseLost = checkpoint.ErrLeaseLost
	// ErrTableNotFound is matched by DynamoStore errors caused by the lease
	// table not existing (DynamoDB's ResourceNotFoundException, also
	// reachable with errors.As as *types.ResourceNotFoundException): it was
	// deleted, or NewDynamoStore was told not to create it.
	ErrTableNotFound = errors.New("lease: table not found")
	// ErrStoreUnreachable is matched by DynamoStore errors of calls that got
	// no response (the endpoint refused or dropped the connection, DNS
	// failed), after the SDK's own retries. Errors DynamoDB returned are
	// matched with errors.As on the SDK's types instead
	// (*types.ProvisionedThroughputExceededException, ...).
	ErrStoreUnreachable = errors.New("lease: store unreachable")
)

// ConflictError is a failed conditional write. It matches ErrConflict with
// errors.Is.
type ConflictError struct {
	Op  string // "renew", "take", "release", "checkpoint", ...
	Key string // the lease key
	// Counter and Owner are the values the write was conditional on.
	Counter int64
	Owner   string
	// Current is the lease as read back after the failed condition, when
	// that read succeeded (nil otherwise, or when the lease is gone). It
	// tells a holder whether a graceful handoff was requested (the only
	// change made without moving the counter) or the lease was taken.
	Current *Lease
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("lease: %s: %s conditional on counter %d owner %q failed: %v", e.Key, e.Op, e.Counter, e.Owner, ErrConflict)
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// Store holds leases. Both implementations (DynamoStore and MemoryStore)
// have identical semantics, checked by one conformance suite:
//
//   - Every mutating call except Create and Delete is conditional on the
//     lease's Counter, Owner and CheckpointOwner as passed in l ("" means
//     absent), increments the counter by one (all but MarkHandoff), and
//     returns the lease as now stored. A failed condition returns a
//     *ConflictError; a missing lease ErrNotFound.
//   - A write whose exact effect is already stored (owner, counter+1 and
//     the written attributes) succeeds and returns the stored lease: that
//     is how a retried request whose first attempt landed is told apart
//     from a lost lease (KCL re-reads after a failed renewal for the same
//     reason). Only the same owner's identical write can match.
//   - Leases are returned as deep copies; callers may keep and modify them.
type Store interface {
	// List returns every lease (a consistent read), sorted by key; items
	// whose entityType is present and not "LEASE" are skipped.
	List(ctx context.Context) ([]Lease, error)
	// Get returns one lease (a consistent read) or ErrNotFound.
	Get(ctx context.Context, key string) (Lease, error)
	// Create stores l if no lease has its key; created reports whether it did.
	Create(ctx context.Context, l Lease) (created bool, err error)
	// Renew increments the counter of a lease held by l.Owner (or by
	// l.CheckpointOwner during a handoff) and writes l.ThroughputKBps
	// (removing the attribute when 0).
	Renew(ctx context.Context, l Lease) (Lease, error)
	// Take makes owner the holder of the lease observed as l, incrementing
	// ownerSwitchesSinceCheckpoint when it was processed by another worker
	// (l.Processor(); not when it was unowned), as KCL does. It ends any
	// handoff in progress (removes checkpointOwner): Take(l, l.Owner) by
	// the CheckpointOwner is how a handoff is completed. A lease item
	// without leaseCounter reads as counter 0 and can be taken on it.
	Take(ctx context.Context, l Lease, owner string) (Lease, error)
	// MarkHandoff asks the holder of l to hand the lease over to next, as
	// KCL 3.x's initiateGracefulLeaseHandoff: leaseOwner becomes next and
	// checkpointOwner the holder (l.Owner), which goes on processing until
	// it has checkpointed and completes the handoff with Take. It requires
	// a lease not already in handoff, and does not move the counter (so
	// it reads as neither a renewal nor a take to KCL 2.x workers).
	MarkHandoff(ctx context.Context, l Lease, next string) (Lease, error)
	// CancelHandoff withdraws a handoff request (by the next owner, which
	// is stopping): leaseOwner goes back to the checkpointOwner, which keeps
	// the lease as if never asked. Like MarkHandoff it does not move the
	// counter.
	CancelHandoff(ctx context.Context, l Lease) (Lease, error)
	// Release removes the owner, so any worker can take the lease at once.
	Release(ctx context.Context, l Lease) (Lease, error)
	// UpdateCheckpoint sets the checkpoint, clears the pending checkpoint and
	// resets ownerSwitchesSinceCheckpoint.
	UpdateCheckpoint(ctx context.Context, l Lease, pos checkpoint.Position) (Lease, error)
	// UpdatePendingCheckpoint sets (or with pos == nil clears) the pending
	// checkpoint and its state.
	UpdatePendingCheckpoint(ctx context.Context, l Lease, pos *checkpoint.Position, state []byte) (Lease, error)
	// UpdateChildShards sets childShardIds (removes the attribute when empty).
	UpdateChildShards(ctx context.Context, l Lease, children []string) (Lease, error)
	// Delete removes the lease unconditionally; deleting a missing lease is
	// not an error. It is meant for finished (SHARD_END) leases and
	// administration.
	Delete(ctx context.Context, key string) error
}
