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
// from the other kinds, however far apart its attempts; a failure not
// repeated, or a kind no longer attempted, stops counting.
func TestFailureTracker(t *testing.T) {
	clk := clock.NewFake(time.Unix(1_800_000_000, 0))
	tr := newFailureTracker("stream", Config{Clock: clk, UnhealthyAfter: time.Minute}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx := context.Background()
	boom := errors.New("boom")
	t0 := clk.Now()

	tr.observe(ctx, "GetRecords", boom, false)
	clk.Advance(5 * time.Second)
	tr.observe(ctx, "GetRecords", boom, false)
	clk.Advance(5 * time.Second)
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

	// One failure, never repeated, is not an outage.
	t1 := clk.Now()
	tr.observe(ctx, "ListShards", boom, false)
	since, _ = tr.failing(clk.Now())
	require.True(t, since.IsZero(), "a failure not repeated is not an outage")
	// Repeated at ShardSyncInterval's default pace, wider than
	// UnhealthyAfter: failing since the first, until a success.
	clk.Advance(DefaultShardSyncInterval + time.Second)
	tr.observe(ctx, "ListShards", boom, false)
	since, _ = tr.failing(clk.Now())
	require.Equal(t, t1, since)
	// Not attempted again for longer than the stale time: no longer counts,
	// and failing again later starts a new episode.
	clk.Advance(tr.stale + time.Second)
	since, _ = tr.failing(clk.Now())
	require.True(t, since.IsZero(), "a kind no longer attempted no longer counts")
	t2 := clk.Now()
	tr.observe(ctx, "ListShards", boom, false)
	clk.Advance(time.Second)
	tr.observe(ctx, "ListShards", boom, false)
	since, _ = tr.failing(clk.Now())
	require.Equal(t, t2, since)

	// A call's own deadline passing is a failure: the dependency did not
	// answer in time.
	dctx, dcancel := context.WithDeadline(ctx, time.Unix(0, 0))
	tr.observe(dctx, "GetRecords", context.DeadlineExceeded, false)
	clk.Advance(time.Second)
	tr.observe(dctx, "GetRecords", context.DeadlineExceeded, false)
	dcancel()
	since, err = tr.failing(clk.Now())
	require.Equal(t, t2, since)
	tr.observe(ctx, "GetRecords", nil, true)

	// Once Run's context has ended, failures are the consumer stopping.
	rctx, rcancel := context.WithCancel(ctx)
	tr.runStarted(rctx)
	rcancel()
	tr.observe(ctx, "Renew", boom, false)
	tr.observe(ctx, "Renew", boom, false)
	tr.runStarted(ctx)

	// A call in flight for longer than UnhealthyAfter is failing since it
	// started; it stops counting when it returns.
	tr.observe(ctx, "ListShards", nil, true)
	t3 := clk.Now()
	c := tr.begin("List")
	clk.Advance(time.Minute)
	since, _ = tr.failing(clk.Now())
	require.True(t, since.IsZero(), "in flight for UnhealthyAfter, not longer")
	clk.Advance(time.Second)
	since, err = tr.failing(clk.Now())
	require.Equal(t, t3, since)
	require.ErrorIs(t, err, errNoAnswer)
	require.ErrorContains(t, err, "List")
	tr.end(ctx, c, nil, true)
	since, _ = tr.failing(clk.Now())
	require.True(t, since.IsZero())

	// A call whose own context ended says nothing.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	tr.observe(cctx, "Describe", context.Canceled, false)
	tr.observe(ctx, "ListShards", nil, true)
	since, _ = tr.failing(clk.Now())
	require.True(t, since.IsZero())
}
