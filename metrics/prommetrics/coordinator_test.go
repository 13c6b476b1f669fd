package prommetrics

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/shardflow/shardflow/checkpoint"
	"github.com/shardflow/shardflow/lease"
	"github.com/stretchr/testify/require"
)

// observed forwards to the adapter and tells the test about each pass.
type observed struct {
	m     *Lease
	renew chan lease.RenewStats
	take  chan lease.TakeStats
}

func (o observed) RenewPass(s lease.RenewStats) {
	o.m.RenewPass(s)
	select {
	case o.renew <- s:
	default:
	}
}

func (o observed) TakePass(s lease.TakeStats) {
	o.m.TakePass(s)
	select {
	case o.take <- s:
	default:
	}
}

// The lease adapter on a real Coordinator: one worker takes a table of
// three leases in its first pass, then renews them.
func TestLeaseOnCoordinator(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	store := lease.NewMemoryStore()
	for i := range 3 {
		_, err := store.Create(ctx, lease.Lease{Key: fmt.Sprintf("shardId-%012d", i), Checkpoint: checkpoint.TrimHorizon})
		require.NoError(t, err)
	}
	reg := prometheus.NewPedanticRegistry()
	lm, err := NewLease(reg, "orders-app")
	require.NoError(t, err)
	obs := observed{m: lm, renew: make(chan lease.RenewStats, 16), take: make(chan lease.TakeStats, 16)}
	coord, err := lease.NewCoordinator(store, lease.Config{
		WorkerID: "w1",
		// A long failover time so that no lease can expire while the test
		// waits; frequent renewals so that it does not wait long.
		FailoverTime:     10 * time.Second,
		RenewInterval:    50 * time.Millisecond,
		InitialTakeDelay: -1,
		Metrics:          obs,
		Logger:           slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- coord.Run(ctx) }()
	go func() {
		for range coord.Events() {
		}
	}()

	for s := range obs.take {
		if s.Held == 3 {
			break
		}
	}
	for s := range obs.renew {
		if s.Held == 3 {
			break
		}
	}
	cancel()
	require.NoError(t, <-done)

	require.Equal(t, 3.0, testutil.ToFloat64(lm.taken))
	require.Equal(t, 0.0, testutil.ToFloat64(lm.stolen))
	require.Equal(t, 1.0, testutil.ToFloat64(lm.workers))
	require.Equal(t, 3.0, testutil.ToFloat64(lm.target))
	require.Equal(t, 3.0, testutil.ToFloat64(lm.tableLeases))
	require.GreaterOrEqual(t, testutil.ToFloat64(lm.renewed)+testutil.ToFloat64(lm.renewSkipped), 3.0)
	require.Positive(t, histogramOf(t, reg, "shardflow_lease_take_duration_seconds", map[string]string{lPass: "balance"}).GetSampleCount())
	require.Positive(t, histogramOf(t, reg, "shardflow_lease_renew_duration_seconds", nil).GetSampleCount())
	requireLintClean(t, reg)
}
