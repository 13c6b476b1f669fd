package consumer

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestByteBudgetBoundsPrefetch(t *testing.T) {
	b := newByteBudget(100)
	ctx := context.Background()
	require.NoError(t, b.acquire(ctx, 60))
	require.NoError(t, b.acquire(ctx, 40))
	got := make(chan error, 1)
	go func() { got <- b.acquire(ctx, 10) }()
	select {
	case err := <-got:
		t.Fatalf("acquired beyond the bound: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	b.release(60)
	require.NoError(t, <-got)

	// A batch larger than the bound passes alone, so progress never stalls.
	b2 := newByteBudget(10)
	require.NoError(t, b2.acquire(ctx, 1000))
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	require.ErrorIs(t, b2.acquire(cctx, 1), context.Canceled)
}

func TestRetrierBacksOffExponentiallyWithJitter(t *testing.T) {
	r := retrier{b: Backoff{Initial: 100 * time.Millisecond, Max: time.Second}}
	for i, want := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		d := r.next()
		want *= time.Millisecond
		// Full jitter (internal/backoff): anywhere in (0, want].
		require.LessOrEqual(t, d, want, "attempt %d", i)
		require.Positive(t, d, "attempt %d", i)
	}
	r.reset()
	require.LessOrEqual(t, r.next(), 100*time.Millisecond)
}
