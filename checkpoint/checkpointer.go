package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Writer persists checkpoints for a shard. lease.Coordinator implements it:
// every write is a DynamoDB conditional write on the lease counter the worker
// holds, so a write from a worker that lost the lease fails with an error
// wrapping ErrLeaseLost.
type Writer interface {
	// WriteCheckpoint records pos as the shard's checkpoint and clears any
	// pending checkpoint.
	WriteCheckpoint(ctx context.Context, shardID string, pos Position) error
	// WritePendingCheckpoint records pos and state as the shard's pending
	// (prepared) checkpoint, leaving the checkpoint itself unchanged.
	WritePendingCheckpoint(ctx context.Context, shardID string, pos Position, state []byte) error
}

// Checkpointer is what a record processor calls to record its progress in
// one shard. The consumer tells it which records it hands to the processor
// (Delivered), whether the processor finished them (Returned) and when the
// shard ended (ShardEnded); it refuses checkpoints that go backwards, beyond
// what was delivered, or to SHARD_END early, and it stops for good once the
// lease is lost or it is closed.
//
// Checkpoint without a position means "everything the processor has
// finished": while a batch is being processed, that batch (the processor
// checkpoints it as it completes it); at any other time, the last batch the
// processor returned from successfully. A batch that failed is therefore
// never checkpointed by a later Checkpoint, e.g. in ShutdownRequested while
// the batch waits for its retry.
//
// A Checkpointer is safe for concurrent use. Writes are serialised, so the
// stored checkpoint never goes backwards even when a processor checkpoints
// from several goroutines.
type Checkpointer struct {
	shardID string
	w       Writer

	writeMu sync.Mutex // held across a write, serialises writes

	mu        sync.Mutex // guards the fields below; never held across a write
	last      Position
	pending   *Position
	delivered Position // zero until Delivered is called
	// finished is the last record of the last batch the processor
	// returned from without error; zero until then.
	finished Position
	// inBatch is set from Delivered until Returned: the processor is
	// working on the records up to delivered.
	inBatch    bool
	shardEnded bool
	lost       bool
	closed     bool
}

// NewCheckpointer returns the Checkpointer for shardID, writing through w.
// start is the checkpoint the shard's processing started from (the lease's
// checkpoint, or the initial position sentinel).
func NewCheckpointer(shardID string, w Writer, start Position) *Checkpointer {
	return &Checkpointer{shardID: shardID, w: w, last: start}
}

// ShardID returns the shard this Checkpointer writes for.
func (c *Checkpointer) ShardID() string { return c.shardID }

// Delivered records that the records up to and including pos were handed to
// the processor, which is now working on them. The consumer calls it before
// each call that hands over a batch whose last record is pos (again before
// each retry of it), and Returned after the call. Positions before an
// earlier Delivered are ignored.
func (c *Checkpointer) Delivered(pos Position) {
	if pos.IsSentinel() || pos.Validate() != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.delivered.IsZero() || pos.Compare(c.delivered) > 0 {
		c.delivered = pos
	}
	c.inBatch = true
}

// Returned records that the processor returned from the batch handed over
// by the last Delivered; err is what it returned. With nil the batch is
// finished and Checkpoint covers it from now on; with an error it is not,
// and Checkpoint covers only the batches finished before it.
func (c *Checkpointer) Returned(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inBatch && err == nil {
		c.finished = c.delivered
	}
	c.inBatch = false
}

// ShardEnded records that every record of the shard was delivered. From then
// on SHARD_END is accepted and Checkpoint writes SHARD_END.
func (c *Checkpointer) ShardEnded() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.shardEnded = true
}

// LeaseLost marks the lease as lost, so every later call fails with
// ErrLeaseLost without a write. The consumer calls it when the coordinator
// reports the loss; writes are fenced by the lease table regardless.
func (c *Checkpointer) LeaseLost() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lost = true
}

// Close makes every later call fail with ErrShutdown. It waits for a write
// in progress and is idempotent.
func (c *Checkpointer) Close() {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
}

