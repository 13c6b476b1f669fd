package lease

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestEventQueueNeverBlocksAndStaysBounded(t *testing.T) {
	q := newEventQueue()
	a, b := &heldLease{lease: Lease{Key: "a"}}, &heldLease{lease: Lease{Key: "b"}}
	// Nobody reads: pushes still return at once.
	for range 1000 {
		q.push(Event{Type: Acquired, Lease: a.lease, held: a})
		q.push(Event{Type: Lost, Lease: a.lease, held: a})
	}
	require.Empty(t, q.q, "an undelivered Acquired is cancelled by its Lost")
	q.push(Event{Type: Acquired, Lease: b.lease, held: b})

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- q.run(ctx) }()
	ev := <-q.out
	require.Equal(t, Acquired, ev.Type)
	// Delivered, so its Lost is delivered too.
	q.push(Event{Type: Lost, Lease: b.lease, held: b})
	ev = <-q.out // not delivered would hang: reported by -timeout
	require.Equal(t, Lost, ev.Type)
	cancel()
	require.NoError(t, <-done)
	_, ok := <-q.out
	require.False(t, ok, "closed when Run ends")
	q.push(Event{Type: Acquired, held: a}) // after close: dropped, no panic
}

// A Lost drops its acquisition's undelivered HandoffRequested (the reader
// must not hand over a lease it no longer holds, nor a later acquisition's),
// and only a Lost whose Acquired was undelivered is dropped itself.
func TestEventQueueLostCancelsHandoffRequest(t *testing.T) {
	q := newEventQueue()
	a, b := &heldLease{lease: Lease{Key: "k"}}, &heldLease{lease: Lease{Key: "k"}}
	q.push(Event{Type: Acquired, Lease: a.lease, held: a})
	q.push(Event{Type: HandoffRequested, Lease: a.lease, held: a})
	q.push(Event{Type: Lost, Lease: a.lease, held: a})
	require.Empty(t, q.q)

	q.push(Event{Type: HandoffRequested, Lease: b.lease, held: b}) // its Acquired already delivered
	q.push(Event{Type: Lost, Lease: b.lease, held: b})
	require.Len(t, q.q, 1)
	require.Equal(t, Lost, q.q[0].Type)
	require.Equal(t, "HandoffRequested", HandoffRequested.String())
}
