package consumer

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/clock"
)

// A kind of call fails from its first failure to its next success, apart
// from the other kinds; a failure not repeated within the window stops
// counting.
func TestFailureTracker(t *testing.T) {
	clk := clock.NewFake(time.Unix(1_800_000_000, 0))
	tr := newFailureTracker("stream", Config{Clock: clk, UnhealthyAfter: time.Minute}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx := context.Background()
	boom := errors.New("boom")
	t0 := clk.Now()

	tr.observe(ctx, "GetRecords", boom, false)
	clk.Advance(10 * time.Second)
	tr.observe(ctx, "GetShardIterator", nil, true) // another kind works
	since, err := tr.failing(clk.Now())
	require.Equal(t, t0, since)
	require.ErrorIs(t, err, boom)
	require.ErrorContains(t, err, "GetRecords")

	// Repeated within the window: one episode, however long.
	for range 10 {
		clk.Advance(30 * time.Second)
		tr.observe(ctx, "GetRecords", boom, false)
	}
	since, _ = tr.failing(clk.Now())
	require.Equal(t, t0, since)

	tr.observe(ctx, "GetRecords", nil, true)
	since, err = tr.failing(clk.Now())
	require.True(t, since.IsZero())
	require.NoError(t, err)

	// One failure, never repeated: counts for the window only.
	t1 := clk.Now()
	tr.observe(ctx, "ListShards", boom, false)
	clk.Advance(time.Minute)
	since, _ = tr.failing(clk.Now())
	require.Equal(t, t1, since)
	clk.Advance(time.Second)
	since, _ = tr.failing(clk.Now())
	require.True(t, since.IsZero(), "a failure not repeated within UnhealthyAfter is not an outage")
	// Failing again later starts a new episode.
	tr.observe(ctx, "ListShards", boom, false)
	since, _ = tr.failing(clk.Now())
	require.Equal(t, clk.Now(), since)

	// A call whose own context ended says nothing.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	tr.observe(cctx, "Describe", context.Canceled, false)
	tr.observe(ctx, "ListShards", nil, true)
	since, _ = tr.failing(clk.Now())
	require.True(t, since.IsZero())
}
