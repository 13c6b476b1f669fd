package consumer_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/consumer"
	"github.com/shardflow/shardflow/kinesistest"
)

// Workers joining a running one, and leaving gracefully, move leases by
// graceful handoff: every batch in flight is finished and checkpointed by
// its owner before the next one starts, so nothing is processed twice.
// Each batch takes a while between being processed and checkpointed, so a
// lease taken outright (KCL 2.x's steal) would redeliver records.
func TestE2EJoinAndLeaveRedeliverNothing(t *testing.T) {
	ctx := e2eContext(t)
	n := recordCount(e2eRecords) / 4
	srv := kinesistest.New(kinesistest.Options{})
	h := newHarness(t, srv, srv, e2eShards, n)
	h.fail = func(string, int, []consumer.Record) error {
		time.Sleep(20 * time.Millisecond) // the batch in flight
		return nil
	}
	// The graceful path needs no expiry, and the assertions below (nothing
	// processed twice, no lease lost) hold only while no worker's renewals
	// stall for a failover time. So a failover time no stall of a loaded
	// machine reaches, with renewals (and so noticing a mark) and take
	// passes as frequent as before. It costs the joiners one failover time
	// of watching the table before they ask for leases.
	mod := func(c *consumer.Config) {
		c.FailoverTime = 30 * time.Second
		c.Lease.RenewInterval = 300 * time.Millisecond
		c.LeaseTakeInterval = time.Second
		c.LeaseExpiryScanInterval = 200 * time.Millisecond
	}
	w0 := h.start("w0", mod)
	h.produce(ctx, n/4)
	require.NoError(t, h.tr.waitUnique(ctx, n/8))
	w1, w2 := h.start("w1", mod), h.start("w2", mod)
	moved := func(ids ...string) func() bool {
		return func() bool {
			per := map[string]int{}
			for _, o := range h.owners() {
				per[o]++
			}
			for _, id := range ids {
				if per[id] == 0 {
					return false
				}
			}
			return true
		}
	}
	// Leases reach the joiners while records flow (about a hundred records
	// a second, so the failover time of watching stays within n/4).
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !moved("w1", "w2")() {
		h.produce(ctx, 5)
		<-tick.C
	}
	h.produce(ctx, n/4)
	// w0 leaves gracefully while the others run.
	require.NoError(t, w0.c.Shutdown(ctx))
	require.NoError(t, <-w0.done)
	w0.done <- nil
	h.produce(ctx, n/4)
	dups := h.finish(ctx, w1, w2)
	require.Zero(t, dups, "no record processed twice")
	require.Zero(t, h.leaseLost.Load(), "no lease was lost: all moved by handoff or release")
}
