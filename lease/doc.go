// Package lease shares a stream's shards among a fleet of workers through a
// KCL-compatible DynamoDB lease table, so shardflow and KCL for Java can
// share a table and a fleet can move between them keeping its checkpoints.
//
// A Store holds the leases (DynamoStore on DynamoDB, MemoryStore in
// memory; both have the same semantics). Every write is conditional on the
// lease's fencing counter and owner. A Coordinator per worker renews the
// leases it holds, takes unowned and expired ones, balances against the
// rest of the fleet (by load or by count), and reports every Acquired, Lost and
// HandoffRequested lease on Events. It implements checkpoint.Writer, so a worker that lost a lease
// cannot write a checkpoint for it.
//
// Compared with KCL: a worker below its fair share takes (or steals) all it
// needs in one pass instead of one lease per 20 s; ReleaseAll hands leases
// over at once on a clean shutdown instead of after the failover time; an
// expiry scan between balancing passes moves a dead worker's leases within
// FailoverTime plus one TakeInterval; TakeNow takes leases created between
// passes (a finished shard's children) at once; a child lease is taken only
// once all its parents' leases are finished (so the worker that finishes the
// last parent gets it); workers starting together split unowned leases
// without stealing (Config.InitialTakeDelay); a worker steals only after
// watching the table for more than FailoverTime, so a joining worker takes
// a crashed worker's leases as they expire instead of stealing from live
// workers; StopTaking (a worker shutting down) ends taking for good.
//
// Graceful handoff (as KCL 3.x, but leaderless): a worker that wants a
// lease a live worker holds does not steal it. It marks it (Store.MarkHandoff:
// leaseOwner = itself, checkpointOwner = the holder, the counter unchanged,
// as KCL 3.x's initiateGracefulLeaseHandoff writes it). The holder sees the
// mark at its next write (a renewal at the latest) and gets
// HandoffRequested; it finishes the batch in flight, checkpoints and calls
// Release, which completes the handoff (a fenced Take for the new owner,
// removing checkpointOwner). The new owner polls the lease every
// HandoffPollInterval and starts from that checkpoint, so nothing is
// processed twice and never by two workers at once. If the holder has not
// handed over HandoffTimeout (30 s, KCL's default) after the mark, the new
// owner takes the lease; if the holder dies, the lease expires as usual. A
// wanter that stops withdraws its request (Store.CancelHandoff). Every
// write is conditional on counter, leaseOwner and checkpointOwner, so a
// holder learns of the mark from the failed condition, and every change of
// hands but the mark itself moves the counter.
//
// Balancing by load (Config.Balance, the default): each holder measures
// the bytes/s of its leases (RecordProcessed) and writes them with its
// renewals as KCL 3.x's throughputKBps; a worker asks the most loaded
// workers for the lease that evens the pair out best, and only when the
// move narrows their spread by LoadHysteresis of the mean load, so leases
// do not bounce. Moves use the graceful handoff. BalanceByCount keeps KCL
// 2.x's count balancing; by load falls back to it while no throughput has
// been measured.
//
// Shard sync (SyncShards, CreateChildLeases) and the cleanup of finished
// leases (DeleteFinished) are functions on a Store, so the consumer never
// writes lease rows itself. SyncShardsFrom decides from the coordinator's
// last scan (Coordinator.LastScan) while that shows no lease missing, so
// the periodic shard sync costs no read of the table.
//
// Table cost: every worker scans the whole table (expiry is judged from
// counters it has seen, on its own clock, which is what makes the design
// leaderless), so reads are what grows with the fleet. Config.ScanScaling
// stretches the scan intervals by √(W/3) above 3 workers, so the fleet's
// scans grow with √W, and reads one lease per peer between scans so that
// a dead worker is still noticed a FailoverTime after the scan before its
// death, where that costs fewer DynamoDB read units than the fixed
// intervals (a probe is a read unit per item, a scan one per 4 KiB of
// items: large tables) and a probe fits between the stretched scans (with
// KCL's timings, from 6 workers up); on small tables, and at 4 and 5
// workers, it keeps the fixed intervals (figures on Config.ScanScaling). KCL 3.x's owner index
// (LeaseOwnerToLeaseKeyIndex) is created with new tables and answers
// ListOwned where it exists and the client implements DynamoDBQueryAPI
// (*dynamodb.Client does; DynamoDBAPI itself has no Query, so mocks of it
// written before the index keep compiling and scan). It replaces no
// scheduled scan of the coordinator, whose expiry decisions need every
// lease's counter, which the index (keys only) does not carry; it replaces
// the scan a probe would run when it finds a worker suspect (dead, or
// handing a lease over), where that costs fewer read units: the
// coordinator then reads only that worker's leases (ListOwned, then a
// consistent Get of each) and takes the expired ones by the same rules and
// fencing as a scan; at most once between scans, and not for a worker
// that holds nothing any more. A GetItem costs a read unit per item and a
// Scan one per 4 KiB of items, so that pays in large tables and with large
// lease items, not on a few dozen small ones (figures on
// Config.ScanScaling).
//
// Tolerated in a shared table: a leaseOwner written as "" or NULL means
// unowned (possible only in a table without the owner index, which
// rejects such writes), and DynamoStore.List skips (and logs) items it
// cannot read instead of failing the scan.
//
// The smallest use:
//
//	store, _ := lease.NewDynamoStore(ctx, dynamodb.NewFromConfig(awsCfg), "my-app")
//	coord, _ := lease.NewCoordinator(store, lease.Config{WorkerID: "host-1"})
//	go coord.Run(ctx)
//	for ev := range coord.Events() {
//		switch ev.Type {
//		case lease.Acquired: // start the shard; checkpoint through ev.Writer
//		case lease.Lost:     // stop the shard
//		case lease.HandoffRequested: // finish the batch, checkpoint, then coord.Release(ctx, ev.Lease.Key)
//		}
//	}
//
// On shutdown: stop the processors (final checkpoints), call ReleaseAll,
// then cancel Run's context.
//
// Multi-stream tables (KCL's multi-stream mode): a lease with StreamID set
// is keyed MultiStreamKey(StreamID, ShardID) =
// "account:stream:creationEpoch:shardId" and carries KCL's streamName (the
// serialized StreamIdentifier) and shardId attributes; parentShardId and
// childShardIds stay bare shard ids, and ParentKeys/ChildKeys map them to
// lease keys within the stream, which is how the coordinator, SyncShards
// and DeleteFinished find a shard's lineage. Single-stream leases are
// unchanged (the key is the shard id). The coordinator is not aware of
// streams otherwise: its bounds and balancing span the whole table.
//
// # Errors
//
// DynamoStore's errors read "lease: table T: op: ..." and wrap the SDK's
// error, so errors.As finds DynamoDB's typed errors (for instance
// *types.ProvisionedThroughputExceededException from
// github.com/aws/aws-sdk-go-v2/service/dynamodb/types). Two causes have
// sentinels of their own, since they call for an operator rather than a
// retry: ErrTableNotFound (the table is missing: errors.As with
// *types.ResourceNotFoundException matches too) and ErrStoreUnreachable
// (no response from the endpoint, after the SDK's retries).
//
// # Metrics
//
// Config.Metrics takes any value and calls the Hook interfaces it
// implements, resolved once at construction (no type assertion per
// call). New metrics arrive as new optional Hook interfaces, never as
// new methods on an existing one: an implementation keeps compiling
// across releases and receives the hooks in its own method set (a wrapper
// embedding the Metrics interface, or hooks with pointer receivers passed
// by value, receive nothing; the constructor warns when a Metrics
// implements no hook; see Metrics). The nested modules metrics/prommetrics,
// metrics/otelmetrics and metrics/emfmetrics implement every hook.
package lease
