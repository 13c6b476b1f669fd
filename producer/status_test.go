package producer

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/kinesistest"
)

// Status reports the records held, the calls in flight and, per shard,
// what is queued, in flight and backing off.
func TestStatus(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, stream := newFake(t, 2, kinesistest.Options{})
		release := make(chan struct{})
		entered := make(chan struct{}, 100)
		srv.SetHook(func(ctx context.Context, op string) error {
			if op != kinesistest.OpPutRecords {
				return nil
			}
			entered <- struct{}{}
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		cfg := fastConfig()
		cfg.MaxConnections = 1
		cfg.RetryBackoffBase, cfg.RetryBackoffMax = time.Minute, time.Minute
		cfg.RecordTTL = time.Hour // the backoff must not expire the records
		p := newProducer(t, srv, stream, cfg)
		puts := putN(t, p, "st", 100)
		<-entered
		synctest.Wait()
		st := p.Status()
		require.Equal(t, 100, st.BufferedRecords)
		require.Positive(t, st.BufferedBytes)
		require.Equal(t, 1, st.InFlightCalls)
		require.False(t, st.Closed)
		require.Len(t, st.Shards, 2)
		require.Equal(t, "shardId-000000000000", st.Shards[0].ShardID)
		require.Equal(t, "shardId-000000000001", st.Shards[1].ShardID)
		inFlight := 0
		for _, s := range st.Shards {
			inFlight += s.InFlight
			require.Zero(t, s.Failures)
			require.True(t, s.BackoffUntil.IsZero())
		}
		require.Positive(t, inFlight)

		// Every call is throttled from now: each shard backs off.
		srv.SetHook(nil)
		srv.Throttle(kinesistest.OpPutRecords, 1)
		close(release)
		synctest.Wait()
		st = p.Status()
		require.Equal(t, 100, st.BufferedRecords, "retried, not failed")
		require.Zero(t, st.InFlightCalls)
		now := time.Now()
		backingOff := 0
		for _, s := range st.Shards {
			if s.Failures > 0 {
				backingOff++
				require.True(t, s.BackoffUntil.After(now), "%+v", s)
				require.Positive(t, s.Queued)
			}
		}
		require.Positive(t, backingOff, "%+v", st.Shards)

		srv.Throttle(kinesistest.OpPutRecords, 0)
		require.NoError(t, p.Flush(context.Background()))
		require.Empty(t, reconcile(t, srv, stream, puts, false))
		st = p.Status()
		require.Zero(t, st.BufferedRecords)
		for _, s := range st.Shards {
			require.Zero(t, s.Failures)
			require.Zero(t, s.Queued)
		}
	})
}
