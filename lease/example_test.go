package lease_test

import (
	"context"
	"fmt"

	"github.com/shardflow/shardflow/checkpoint"
	"github.com/shardflow/shardflow/lease"
)

func ExampleCoordinator() {
	ctx, cancel := context.WithCancel(context.Background())
	store := lease.NewMemoryStore() // lease.NewDynamoStore in production
	for _, shard := range []string{"shardId-000000000000", "shardId-000000000001"} {
		_, _ = store.Create(ctx, lease.Lease{Key: shard, Checkpoint: checkpoint.TrimHorizon})
	}
	// A lone worker: no start-up wait for others (InitialTakeDelay -1), so
	// it takes both leases at once. FailoverTime keeps KCL's 10 s default.
	coord, err := lease.NewCoordinator(store, lease.Config{WorkerID: "worker-1", InitialTakeDelay: -1})
	if err != nil {
		panic(err)
	}
	done := make(chan error)
	go func() { done <- coord.Run(ctx) }()

	for range 2 {
		ev := <-coord.Events()
		// Start processing the shard; its processor checkpoints through a
		// Checkpointer bound to this acquisition.
		cp := checkpoint.NewCheckpointer(ev.Lease.Key, ev.Writer, ev.Lease.Checkpoint)
		cp.Delivered(checkpoint.At("49590338271490256608559692538361571095921575989136588898", 0))
		if err := cp.Checkpoint(ctx); err != nil {
			panic(err)
		}
	}
	fmt.Println("held:", len(coord.Held()))

	// Clean shutdown: hand the leases over, then stop.
	if err := coord.ReleaseAll(ctx); err != nil {
		panic(err)
	}
	cancel()
	<-done
	l, _ := store.Get(context.Background(), "shardId-000000000000")
	fmt.Printf("owner %q checkpoint %s\n", l.Owner, l.Checkpoint)
	// Output:
	// held: 2
	// owner "" checkpoint 49590338271490256608559692538361571095921575989136588898
}
