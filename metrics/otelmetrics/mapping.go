package otelmetrics

import (
	"go.opentelemetry.io/otel/attribute"
)

// This file is the whole mapping from KPL/KCL metrics to OpenTelemetry
// instruments: names, units, descriptions, attributes and bucket
// boundaries. producer.go, consumer.go and lease.go only record into them.
// Names follow OpenTelemetry's conventions: dotted, lower case, the unit in
// the unit field (s, By, {record}) rather than in the name, durations in
// seconds as float64 histograms.
//
// Attributes are kept bounded: the stream (aws.kinesis.stream_name, the
// semantic-convention key) or the application for the lease coordinator,
// the shard where KPL/KCL have a ShardId dimension, error.type for Kinesis
// error codes (capped, see maxCodes), the failure reason (five sentinels
// and "other") and the take pass kind. Nothing is keyed by partition key,
// worker id or sequence number. Histograms carry only the stream.

// scope is the instrumentation scope name.
const scope = "github.com/shardflow/shardflow/metrics/otelmetrics"

// Attribute keys.
const (
	keyStream = attribute.Key("aws.kinesis.stream_name")
	keyShard  = attribute.Key("shardflow.shard_id")
	keyCode   = attribute.Key("error.type")
	keyReason = attribute.Key("shardflow.failure_reason")
	keyApp    = attribute.Key("shardflow.application")
	keyPass   = attribute.Key("shardflow.lease.pass")
)

// spec describes one instrument.
type spec struct{ name, unit, desc string }

// Producer instruments (KPL metrics).
var (
	pReceived          = spec{"shardflow.producer.user_records.received", "{record}", "User records accepted by Put (KPL UserRecordsReceived)."}
	pReceivedSize      = spec{"shardflow.producer.user_records.received.size", "By", "Data bytes of the user records accepted by Put."}
	pPending           = spec{"shardflow.producer.user_records.pending", "{record}", "User records with no outcome yet, buffered or in flight (KPL UserRecordsPending)."}
	pPendingSize       = spec{"shardflow.producer.user_records.pending.size", "By", "Data bytes of the user records with no outcome yet."}
	pUserPut           = spec{"shardflow.producer.user_records.put", "{record}", "User records put (KPL UserRecordsPut)."}
	pUserPutSize       = spec{"shardflow.producer.user_records.put.size", "By", "Data bytes of the user records put (KPL UserRecordsDataPut)."}
	pKinesisPut        = spec{"shardflow.producer.kinesis_records.put", "{record}", "Kinesis records put, each carrying one or more user records (KPL KinesisRecordsPut)."}
	pKinesisPutSize    = spec{"shardflow.producer.kinesis_records.put.size", "By", "Bytes of the Kinesis records put (KPL KinesisRecordsDataPut)."}
	pUserPerKinesis    = spec{"shardflow.producer.user_records_per_kinesis_record", "{record}", "User records aggregated into one Kinesis record (KPL UserRecordsPerKinesisRecord)."}
	pFailed            = spec{"shardflow.producer.user_records.failed", "{record}", "User records that failed for good, by reason (KPL AllErrors on user records)."}
	pExpired           = spec{"shardflow.producer.user_records.expired", "{record}", "User records that passed RecordTTL (KPL UserRecordExpired)."}
	pBufferingTime     = spec{"shardflow.producer.buffering_time", "s", "Time from Put to the first send of a user record (KPL BufferingTime)."}
	pRetries           = spec{"shardflow.producer.retries_per_record", "{retry}", "Retries of a user record at its outcome (KPL RetriesPerRecord)."}
	pRequestTime       = spec{"shardflow.producer.request.duration", "s", "Duration of PutRecords calls (KPL RequestTime)."}
	pKinesisPerRequest = spec{"shardflow.producer.kinesis_records_per_request", "{record}", "Kinesis records in one PutRecords call (KPL KinesisRecordsPerPutRecordsRequest)."}
	pErrorsByCode      = spec{"shardflow.producer.errors", "{record}", "Kinesis records that failed an attempt, by error code (KPL ErrorsByCode; sum for KPL AllErrors)."}
)

