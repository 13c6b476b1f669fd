package consumer_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/clock"
	"github.com/shardflow/shardflow/consumer"
	"github.com/shardflow/shardflow/kinesistest"
	"github.com/shardflow/shardflow/lease"
)

// releaseHooks records which shards were released and which lost.
type releaseHooks struct {
	mu             sync.Mutex
	released, lost []string
}

func (h *releaseHooks) ShardReleased(key string) {
	h.mu.Lock()
	h.released = append(h.released, key)
	h.mu.Unlock()
}

func (h *releaseHooks) LeaseLost(key string) {
	h.mu.Lock()
	h.lost = append(h.lost, key)
	h.mu.Unlock()
}

func (h *releaseHooks) get() (released, lost []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.released...), append([]string(nil), h.lost...)
}

var (
	_ consumer.HookShardReleased = (*releaseHooks)(nil)
	_ consumer.HookLeaseLost     = (*releaseHooks)(nil)
)

// Shutdown stops every pipeline without a loss: each shard is released
// (HookShardReleased), none lost, so an adapter drops its per-shard series.
func TestShutdownReleasesEveryShard(t *testing.T) {
	srv := kinesistest.New(kinesistest.Options{})
	srv.MustCreateStream("s", 2)
	clk := clock.NewFake(time.Unix(1_800_000_000, 0))
	hooks := &releaseHooks{}
	c, err := consumer.New(srv, lease.NewMemoryStore(), consumer.ProcessRecord(func(context.Context, string, consumer.Record) error { return nil }), consumer.Config{
		ApplicationName: "app", StreamName: "s", WorkerID: "w",
		InitialPosition:       consumer.InitialPosition{Type: consumer.TrimHorizon},
		IdleTimeBetweenReads:  consumer.MinIdleTimeBetweenReads,
		LeaseInitialTakeDelay: -1,
		Clock:                 clk,
		Metrics:               hooks,
		Logger:                testLogger(t),
	})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- c.Run(context.Background()) }()
	for c.Status().Leases < 2 {
		clk.Advance(100 * time.Millisecond)
		time.Sleep(time.Millisecond)
	}
	released, _ := hooks.get()
	require.Empty(t, released, "nothing released while processing")
	shut := make(chan error, 1)
	go func() { shut <- c.Shutdown(context.Background()) }()
	for len(shut) == 0 {
		clk.Advance(100 * time.Millisecond)
		time.Sleep(time.Millisecond)
	}
	require.NoError(t, <-shut)
	require.NoError(t, <-done)
	released, lost := hooks.get()
	require.ElementsMatch(t, srv.ShardIDs("s"), released)
	require.Empty(t, lost)
}
