// Package producer is a KPL-class Kinesis producer: Put returns at once,
// records are aggregated (KPL format) per predicted shard, collected into
// PutRecords calls, rate limited per shard, retried and reported back one
// outcome per record.
//
//	p, err := producer.New(kinesisClient, "my-stream", producer.Config{})
//	f, err := p.Put(ctx, "user-42", payload)   // buffered; f.Wait(ctx) for the Result
//	err = p.Close(ctx)                          // flushes and waits for every outcome
//
// # Outcomes
//
// Every record accepted by Put gets exactly one outcome, through its
// Future (Done, Wait, Result) and the optional callback of PutRecord: the
// shard and sequence number Kinesis assigned, every attempt (time,
// duration, error code and message), or a *RecordError matching one of
// ErrRecordExpired, ErrThrottled (FailIfThrottled), ErrRejected
// (validation, access denied, stream not found, KMS key unusable: never
// retried), ErrCanceled (Put's context ended while the record was unsent or waiting
// for a retry: with attempts in its Result, an earlier one that timed out
// may still have stored it) or
// ErrClosed (Close's context ended first). Bad input fails Put itself with
// an error matching ErrInvalidRecord and enqueues nothing. Match input
// errors with errors.Is (errors.Is(err, producer.ErrPartitionKeyTooLong)),
// never with ==: for a key too long, a record too large, a bad explicit
// hash key or a key that is not UTF-8, Put returns a new value that says
// the offending size or value ("partition key is 300 UTF-16 code units,
// over 256") and matches its sentinel (ErrPartitionKeyTooLong,
// ErrRecordTooLarge, ErrInvalidExplicitHashKey, ErrPartitionKeyNotUTF8)
// and ErrInvalidRecord, so err == sentinel is false.
// Records that travelled in one Kinesis record and got the same outcome
// may share one *Result: read it, do not modify it.
//
// A record rejected because the stream does not exist also matches
// ErrStreamNotFound, and errors.As finds the SDK's error behind any
// outcome (*types.ResourceNotFoundException, *types.AccessDeniedException,
// ... from github.com/aws/aws-sdk-go-v2/service/kinesis/types). New does
// not block; to fail at start-up on a missing stream or missing
// permissions, call CheckStream:
//
//	p, err := producer.New(kinesisClient, "my-stream", producer.Config{})
//	...
//	if err := p.CheckStream(ctx); err != nil { // errors.Is(err, producer.ErrStreamNotFound)
//		p.Close(ctx)
//		return err
//	}
//
// A PutRecords call that fails as a whole (network error, timeout,
// throttling, 5xx) is retried for all its records; a partially failed call
// is retried for the failed entries only. Retries back off exponentially
// with full jitter per shard, so a throttled shard slows down alone.
// Delivery is at least once: a call whose response was lost (timeout,
// connection reset after the service applied it) is retried and may store
// records twice; the Result names the copy of the successful attempt.
//
// # Ordering
//
// Default mode: records are sent in Put order per predicted shard, but
// several calls may be in flight for one shard and a failed record is
// retried after later records may have succeeded, so records with the
// same partition key can be stored out of Put order after a retry, as
// with the KPL.
//
// Config.OrderedByPartitionKey: records with the same partition key and
// explicit hash key, put from one goroutine (so Put order is defined), are
// stored in Put order, also across retries and shard map changes, unless a
// record fails for good (its successors still go) or a record is stored
// twice (a lost response, or a re-send after a split, see below): the
// extra copy may sit out of order.
// This holds because at most one PutRecords call per shard is in flight,
// a call carries at most one aggregate per shard (without aggregation, at
// most one record per partition key), retries go to the front of the
// shard's queue, and after the shard map changes nothing is sent until
// calls built with the old map have finished and their aggregates held
// for a shard check (stored on a shard the map does not know) are
// settled or re-sent. Throughput per shard is then
// one aggregate (AggregationMaxSize) per round trip.
//
// # Shard map and resharding
//
// The producer predicts each record's shard from ListShards (MD5 of the
// partition key, or the explicit hash key, against the open shards' hash
// ranges) and aggregates per predicted shard; the carrier record's explicit
// hash key is the shard's starting hash key. The map is re-read every
// ShardMapRefreshInterval, when a result shows a record stored on another
// shard than predicted, and when a record's hash key falls in no known
// shard. On a change, queued records of shards that left the map are
// re-routed in order, and retried records are routed by the current map.
//
// An aggregate sent just before a split lands on one child shard and may
// carry records whose hash keys belong to the other. As in the KPL, those
// records are sent again to their own shard (their Attempts show
// "WrongShard"), because the KCL drops sub-records outside its shard's
// range; the stored copy outside its range is a duplicate that shardflow's
// consumer delivers. Set AcceptMisroutedAggregates to skip the re-send when
// every consumer is shardflow's. While an aggregate's shard is not in the
// map yet, its shard's queue waits for the refreshed map, so the records
// are checked against the real ranges instead of being re-sent blindly.
// The shard and sequence number in a Result always name a copy on the
// record's own shard, unless AcceptMisroutedAggregates is set.
//
// # Defaults (KPL's where the KPL has the setting)
//
// AggregationMaxSize 51,200 B; AggregationMaxCount 4,294,967,295;
// CollectionMaxCount 500; CollectionMaxSize 5 MiB; RecordMaxBufferedTime
// 100 ms; RecordTTL 30 s; RequestTimeout 6 s; RateLimit 150 %;
// MaxConnections 24; MaxBufferedRecords 1,000,000; MaxBufferedBytes
// 256 MiB (charged as under Memory); retry backoff 100 ms doubling to 5 s; shard map refresh 60 s.
// One record (data plus partition key) is at most 1 MiB.
//
// # Memory
//
// MaxBufferedBytes bounds the memory the producer holds for records it
// has accepted and not finished with (buffered, in flight, being retried,
// or with a callback that has not returned). Each record is charged
//
//	charge = len(Data) + len(PartitionKey) + 544            without aggregation
//	charge = 2 x (len(Data) + len(PartitionKey)) + 544      with aggregation
//
// where 544 bytes is the bookkeeping per record (its Future, its slot and
// entries in its aggregate and key table, its request and queues, any
// context or callback it carries and, once it failed, its Result: about
// 180 bytes measured with aggregation and 470 without, where each record
// is a Kinesis record of its own, as live heap per record buffered against
// a stalled endpoint, plus a margin for the records whose outcome is known
// and whose callback has not run) and the second copy is the record
// inside its aggregate's blob. Put waits
// (or returns ErrBufferFull) while the charges outstanding would exceed
// MaxBufferedBytes or the records MaxBufferedRecords, so with 100-byte
// records and 16-byte keys MaxBufferedBytes 64 MiB holds about 86,000
// records and a stalled endpoint keeps the live heap within about
// MaxBufferedBytes + 16 MiB (see BenchmarkStalledEndpoint). A buffer with
// nothing outstanding takes any record, so one larger than the bound
// still goes. Puts take room without a lock, so concurrent Puts may pass
// MaxBufferedRecords by one record each (never MaxBufferedBytes, except
// through the empty-buffer rule). Outstanding reports the records and
// their charges. Aggregates kept for reuse count against
// MaxBufferedBytes too (their capacity, estimated, plus the data and keys
// of their last records, which their aggregator refers to until reused;
// they drop their records' Futures, contexts and callbacks when their
// outcomes are delivered), and a Put that finds no room drops them
// first; only a shard that is filling (the Put that sealed a full
// aggregate) reuses one, so their room is never held by a few records
// of a quiet shard without being charged. Outside the bound, and bounded on their own, are the key cache
// (at most about 1.8 MB), each connection's buffer of settled records (at
// most about 120 KB), each shard's block of Futures (1 KiB: the one not
// yet handed out, which also keeps the Results of up to 63 completed
// records alive until the block is full), and per shard at most one
// aggregate with room for more records than it holds: an aggregate that
// replaces one sealed full is made with room for as many records as the
// last full one took (at most 4,096, about 100 bytes each), counted only
// as records fill it, so that room is unused only if the shard's records
// stop coming (a shard that gets a record now and then gets small
// aggregates). What the user keeps is outside it too: a Future kept after
// its outcome keeps its whole block alive (1 KiB, and the Results of its
// 63 neighbours), and a Result's Attempts point into its PutRecords
// call's shared history (one Attempt per record of the call, up to 500
// of about 64 bytes), which stays alive while any Result refers to it.
//
// Every record gets its outcome by its RecordTTL, counted from the start
// of its batch (at most RecordMaxBufferedTime before its Put, so that Put
// reads no clock): a PutRecords call still in flight when the TTL of all
// its records has passed is canceled, and its records fail with
// ErrRecordExpired (such a call may have stored them); an aggregate held
// for a shard check is re-sent unchecked at its TTL, its expired records
// failing. A record's room is free by the time its Future is done (unless
// it has a callback), so a caller that waited for an outcome finds it.
//
// Callbacks run one at a time on a goroutine of their own, so a slow
// callback never stalls sending. A record whose outcome is known keeps
// its room (its bookkeeping, not its data) until its own callback has
// returned, so callbacks slower than the record rate make Put wait
// instead of letting that backlog grow. A callback may Put; when only
// callbacks returning can free room, a Put made by a callback is let in
// beyond the limits, since waiting would wait for itself.
//
// # Cost
//
// Put computes the MD5 of the partition key once per key while it stays
// in a bounded, lock-free cache (16,384 keys of up to 64 bytes; while
// keys rarely repeat, the cache is bypassed, and aggregates then share a
// partition key table entry only between records put back to back with
// the same key, saving a map look-up and insert per record: a key that
// repeats otherwise within an aggregate takes another entry, its length
// plus up to 3 bytes, up to 259 bytes for a 256-byte key, so the table
// no longer holds each key once; readers accept that, the KPL's and
// aws-kinesis-agg's included, and the bypass is decided from keys of up
// to 64 bytes, so long keys that repeat may cost that much), takes
// only its shard's lock (so Puts to different shards run in parallel)
// and takes a Future of 16 bytes from a block of 64 its shard allocates
// at once (the record itself is held in its aggregate until its outcome;
// a Future kept after its outcome keeps its block, 1 KiB, alive, with
// the Results of the block's other Futures;
// without aggregation each Future is allocated with room for its Result,
// 96 bytes); the aggregate's MD5 and
// encoding happen once per Kinesis record (in the Put whose record did
// not fit, while the aggregate is in its core's caches, outside the
// shard's lock; in the sending connection for an aggregate sealed at its
// deadline), each PutRecords call records
// one Attempt shared by all the records it carried, and the records of
// one Kinesis record that succeed together share one Result. BenchmarkFloor, beside BenchmarkProducer,
// is what any producer that predicts shards and aggregates must spend
// (its keys=distinct-unindexed, the same aggregation as the producer's
// for keys that rarely repeat).
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
// Status reports what is buffered and in flight, and each shard's backoff,
// for health endpoints and debugging.
package producer
