// Package consumer is shardflow's equivalent of the Kinesis Client Library:
// a worker that processes every shard of a stream, in order per shard and at
// least once, sharing the shards with the other workers of the application
// through a KCL-compatible lease table.
//
// Each worker holds some shard leases (package lease balances them) and
// runs one pipeline per held shard: GetRecords polling with bounded
// prefetch (or enhanced fan-out with SubscribeToShard), KPL deaggregation,
// and a RecordProcessor that checkpoints through a checkpoint.Checkpointer.
// Resharding is followed: a child shard starts only after all its parents
// checkpointed SHARD_END; no worker takes a child's lease before that, and
// the worker that finishes the last parent takes it at once (up to its fair
// share; beyond it, another worker's next scan does) instead of at its next
// take pass. Enhanced fan-out subscriptions are renewed from the last
// continuation sequence number 30 s before the service's 5-minute limit,
// and a deregistered fan-out consumer is registered again. A failing or
// panicking processor is retried with backoff, never skipped, and
// Checkpoint() without a position never covers a batch that failed (see
// ProcessRecordsInput.Checkpointer), so a shutdown or hand-over while a
// batch fails leaves it to be delivered again. Shutdown hands the leases
// over at once; lease loss stops a shard immediately and calls LeaseLost.
//
// A ResourceNotFoundException while reading a shard ends it only when
// ListShards confirms the shard is closed (or gone); for an open shard it
// is logged at Error and retried with backoff. A checkpoint older than the
// stream's retention, which the service refuses, restarts the shard at
// TRIM_HORIZON as KCL does: the records in between are lost, logged at
// Error with their range and counted in Metrics.RetentionRestart. A child
// whose parent's lease item cannot be read (lease.ErrUnreadable) is not
// taken, and is reported at Error, until the item is fixed. A finished
// parent's lease is deleted only once every child has checkpointed past
// its starting position (KCL's cleanup rule).
//
// Delivery is at least once: a record is delivered again only after a
// crash (from the crashed worker's last checkpoint on), a processor that
// failed after its last checkpoint, or a graceful handoff that did not
// complete within Lease.HandoffTimeout. Leases that move for balance move
// by graceful handoff (KCL 3.x's): the worker that wants a lease marks it,
// the holder's pipeline finishes the batch in flight, calls
// ShutdownRequested (the processor checkpoints) and hands the lease over,
// and the new owner starts from that checkpoint; nothing is delivered twice
// and no shard is processed by two workers at once. Workers started
// together on unowned leases each take one lease first and their share
// LeaseInitialTakeDelay later. A lone worker waits that delay too: on a
// table where no lease is held it cannot tell itself from one of a fleet
// started together (see lease.Config.InitialTakeDelay), so a
// single-worker service or a test sets LeaseInitialTakeDelay -1 to start
// every shard at once. A worker joining a running fleet first
// takes only unowned and expired leases, and asks for leases of live
// workers only after watching the lease table for a full FailoverTime
// (before that a crashed worker's leases look alive). A worker shutting
// down takes no leases, withdraws its pending handoff requests, hands over
// the leases asked of it and releases the rest (all after their final
// checkpoints), even when Shutdown's context is already done.
// A shard not checkpointed yet resumes from its initial position: with
// LATEST (as in KCL) a lease that moves before the first checkpoint
// resumes at the then-latest record, skipping what the old owner fetched
// but did not checkpoint, so checkpoint the first batches early.
//
// Multi-stream mode (Config.Streams, KCL's MultiStreamTracker): one
// consumer reads every stream a user function returns, re-evaluated every
// StreamSyncInterval, with one lease table in KCL's multi-stream layout
// (see package lease). Streams that appear get leases at once; a stream
// that disappears keeps its leases for FormerStreamsDeleteAfter (0: for
// good) and is then deleted, unless it came back; that policy alone
// deletes leases (a failed lookup of an orphan's stream only hands the
// lease back). A stream recreated under its name is a new stream, since
// its identifier holds the creation epoch. Each stream has its own
// initial position and enhanced fan-out consumer; every processor input
// carries its StreamRef, logs a "stream" attribute, and Metrics get the
// lease key. MaxLeasesForWorker and balancing span all streams, since the
// coordinator sees one table. MaxPrefetchBytes stays a per-shard bound.
//
// Errors: a stream that does not exist (Kinesis's
// ResourceNotFoundException) is handled by mode. With StreamName or
// StreamARN, Run fails at start-up with an error matching
// ErrStreamNotFound (other DescribeStreamSummary errors are retried). With
// Streams, Run does not fail: a listed stream that does not exist is
// logged at Error ("stream sync incomplete", its error matching
// ErrStreamNotFound), the other streams are consumed, and it is tried again
// at the next stream sync (StreamSyncInterval), so a stream created later
// is picked up then; a lease whose stream no longer exists is handed back,
// and deleted only by FormerStreamsDeleteAfter. The errors of a DynamoDB
// lease store match
// lease.ErrTableNotFound or lease.ErrStoreUnreachable where that is the
// cause. errors.As finds the SDK's error behind each
// (*types.ResourceNotFoundException of the kinesis or dynamodb types
// package). The lease table is Config.TableName (default
// ApplicationName); New refuses a store on another table.
//
// The smallest use, one function per record:
//
//	store, _ := lease.NewDynamoStore(ctx, dynamodbClient, "my-app")
//	c, err := consumer.New(kinesisClient, store,
//		consumer.ProcessRecord(func(ctx context.Context, shardID string, r consumer.Record) error {
//			fmt.Printf("%s %s\n", r.PartitionKey, r.Data)
//			return nil
//		}),
//		consumer.Config{ApplicationName: "my-app", StreamName: "my-stream"})
//	...
//	go c.Run(ctx)
//	...
//	c.Shutdown(ctx) // on SIGTERM: checkpoint, release leases, stop
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
//
// # Status
//
// Status reports each held shard's state, checkpoint, lag and last
// fetch and processing times, and since when the lease store or the stream
// has been failing; Status.Healthy says whether either has been failing
// for longer than Config.UnhealthyAfter (examples/health serves it as
// readiness and liveness endpoints).
package consumer