// Consumer instruments (KCL ProcessTask and worker metrics).
var (
	cProcessed         = spec{"shardflow.consumer.records.processed", "{record}", "Records delivered to successful ProcessRecords calls (KCL RecordsProcessed)."}
	cProcessedSize     = spec{"shardflow.consumer.records.processed.size", "By", "Data bytes of the records processed (KCL DataBytesProcessed)."}
	cProcessTime       = spec{"shardflow.consumer.process_records.duration", "s", "Duration of successful ProcessRecords calls (KCL RecordProcessor.processRecords.Time)."}
	cBehindLatest      = spec{"shardflow.consumer.behind_latest", "s", "How far the last fetched batch is behind the tip of its shard (KCL MillisBehindLatest); absent once the lease is lost."}
	cProcessorError    = spec{"shardflow.consumer.processor.errors", "{call}", "Failed or panicking processor calls (retried, never skipped)."}
	cOutOfRange        = spec{"shardflow.consumer.out_of_range_records", "{record}", "Sub-records whose hash key lies outside their shard's range (delivered anyway; KCL drops them)."}
	cThrottles         = spec{"shardflow.consumer.read.throttles", "{call}", "Throttled Kinesis reads (GetRecords or SubscribeToShard)."}
	cRetentionRestarts = spec{"shardflow.consumer.retention_restarts", "{restart}", "Restarts at TRIM_HORIZON because the checkpoint was older than the stream's retention (records lost; logged at Error)."}
	cExpiredIters      = spec{"shardflow.consumer.iterators.expired", "{iterator}", "ExpiredIteratorException recoveries (KCL ExpiredIterator)."}
	cLeasesHeld        = spec{"shardflow.consumer.leases.held", "{lease}", "Shards this worker processes (KCL CurrentLeases)."}
	cLeasesTaken       = spec{"shardflow.consumer.leases.taken", "{lease}", "Leases this worker acquired (KCL TakenLeases)."}
	cLeasesLost        = spec{"shardflow.consumer.leases.lost", "{lease}", "Leases lost to another worker, expiry or a fenced write; not those handed back (KCL LostLeases)."}
)

// Lease coordinator instruments (KCL RenewAllLeases and TakeLeases).
var (
	lRenewTime    = spec{"shardflow.lease.renew.duration", "s", "Duration of renewal passes (KCL RenewAllLeases Time)."}
	lRenewed      = spec{"shardflow.lease.renewed", "{lease}", "Leases renewed (KCL RenewLease.Success)."}
	lRenewSkipped = spec{"shardflow.lease.renew.skipped", "{lease}", "Renewals skipped because a recent checkpoint already advanced the lease counter."}
	lLost         = spec{"shardflow.lease.lost", "{lease}", "Leases lost in renewal passes (KCL LostLeases)."}
	lRenewFailed  = spec{"shardflow.lease.renew.failures", "{lease}", "Renewal writes that failed; the lease is kept and retried."}
	lHeld         = spec{"shardflow.lease.held", "{lease}", "Leases held after the last pass (KCL CurrentLeases)."}
	lTakeTime     = spec{"shardflow.lease.take.duration", "s", "Duration of take passes, balance, expiry_scan or targeted (KCL TakeLeases Time)."}
	lScanErrors   = spec{"shardflow.lease.take.scan_errors", "{pass}", "Take passes whose lease table scan (targeted: owner index read) failed."}
	lTaken        = spec{"shardflow.lease.taken", "{lease}", "Unowned or expired leases taken (KCL TakenLeases, with shardflow.lease.stolen)."}
	lStolen       = spec{"shardflow.lease.stolen", "{lease}", "Leases stolen from a worker above its share."}
	lTakeFailed   = spec{"shardflow.lease.take.failures", "{lease}", "Takes that failed, mostly another worker winning the race."}
	lWorkers      = spec{"shardflow.lease.workers", "{worker}", "Live workers seen in the last successful scan (KCL NumWorkers)."}
	lTarget       = spec{"shardflow.lease.target", "{lease}", "This worker's fair share of leases (KCL NeededLeases)."}
	lTableLeases  = spec{"shardflow.lease.table.leases", "{lease}", "Leases in the table at the last successful scan (KCL TotalLeases)."}
)

// Histogram bucket boundaries.
var (
	secondsBuckets   = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	retryBuckets     = []float64{0, 1, 2, 3, 5, 10, 20, 50}
	perRecordBuckets = []float64{1, 2, 5, 10, 25, 50, 100, 250, 500, 1000}
	perRequestBucket = []float64{1, 5, 10, 25, 50, 100, 250, 500}
)