// Last returns the last checkpoint written successfully (the start position
// until the first write).
func (c *Checkpointer) Last() Position {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// Pending returns the pending checkpoint written by PrepareCheckpoint and
// not yet superseded by a checkpoint.
func (c *Checkpointer) Pending() (Position, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending == nil {
		return Position{}, false
	}
	return *c.pending, true
}

// LastDelivered returns the last position passed to Delivered, or the zero
// Position when none was.
func (c *Checkpointer) LastDelivered() Position {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.delivered
}

// Checkpoint records everything the processor has finished as the
// checkpoint: the batch being processed while the processor works on it,
// else the last batch it finished (see Returned); SHARD_END once the shard
// has ended. With nothing finished yet it rewrites the current checkpoint,
// which still proves the lease is held.
func (c *Checkpointer) Checkpoint(ctx context.Context) error {
	c.mu.Lock()
	pos := c.finished
	if c.inBatch {
		pos = c.delivered
	}
	switch {
	case c.shardEnded:
		pos = ShardEnd
	case pos.IsZero():
		pos = c.last
	case pos.Compare(c.last) < 0:
		// Delivered is behind the checkpoint the shard started from (a
		// restart inside an aggregated record): nothing new to record.
		pos = c.last
	}
	c.mu.Unlock()
	return c.write(ctx, "checkpoint", pos, nil, false)
}

// CheckpointAt records pos as the checkpoint. pos must be a record that was
// delivered and not before the last checkpoint; SHARD_END is accepted only
// after ShardEnded.
func (c *Checkpointer) CheckpointAt(ctx context.Context, pos Position) error {
	return c.write(ctx, "checkpoint", pos, nil, false)
}

// PrepareCheckpoint records pos and state as the pending checkpoint (KCL's
// prepareCheckpoint), under the same rules as CheckpointAt. A later
// CheckpointAt(pos) commits it; on restart the processor finds it in the
// lease and can recover its state.
func (c *Checkpointer) PrepareCheckpoint(ctx context.Context, pos Position, state []byte) error {
	return c.write(ctx, "prepare", pos, state, true)
}

func (c *Checkpointer) write(ctx context.Context, op string, pos Position, state []byte, prepare bool) error {
	fail := func(err error) error { return &Error{Op: op, ShardID: c.shardID, Position: pos, Err: err} }

	c.writeMu.Lock()
	defer c.writeMu.Unlock()

	c.mu.Lock()
	err := c.checkLocked(pos)
	c.mu.Unlock()
	if err != nil {
		return fail(err)
	}

	if prepare {
		err = c.w.WritePendingCheckpoint(ctx, c.shardID, pos, state)
	} else {
		err = c.w.WriteCheckpoint(ctx, c.shardID, pos)
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		if errors.Is(err, ErrLeaseLost) {
			c.lost = true
		}
		return fail(err)
	}
	if prepare {
		p := pos
		c.pending = &p
	} else {
		c.last = pos
		c.pending = nil
	}
	return nil
}

// checkLocked applies the refusal rules; c.mu must be held.
func (c *Checkpointer) checkLocked(pos Position) error {
	switch {
	case c.closed:
		return ErrShutdown
	case c.lost:
		return ErrLeaseLost
	}
	if err := pos.Validate(); err != nil {
		return err
	}
	if pos.IsSentinel() {
		if pos.Sentinel != SentinelShardEnd {
			// Rewriting the sentinel the shard started from is allowed
			// (Checkpoint with nothing delivered); any other sentinel is
			// not a place a processor can have reached.
			if pos == c.last {
				return nil
			}
			return fmt.Errorf("%w: %s is not a record position", ErrInvalidPosition, pos)
		}
		// A shard whose checkpoint already is SHARD_END has ended too.
		if !c.shardEnded && c.last.Sentinel != SentinelShardEnd {
			return ErrNotAtShardEnd
		}
		return nil
	}
	if pos.Compare(c.last) < 0 {
		return fmt.Errorf("%w: last checkpoint is %s", ErrPositionBackwards, c.last)
	}
	if pos.Compare(c.last) == 0 {
		return nil // rewriting the current checkpoint is always allowed
	}
	if c.delivered.IsZero() || pos.Compare(c.delivered) > 0 {
		return fmt.Errorf("%w: last delivered is %s", ErrBeyondDelivered, c.delivered)
	}
	return nil
}
