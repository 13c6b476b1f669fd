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
)

// ConflictError is a failed conditional write. It matches ErrConflict with
// errors.Is.
type ConflictError struct {
	Op  string // "renew", "take", "release", "checkpoint", ...
	Key string // the lease key
	// Counter and Owner are the values the write was conditional on.
	Counter int64
	Owner   string
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("lease %s: %s conditional on counter %d owner %q failed: %v", e.Key, e.Op, e.Counter, e.Owner, ErrConflict)
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// Store holds leases. Both implementations (DynamoStore and MemoryStore)
// have identical semantics, checked by one conformance suite:
//
//   - Every mutating call except Create and Delete is conditional on the
//     lease's Counter and Owner as passed in l (Owner "" means "unowned"),
//     increments the counter by one, and returns the lease as now stored.
//     A failed condition returns a *ConflictError; a missing lease
//     ErrNotFound.
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
	// Renew increments the counter of a lease held by l.Owner.
	Renew(ctx context.Context, l Lease) (Lease, error)
	// Take makes owner the holder of the lease observed as l, incrementing
	// ownerSwitchesSinceCheckpoint when it had another owner (not when it
	// was unowned), as KCL does. A lease item without leaseCounter reads
	// as counter 0 and can be taken on it.
	Take(ctx context.Context, l Lease, owner string) (Lease, error)
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
