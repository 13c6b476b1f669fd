// Package metricnames is the one table of shardflow's Prometheus metrics:
// names, help, labels and buckets, following Prometheus conventions
// (snake_case, base units: seconds and bytes, counters end in _total). The
// Prometheus adapter (metrics/prommetrics, a nested module: the internal
// path is under its import path) builds its collectors from it, and so
// does the standard-library exporter the examples use
// (examples/internal/promexport), so the two cannot drift apart.
//
// Labels, kept bounded on purpose: stream (or application for the lease
// coordinator), shard where KPL/KCL have a ShardId dimension, code for
// Kinesis error codes (capped, see Codes), reason for the five producer
// failure sentinels, pass for the two kinds of take pass. Nothing is
// labelled by partition key, worker id or sequence number. Histograms
// carry only the stream: their buckets would multiply by the shard count,
// and the per-shard rates are in the counters.
package metricnames

import (
	"errors"
	"sync"

	"github.com/shardflow/shardflow/producer"
)

// Namespace prefixes every name.
const Namespace = "shardflow"

// Label names.
const (
	Stream = "stream"
	Shard  = "shard"
	Code   = "code"
	Reason = "reason"
	App    = "application"
	Pass   = "pass"
)

// Kind is a metric's Prometheus type.
type Kind int

const (
	Counter Kind = iota
	Gauge
	Histogram
)

// String is the type as the text exposition format's # TYPE line names it.
func (k Kind) String() string {
	switch k {
	case Counter:
		return "counter"
	case Gauge:
		return "gauge"
	}
	return "histogram"
}

// Def defines one metric.
type Def struct {
	Kind      Kind
	Subsystem string // producer, consumer, lease
	Name      string // within the subsystem
	Help      string
	Labels    []string
	Buckets   []float64 // histograms only
}

// FullName is the exposed name: namespace_subsystem_name.
func (d Def) FullName() string { return Namespace + "_" + d.Subsystem + "_" + d.Name }

// Buckets.
var (
	SecondsBuckets   = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	RetryBuckets     = []float64{0, 1, 2, 3, 5, 10, 20, 50}
	PerRecordBuckets = []float64{1, 2, 5, 10, 25, 50, 100, 250, 500, 1000}
	PerRequestBucket = []float64{1, 5, 10, 25, 50, 100, 250, 500}
)

func counter(sub, name, help string, labels ...string) Def {
	return Def{Kind: Counter, Subsystem: sub, Name: name, Help: help, Labels: labels}
}

func gauge(sub, name, help string, labels ...string) Def {
	return Def{Kind: Gauge, Subsystem: sub, Name: name, Help: help, Labels: labels}
}

func histogram(sub, name, help string, buckets []float64, labels ...string) Def {
	return Def{Kind: Histogram, Subsystem: sub, Name: name, Help: help, Labels: labels, Buckets: buckets}
}

// The KPL's metrics (producer.Metrics hooks).
var (
	ProducerReceived          = counter("producer", "user_records_received_total", "User records accepted by Put (KPL UserRecordsReceived).", Stream)
	ProducerReceivedBytes     = counter("producer", "user_records_received_bytes_total", "Data bytes of the user records accepted by Put.", Stream)
	ProducerPending           = gauge("producer", "user_records_pending", "User records with no outcome yet, buffered or in flight (KPL UserRecordsPending).", Stream)
	ProducerPendingBytes      = gauge("producer", "user_records_pending_bytes", "Data bytes of the user records with no outcome yet.", Stream)
	ProducerUserPut           = counter("producer", "user_records_put_total", "User records put (KPL UserRecordsPut).", Stream, Shard)
	ProducerUserPutBytes      = counter("producer", "user_records_data_put_bytes_total", "Data bytes of the user records put (KPL UserRecordsDataPut).", Stream, Shard)
	ProducerKinesisPut        = counter("producer", "kinesis_records_put_total", "Kinesis records put, each carrying one or more user records (KPL KinesisRecordsPut).", Stream, Shard)
	ProducerKinesisPutBytes   = counter("producer", "kinesis_records_data_put_bytes_total", "Bytes of the Kinesis records put (KPL KinesisRecordsDataPut).", Stream, Shard)
	ProducerUserPerKinesis    = histogram("producer", "user_records_per_kinesis_record", "User records aggregated into one Kinesis record (KPL UserRecordsPerKinesisRecord).", PerRecordBuckets, Stream)
	ProducerFailed            = counter("producer", "user_records_failed_total", "User records that failed for good, by reason (expired, throttled, rejected, canceled, closed, other).", Stream, Shard, Reason)
	ProducerExpired           = counter("producer", "user_records_expired_total", "User records that passed RecordTTL (KPL UserRecordExpired).", Stream, Shard)
	ProducerBufferingTime     = histogram("producer", "buffering_time_seconds", "Time from Put to the first send of a user record (KPL BufferingTime).", SecondsBuckets, Stream)
	ProducerRetries           = histogram("producer", "retries_per_record", "Retries of a user record at its outcome (KPL RetriesPerRecord).", RetryBuckets, Stream)
	ProducerRequestTime       = histogram("producer", "request_time_seconds", "Duration of PutRecords calls (KPL RequestTime).", SecondsBuckets, Stream)
	ProducerKinesisPerRequest = histogram("producer", "kinesis_records_per_put_records_request", "Kinesis records in one PutRecords call (KPL KinesisRecordsPerPutRecordsRequest).", PerRequestBucket, Stream)
	ProducerErrorsByCode      = counter("producer", "errors_by_code_total", "Kinesis records that failed an attempt, by error code (KPL ErrorsByCode; sum for KPL AllErrors).", Stream, Shard, Code)
)

