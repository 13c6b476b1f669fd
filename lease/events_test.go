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
