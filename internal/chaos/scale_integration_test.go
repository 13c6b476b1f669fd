//go:build integration

package chaos_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/shardflow/shardflow/internal/chaos"
	"github.com/shardflow/shardflow/internal/itest"
	"github.com/shardflow/shardflow/lease"
	"github.com/shardflow/shardflow/producer"
)

// TestChaosScaleGraceful scales a fleet of real worker processes from 3 to
// 5 and back, again and again, one worker joining or leaving gracefully
// every few seconds while the producer writes, with no crash. Leases move
// only by graceful handoff (to joiners) and release (from leavers), so the
// journals must show every record processed exactly once and never two
// workers processing one shard at once.
func TestChaosScaleGraceful(t *testing.T) {
	produceFor, every := 36*time.Second, 3*time.Second
	if itest.Soak() {
		produceFor = 4 * time.Minute
	}
	kinesisEP, dynamoEP := itest.Endpoint(t, itest.Kinesalite), itest.Endpoint(t, itest.Dynalite)
	kc := itest.Kinesis(t, itest.Kinesalite)
	ddb := itest.DynamoDB(t)
	ctx, cancel := context.WithCancel(context.Background())
	if dl, ok := t.Deadline(); ok {
		ctx, cancel = context.WithDeadline(context.Background(), dl.Add(-45*time.Second))
	}
	defer cancel()

	stream, table := itest.Name("scale"), itest.Name("scale-leases")
	itest.CreateStream(t, kc, stream, 6)
	store, err := lease.NewDynamoStore(ctx, ddb, table)
	require.NoError(t, err)
	// The graceful moves need no expiry; the assertions (0 redeliveries, 0
	// overlaps) hold only while no worker's renewals stall for
	// FailoverTime - RenewInterval, which a loaded 2-core machine reaches
	// at a few seconds. So FailoverTime is 20 s with renewals every
	// second (a 19 s stall tolerated), and the take and expiry scans run
	// every 2 s and 1 s so that released leases move at once and joiners,
	// which watch the table for a failover time before they ask for
	// leases, ask within the run.
	const failover = 20 * time.Second
	fleet := chaos.NewFleet(t, chaos.WorkerConfig{
		KinesisEndpoint: kinesisEP, DynamoDBEndpoint: dynamoEP, Stream: stream, Table: table,
		FailoverTime:  failover,
		RenewInterval: time.Second, TakeInterval: 2 * time.Second, ExpiryScanInterval: time.Second,
		BatchWork: 100 * time.Millisecond, // a batch in flight whenever a lease moves
	})
	slots := []string{"w0", "w1", "w2", "w3", "w4"}
	for _, s := range slots[:3] {
		_, err := fleet.Start(s)
		require.NoError(t, err)
	}
	p, err := producer.New(kc, stream, producer.Config{OrderedByPartitionKey: true, RecordTTL: 5 * time.Minute})
	require.NoError(t, err)

	var puts []put
	stop := make(chan struct{})
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return produceLoop(ctx, gctx, p, 48, 250, stop, &puts) })
	joins, leaves := 0, 0
	g.Go(func() error { // the scaler: 3 -> 4 -> 5 -> 4 -> 3 -> 4 ..., oldest leaves first
		defer close(stop)
		end := time.Now().Add(produceFor)
		up := true
		var order []string // running slots, oldest first
		order = append(order, slots[:3]...)
		for time.Now().Before(end) {
			if err := pause(gctx, every); err != nil {
				return err
			}
			n := len(order)
			switch {
			case n == 5:
				up = false
			case n == 3:
				up = true
			}
			if up {
				for _, s := range slots {
					if !contains(order, s) {
						if _, err := fleet.Start(s); err != nil {
							return err
						}
						order = append(order, s)
						joins++
						break
					}
				}
				continue
			}
			if err := fleet.Stop(gctx, order[0]); err != nil {
				return fmt.Errorf("graceful leave: %w", err)
			}
			order = order[1:]
			leaves++
		}
		return nil
	})
	require.NoError(t, g.Wait())
	produced := results(ctx, t, p, puts)
	t.Logf("%d joins, %d graceful leaves", joins, leaves)
	rep := finishRun(ctx, t, fleet, store, kc, stream, produced, failover)
	dups := 0
	for _, n := range rep.Duplicates {
		dups += n
	}
	require.Zero(t, dups, "no record redelivered")
	require.Zero(t, rep.Overlaps, "never two workers on one shard at once")
	require.Positive(t, joins)
	require.Positive(t, leaves)
}

func contains(s []string, x string) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}
