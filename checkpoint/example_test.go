package checkpoint_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/shardflow/shardflow/checkpoint"
)

// memWriter stands in for lease.Coordinator.
type memWriter struct{ cp checkpoint.Position }

func (w *memWriter) WriteCheckpoint(_ context.Context, _ string, pos checkpoint.Position) error {
	w.cp = pos
	return nil
}

func (w *memWriter) WritePendingCheckpoint(context.Context, string, checkpoint.Position, []byte) error {
	return nil
}

func ExampleCheckpointer() {
	ctx := context.Background()
	w := &memWriter{}
	cp := checkpoint.NewCheckpointer("shardId-000000000000", w, checkpoint.TrimHorizon)

	// The consumer hands a batch to the processor...
	cp.Delivered(checkpoint.At("49590338271490256608559692538361571095921575989136588898", 0))
	// ...which checkpoints when its work is durable.
	if err := cp.Checkpoint(ctx); errors.Is(err, checkpoint.ErrLeaseLost) {
		return // another worker owns the shard now: stop
	}
	fmt.Println(w.cp)

	err := cp.CheckpointAt(ctx, checkpoint.At("1", 0))
	fmt.Println(errors.Is(err, checkpoint.ErrPositionBackwards))
	// Output:
	// 49590338271490256608559692538361571095921575989136588898
	// true
}
