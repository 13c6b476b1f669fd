package checkpoint

import (
	"errors"
	"fmt"
)

// Errors returned by a Checkpointer; test with errors.Is. A Checkpointer
// wraps them in *Error, which names the shard and the refused position.
var (
	// ErrLeaseLost means the worker no longer holds the shard's lease: the
	// conditional write was rejected (or the loss was already known). The
	// processor must stop processing the shard.
	ErrLeaseLost = errors.New("checkpoint: lease lost")
	// ErrPositionBackwards means the position is before the last checkpoint.
	ErrPositionBackwards = errors.New("checkpoint: position before last checkpoint")
	// ErrBeyondDelivered means the position is after the last record
	// delivered to the processor.
	ErrBeyondDelivered = errors.New("checkpoint: position beyond last delivered record")
	// ErrNotAtShardEnd means SHARD_END was asked for before the shard ended.
	ErrNotAtShardEnd = errors.New("checkpoint: SHARD_END before the end of the shard")
	// ErrShutdown means the Checkpointer was closed.
	ErrShutdown = errors.New("checkpoint: checkpointer closed")
	// ErrInvalidPosition means the position is malformed or a sentinel other
	// than SHARD_END was passed where a record position is required.
	ErrInvalidPosition = errors.New("checkpoint: invalid position")
)

// Error is a refused or failed checkpoint. It unwraps to one of the
// sentinel errors above or to the Writer's error.
type Error struct {
	Op       string   // "checkpoint" or "prepare"
	ShardID  string   // the shard the Checkpointer writes for
	Position Position // the position refused or not written
	Err      error    // a sentinel above or the Writer's error
}

// Error names the operation, shard and position, then the cause.
func (e *Error) Error() string {
	return fmt.Sprintf("%s shard %s at %s: %v", e.Op, e.ShardID, e.Position, e.Err)
}

// Unwrap returns the cause, for errors.Is and errors.As.
func (e *Error) Unwrap() error { return e.Err }
