// Package kinesistest is an in-memory Amazon Kinesis Data Streams for tests:
// streams with hash-ranged shards, MD5 routing, 56-digit sequence numbers,
// every shard iterator type, resharding (SplitShard, MergeShards,
// UpdateShardCount) with ChildShards at shard end, enhanced fan-out
// consumers, the service's validation errors as the SDK's typed errors,
// optional per-shard throughput limits and deterministic fault injection.
// Time comes from Options.Clock, so iterator expiry, limits and retention are
// tested without sleeping. The Server runs no goroutines.
//
// A *Server has the methods of *kinesis.Client with identical signatures, so
// it drops into any interface cut from the client (API lists them all):
//
//	srv := kinesistest.New(kinesistest.Options{})
//	srv.MustCreateStream("orders", 2)
//	_, err := srv.PutRecord(ctx, &kinesis.PutRecordInput{
//		StreamName:   aws.String("orders"),
//		PartitionKey: aws.String("customer-42"),
//		Data:         []byte("hello"),
//	})
//
// Calls on the Server go straight to the fake: there is no SDK middleware,
// so no retries and no client-side parameter validation, and optFns are
// ignored; serve it over HTTP (Handler) to put a real SDK client, retries
// included, in front of it.
//
// # Fault injection
//
// Every operation passes through the same gate before it touches any state,
// in this order:
//
//  1. the context: a cancelled ctx fails the call with ctx.Err();
//  2. latency (SetLatency): the call waits on Options.Clock, so with a fake
//     clock the test must Advance it; ctx cancellation ends the wait;
//  3. the hook (SetHook): may block (honouring ctx) or return an error;
//  4. queued failures (FailNext), consumed one per call;
//  5. throttling (Throttle), drawn at random.
//
// A call rejected by the gate has no effect. FailNextAfterApply instead lets
// the call take effect and then fails it, like a response lost on the way
// back (the classic cause of duplicate records). PutRecords entries can also
// fail individually (FailRecords) while the call succeeds. ResetFaults
// removes everything. Operations are named by the Op constants; rules for
// AnyOp apply to every operation, after the operation's own rules. Random
// draws come from one generator seeded by Options.Seed, so a test that calls
// from one goroutine sees the same faults on every run.
//
// A conformance suite runs the same tests against the fake and, under the
// integration build tag, against kinesalite and kinesis-mock.
//
// # Differences from AWS
//
//   - Control-plane changes are instant: streams are never CREATING,
//     UPDATING or DELETING, consumers are ACTIVE at once, and a reshard
//     completes within the call (AWS refuses further reshards while
//     UPDATING).
//   - Sequence numbers are 56 digits, increasing within a shard and larger in
//     children than in parents, but consecutive and laid out differently
//     from AWS's; nothing should parse them.
//   - GetRecords returns the nil NextShardIterator and ChildShards in the
//     same response as a closed shard's last records; AWS may return them in
//     a later, empty response. Consumers must handle both.
//   - MillisBehindLatest is the age of the oldest unread record (0 when
//     caught up), computed exactly.
//   - Limits are token buckets refilled continuously; a 10 MiB read blocks
//     the shard's reads for about 4 s (AWS: 5 s). ON_DEMAND streams get the
//     provisioned per-shard limits. Control-plane call rates are not
//     limited, except UpdateShardCount (10 per rolling 24 h), the account
//     shard quota (Options.ShardLimit) and 20 consumers per stream.
//   - Retention is fixed at 24 h: older records are skipped and closed
//     shards vanish 24 h after closing, but memory is not reclaimed.
//   - Tags, encryption (EncryptionType is always NONE), enhanced
//     monitoring, resource policies, retention changes, stream mode
//     changes and account settings are not implemented.
//   - Error types follow AWS; messages follow AWS's wording where known.
//     GetShardIterator AT_TIMESTAMP with a future time is refused with
//     InvalidArgumentException, as kinesalite does.
package kinesistest