// KCL's ProcessTask and worker metrics (consumer.Metrics hooks).
var (
	ConsumerProcessed         = counter("consumer", "records_processed_total", "Records delivered to successful ProcessRecords calls (KCL RecordsProcessed).", Stream, Shard)
	ConsumerProcessedBytes    = counter("consumer", "processed_bytes_total", "Data bytes of the records processed (KCL DataBytesProcessed).", Stream, Shard)
	ConsumerProcessTime       = histogram("consumer", "process_records_duration_seconds", "Duration of successful ProcessRecords calls (KCL RecordProcessor.processRecords.Time).", SecondsBuckets, Stream)
	ConsumerBehindLatest      = gauge("consumer", "behind_latest_seconds", "How far the last fetched batch is behind the tip of its shard (KCL MillisBehindLatest); removed when this worker stops processing the shard (lease lost, handed over, shard ended, shut down).", Stream, Shard)
	ConsumerProcessorErrors   = counter("consumer", "processor_errors_total", "Failed or panicking processor calls (retried, never skipped).", Stream, Shard)
	ConsumerOutOfRange        = counter("consumer", "out_of_range_records_total", "Sub-records whose hash key lies outside their shard's range (delivered anyway; KCL drops them).", Stream, Shard)
	ConsumerThrottles         = counter("consumer", "read_throttles_total", "Throttled Kinesis reads (GetRecords or SubscribeToShard).", Stream, Shard)
	ConsumerExpiredIterators  = counter("consumer", "expired_iterators_total", "ExpiredIteratorException recoveries (KCL ExpiredIterator).", Stream, Shard)
	ConsumerRetentionRestarts = counter("consumer", "retention_restarts_total", "Restarts at TRIM_HORIZON because the checkpoint was older than the stream's retention (records lost; logged at Error).", Stream, Shard)
	ConsumerLeasesHeld        = gauge("consumer", "current_leases", "Shards this worker processes (KCL CurrentLeases).", Stream)
	ConsumerLeasesTaken       = counter("consumer", "leases_taken_total", "Leases this worker acquired (KCL TakenLeases).", Stream)
	ConsumerLeasesLost        = counter("consumer", "leases_lost_total", "Leases lost to another worker, expiry or a fenced write; not those handed back (KCL LostLeases).", Stream)
)

