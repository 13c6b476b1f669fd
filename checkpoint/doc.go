// Package checkpoint holds the position a consumer has reached in a shard and
// the Checkpointer that record processors call to persist it.
//
// A Position is a KCL-compatible checkpoint: a sequence number plus a
// sub-sequence number (the user record inside a KPL-aggregated record), or
// one of the sentinels TRIM_HORIZON, LATEST, AT_TIMESTAMP and SHARD_END.
//
// A Checkpointer refuses positions that go backwards, that lie beyond the
// last record handed to the processor, and SHARD_END before the shard has
// ended. Writes go through a Writer (lease.Coordinator in production) that
// makes each write conditional on the lease still being held, so a worker
// that lost its lease cannot record progress even before it notices:
//
//	cp := checkpoint.NewCheckpointer("shardId-000000000000", coordinator, checkpoint.TrimHorizon)
//	cp.Delivered(checkpoint.At("49590338271490256608559692538361571095921575989136588898", 0))
//	if err := cp.Checkpoint(ctx); errors.Is(err, checkpoint.ErrLeaseLost) {
//		// stop processing this shard
//	}
package checkpoint
