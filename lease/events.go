package lease

import (
	"context"
	"slices"
	"sync"
)

// EventType says what happened to a lease.
type EventType int

const (
	// Acquired: this worker now holds the lease; start processing its shard.
	Acquired EventType = iota + 1
	// Lost: this worker no longer holds the lease (taken, expired locally,
	// fenced on a checkpoint, released or handed over); stop processing
	// its shard.
	Lost
	// HandoffRequested: another worker asked for the lease (graceful
	// handoff). Finish the batch in flight, checkpoint, then call
	// Coordinator.Release, which hands the lease to that worker; it starts
	// from that checkpoint. The lease stays held (and renewed) until then.
	HandoffRequested
)

// String returns "Acquired" or "Lost".
func (t EventType) String() string {
	switch t {
	case Acquired:
		return "Acquired"
	case Lost:
		return "Lost"
	case HandoffRequested:
		return "HandoffRequested"
	}
	return "EventType(?)"
}

// Event reports a change in the leases this worker holds.
type Event struct {
	// Type says whether the lease was acquired or lost.
	Type EventType
	// Lease is the lease as held when acquired, or as last held when lost.
	Lease Lease
	// Err says why a lease was lost (a *ConflictError, ErrExpiredLocally,
	// ErrReleased, ...); nil for Acquired.
	Err error
	// Writer, on Acquired, is a checkpoint.Writer bound to this acquisition:
	// it fails with ErrLeaseLost once this acquisition ends, even if the
	// worker later re-acquires the same lease. Prefer it over the
	// Coordinator itself when creating a checkpoint.Checkpointer.
	Writer *LeaseWriter

	held *heldLease
}

// eventQueue decouples the coordinator from the consumer: pushes never
// block, and a Lost removes the undelivered Acquired and HandoffRequested
// of its acquisition (and itself, if the Acquired was undelivered), so the
// queue holds at most three events per lease (a Lost of an old
// acquisition, an Acquired of a new one and its HandoffRequested).
type eventQueue struct {
	mu     sync.Mutex
	q      []Event
	wake   chan struct{}
	out    chan Event
	closed bool
}

func newEventQueue() *eventQueue {
	return &eventQueue{wake: make(chan struct{}, 1), out: make(chan Event)}
}

func (e *eventQueue) push(ev Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	if ev.Type == Lost {
		// An acquisition never seen by the reader: drop its events, and
		// the Lost too.
		cancelled := false
		e.q = slices.DeleteFunc(e.q, func(x Event) bool {
			if x.held != ev.held {
				return false
			}
			cancelled = cancelled || x.Type == Acquired
			return x.Type == Acquired || x.Type == HandoffRequested
		})
		if cancelled {
			return
		}
	}
	e.q = append(e.q, ev)
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// run delivers queued events until ctx ends, then closes the channel.
func (e *eventQueue) run(ctx context.Context) error {
	defer func() {
		e.mu.Lock()
		e.closed, e.q = true, nil
		e.mu.Unlock()
		close(e.out)
	}()
	for {
		// Pop before sending: once popped, an Acquired counts as delivered,
		// so a later Lost for it is queued rather than cancelling it.
		e.mu.Lock()
		var ev Event
		have := len(e.q) > 0
		if have {
			ev = e.q[0]
			e.q = e.q[1:]
		}
		e.mu.Unlock()
		if !have {
			select {
			case <-ctx.Done():
				return nil
			case <-e.wake:
				continue
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case e.out <- ev:
		}
	}
}
