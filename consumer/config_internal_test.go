package consumer

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/kinesistest"
	"github.com/shardflow/shardflow/lease"
)

type leaseMetrics struct{ lease.NopMetrics }

// The lease configuration reaches the coordinator whole (issue 14: it used
// to drop RenewInterval and the lease metrics), and a setting given both
// as a shorthand and in Lease must agree.
func TestConfigCarriesLeaseConfigWhole(t *testing.T) {
	srv := kinesistest.New(kinesistest.Options{})
	factory := ProcessorFactoryFunc(func(string) RecordProcessor { return nil })
	m := &leaseMetrics{}
	c, err := New(srv, lease.NewMemoryStore(), factory, Config{
		ApplicationName: "app", StreamName: "s", WorkerID: "w1",
		FailoverTime: 6 * time.Second,
		Lease: lease.Config{
			RenewInterval:       time.Second,
			HandoffTimeout:      7 * time.Second,
			HandoffPollInterval: 100 * time.Millisecond,
			TakeInterval:        20 * time.Second,
			Metrics:             m,
		},
	})
	require.NoError(t, err)
	got := c.coord.Config()
	require.Equal(t, "w1", got.WorkerID)
	require.Equal(t, 6*time.Second, got.FailoverTime)
	require.Equal(t, time.Second, got.RenewInterval)
	require.Equal(t, 7*time.Second, got.HandoffTimeout)
	require.Equal(t, 100*time.Millisecond, got.HandoffPollInterval)
	require.Equal(t, 20*time.Second, got.TakeInterval)
	require.Same(t, m, got.Metrics)
	require.Equal(t, 20*time.Second, c.cfg.LeaseTakeInterval, "the shorthand reads the same")

	_, err = New(srv, lease.NewMemoryStore(), factory, Config{
		ApplicationName: "app", StreamName: "s",
		FailoverTime: 6 * time.Second, Lease: lease.Config{FailoverTime: 5 * time.Second},
	})
	require.ErrorIs(t, err, ErrInvalidConfig)
	require.ErrorContains(t, err, "FailoverTime")

	_, err = New(srv, lease.NewMemoryStore(), factory, Config{
		ApplicationName: "app", StreamName: "s", Lease: lease.Config{RenewInterval: time.Minute},
	})
	require.ErrorIs(t, err, ErrInvalidConfig, "the lease package's validation applies")
	require.ErrorContains(t, err, "RenewInterval")
}