// KCL's RenewAllLeases and TakeLeases metrics (lease.Metrics hooks).
var (
	LeaseRenewTime    = histogram("lease", "renew_duration_seconds", "Duration of renewal passes (KCL RenewAllLeases Time).", SecondsBuckets, App)
	LeaseRenewed      = counter("lease", "renewed_total", "Leases renewed (KCL RenewLease.Success).", App)
	LeaseRenewSkipped = counter("lease", "renew_skipped_total", "Renewals skipped because a recent checkpoint already advanced the lease counter.", App)
	LeaseLost         = counter("lease", "lost_total", "Leases lost in renewal passes (KCL LostLeases).", App)
	LeaseRenewErrors  = counter("lease", "renew_failures_total", "Renewal writes that failed; the lease is kept and retried.", App)
	LeaseHeld         = gauge("lease", "current_leases", "Leases held after the last pass (KCL CurrentLeases).", App)
	LeaseTakeTime     = histogram("lease", "take_duration_seconds", "Duration of take passes, balance, expiry_scan or targeted (KCL TakeLeases Time).", SecondsBuckets, App, Pass)
	LeaseScanErrors   = counter("lease", "take_scan_errors_total", "Take passes whose lease table scan (targeted: owner index read) failed.", App, Pass)
	LeaseTaken        = counter("lease", "taken_total", "Unowned or expired leases taken (KCL TakenLeases, with stolen_total).", App)
	LeaseStolen       = counter("lease", "stolen_total", "Leases stolen from a worker above its share.", App)
	LeaseTakeErrors   = counter("lease", "take_failures_total", "Takes that failed, mostly another worker winning the race.", App)
	LeaseWorkers      = gauge("lease", "workers", "Live workers seen in the last successful scan (KCL NumWorkers).", App)
	LeaseTarget       = gauge("lease", "target_leases", "This worker's fair share of leases (KCL NeededLeases).", App)
	LeaseTableLeases  = gauge("lease", "table_leases", "Leases in the table at the last successful scan (KCL TotalLeases).", App)
)

// Pass label values.
const (
	PassBalance    = "balance"
	PassExpiryScan = "expiry_scan"
	PassTargeted   = "targeted" // a suspect worker's leases read through the owner index, no scan
)

// failureReasons label UserRecordsFailed by the producer's sentinel errors,
// in order; anything else is "other".
var failureReasons = []struct {
	err   error
	label string
}{
	{producer.ErrRecordExpired, "expired"},
	{producer.ErrThrottled, "throttled"},
	{producer.ErrRejected, "rejected"},
	{producer.ErrCanceled, "canceled"},
	{producer.ErrClosed, "closed"},
}

// FailureReason is the reason label of a failed record's error.
func FailureReason(err error) string {
	for _, r := range failureReasons {
		if errors.Is(err, r.err) {
			return r.label
		}
	}
	return "other"
}

// MaxCodes caps the distinct values of the code label per producer.
// Kinesis has a couple of dozen error codes; a proxy or a future API
// returning free-form codes must not grow the series count without bound.
const MaxCodes = 64

// OverflowCode replaces codes beyond MaxCodes.
const OverflowCode = "other"

// Codes admits the first MaxCodes distinct codes; the zero value is ready.
type Codes struct {
	mu   sync.Mutex
	seen map[string]struct{}
}

// Label is code, or OverflowCode once MaxCodes other codes were seen.
func (s *Codes) Label(code string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.seen[code]; ok {
		return code
	}
	if len(s.seen) >= MaxCodes {
		return OverflowCode
	}
	if s.seen == nil {
		s.seen = make(map[string]struct{})
	}
	s.seen[code] = struct{}{}
	return code
}

// All returns every definition, producer's, consumer's and lease's.
func All() []Def {
	return []Def{
		ProducerReceived, ProducerReceivedBytes, ProducerPending, ProducerPendingBytes,
		ProducerUserPut, ProducerUserPutBytes, ProducerKinesisPut, ProducerKinesisPutBytes,
		ProducerUserPerKinesis, ProducerFailed, ProducerExpired, ProducerBufferingTime,
		ProducerRetries, ProducerRequestTime, ProducerKinesisPerRequest, ProducerErrorsByCode,
		ConsumerProcessed, ConsumerProcessedBytes, ConsumerProcessTime, ConsumerBehindLatest,
		ConsumerProcessorErrors, ConsumerOutOfRange, ConsumerThrottles, ConsumerExpiredIterators,
		ConsumerRetentionRestarts, ConsumerLeasesHeld, ConsumerLeasesTaken, ConsumerLeasesLost,
		LeaseRenewTime, LeaseRenewed, LeaseRenewSkipped, LeaseLost, LeaseRenewErrors, LeaseHeld,
		LeaseTakeTime, LeaseScanErrors, LeaseTaken, LeaseStolen, LeaseTakeErrors, LeaseWorkers,
		LeaseTarget, LeaseTableLeases,
	}
}
