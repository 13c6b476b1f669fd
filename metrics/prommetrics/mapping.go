package prommetrics

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shardflow/shardflow/producer"
)

// This file is the whole mapping from KPL/KCL metrics to Prometheus: names,
// help, labels and buckets. The methods in producer.go, consumer.go and
// lease.go only feed these collectors. Names follow Prometheus conventions
// (snake_case, base units: seconds and bytes, counters end in _total).
//
// Labels, kept bounded on purpose: stream (or application for the lease
// coordinator), shard where KPL/KCL have a ShardId dimension, code for
// Kinesis error codes (capped, see maxCodes), reason for the five producer
// failure sentinels, pass for the two kinds of take pass. Nothing is
// labelled by partition key, worker id or sequence number. Histograms carry
// only the stream: their buckets would multiply by the shard count, and the
// per-shard rates are in the counters.

const (
	namespace = "shardflow"

	lStream = "stream"
	lShard  = "shard"
	lCode   = "code"
	lReason = "reason"
	lApp    = "application"
	lPass   = "pass"
)

var (
	secondsBuckets   = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	retryBuckets     = []float64{0, 1, 2, 3, 5, 10, 20, 50}
	perRecordBuckets = []float64{1, 2, 5, 10, 25, 50, 100, 250, 500, 1000}
	perRequestBucket = []float64{1, 5, 10, 25, 50, 100, 250, 500}
)

// producerVecs are the KPL's metrics.
type producerVecs struct {
	received, receivedBytes        *prometheus.CounterVec
	pending, pendingBytes          *prometheus.GaugeVec
	userPut, userPutBytes          *prometheus.CounterVec
	kinesisPut, kinesisPutBytes    *prometheus.CounterVec
	userPerKinesis                 *prometheus.HistogramVec
	failed, expired                *prometheus.CounterVec
	bufferingTime, retries         *prometheus.HistogramVec
	requestTime, kinesisPerRequest *prometheus.HistogramVec
	errorsByCode                   *prometheus.CounterVec
}

func newProducerVecs() producerVecs {
	const sub = "producer"
	return producerVecs{
		received:          counter(sub, "user_records_received_total", "User records accepted by Put (KPL UserRecordsReceived).", lStream),
		receivedBytes:     counter(sub, "user_records_received_bytes_total", "Data bytes of the user records accepted by Put.", lStream),
		pending:           gauge(sub, "user_records_pending", "User records with no outcome yet, buffered or in flight (KPL UserRecordsPending).", lStream),
		pendingBytes:      gauge(sub, "user_records_pending_bytes", "Data bytes of the user records with no outcome yet.", lStream),
		userPut:           counter(sub, "user_records_put_total", "User records put (KPL UserRecordsPut).", lStream, lShard),
		userPutBytes:      counter(sub, "user_records_data_put_bytes_total", "Data bytes of the user records put (KPL UserRecordsDataPut).", lStream, lShard),
		kinesisPut:        counter(sub, "kinesis_records_put_total", "Kinesis records put, each carrying one or more user records (KPL KinesisRecordsPut).", lStream, lShard),
		kinesisPutBytes:   counter(sub, "kinesis_records_data_put_bytes_total", "Bytes of the Kinesis records put (KPL KinesisRecordsDataPut).", lStream, lShard),
		userPerKinesis:    histogram(sub, "user_records_per_kinesis_record", "User records aggregated into one Kinesis record (KPL UserRecordsPerKinesisRecord).", perRecordBuckets, lStream),
		failed:            counter(sub, "user_records_failed_total", "User records that failed for good, by reason (expired, throttled, rejected, canceled, closed, other).", lStream, lShard, lReason),
		expired:           counter(sub, "user_records_expired_total", "User records that passed RecordTTL (KPL UserRecordExpired).", lStream, lShard),
		bufferingTime:     histogram(sub, "buffering_time_seconds", "Time from Put to the first send of a user record (KPL BufferingTime).", secondsBuckets, lStream),
		retries:           histogram(sub, "retries_per_record", "Retries of a user record at its outcome (KPL RetriesPerRecord).", retryBuckets, lStream),
		requestTime:       histogram(sub, "request_time_seconds", "Duration of PutRecords calls (KPL RequestTime).", secondsBuckets, lStream),
		kinesisPerRequest: histogram(sub, "kinesis_records_per_put_records_request", "Kinesis records in one PutRecords call (KPL KinesisRecordsPerPutRecordsRequest).", perRequestBucket, lStream),
		errorsByCode:      counter(sub, "errors_by_code_total", "Kinesis records that failed an attempt, by error code (KPL ErrorsByCode; sum for KPL AllErrors).", lStream, lShard, lCode),
	}
}

func (v *producerVecs) register(reg prometheus.Registerer) error {
	r := registrar{reg: reg}
	use(&r, &v.received)
	use(&r, &v.receivedBytes)
	use(&r, &v.pending)
	use(&r, &v.pendingBytes)
	use(&r, &v.userPut)
	use(&r, &v.userPutBytes)
	use(&r, &v.kinesisPut)
	use(&r, &v.kinesisPutBytes)
	use(&r, &v.userPerKinesis)
	use(&r, &v.failed)
	use(&r, &v.expired)
	use(&r, &v.bufferingTime)
	use(&r, &v.retries)
	use(&r, &v.requestTime)
	use(&r, &v.kinesisPerRequest)
	use(&r, &v.errorsByCode)
	return r.err
}

// consumerVecs are KCL's ProcessTask and worker metrics.
type consumerVecs struct {
	processed, processedBytes *prometheus.CounterVec
	processTime               *prometheus.HistogramVec
	behindLatest              *prometheus.GaugeVec
	processorErrors           *prometheus.CounterVec
	outOfRange                *prometheus.CounterVec
	throttles, expiredIters   *prometheus.CounterVec
	retentionRestarts         *prometheus.CounterVec
	leasesHeld                *prometheus.GaugeVec
	leasesTaken, leasesLost   *prometheus.CounterVec
}

func newConsumerVecs() consumerVecs {
	const sub = "consumer"
	return consumerVecs{
		processed:         counter(sub, "records_processed_total", "Records delivered to successful ProcessRecords calls (KCL RecordsProcessed).", lStream, lShard),
		processedBytes:    counter(sub, "processed_bytes_total", "Data bytes of the records processed (KCL DataBytesProcessed).", lStream, lShard),
		processTime:       histogram(sub, "process_records_duration_seconds", "Duration of successful ProcessRecords calls (KCL RecordProcessor.processRecords.Time).", secondsBuckets, lStream),
		behindLatest:      gauge(sub, "behind_latest_seconds", "How far the last fetched batch is behind the tip of its shard (KCL MillisBehindLatest); removed when the lease is lost.", lStream, lShard),
		processorErrors:   counter(sub, "processor_errors_total", "Failed or panicking processor calls (retried, never skipped).", lStream, lShard),
		outOfRange:        counter(sub, "out_of_range_records_total", "Sub-records whose hash key lies outside their shard's range (delivered anyway; KCL drops them).", lStream, lShard),
		throttles:         counter(sub, "read_throttles_total", "Throttled Kinesis reads (GetRecords or SubscribeToShard).", lStream, lShard),
		expiredIters:      counter(sub, "expired_iterators_total", "ExpiredIteratorException recoveries (KCL ExpiredIterator).", lStream, lShard),
		retentionRestarts: counter(sub, "retention_restarts_total", "Restarts at TRIM_HORIZON because the checkpoint was older than the stream's retention (records lost; logged at Error).", lStream, lShard),
		leasesHeld:        gauge(sub, "current_leases", "Shards this worker processes (KCL CurrentLeases).", lStream),
		leasesTaken:       counter(sub, "leases_taken_total", "Leases this worker acquired (KCL TakenLeases).", lStream),
		leasesLost:        counter(sub, "leases_lost_total", "Leases lost to another worker, expiry or a fenced write; not those handed back (KCL LostLeases).", lStream),
	}
}

func (v *consumerVecs) register(reg prometheus.Registerer) error {
	r := registrar{reg: reg}
	use(&r, &v.processed)
	use(&r, &v.processedBytes)
	use(&r, &v.processTime)
	use(&r, &v.behindLatest)
	use(&r, &v.processorErrors)
	use(&r, &v.outOfRange)
	use(&r, &v.throttles)
	use(&r, &v.expiredIters)
	use(&r, &v.retentionRestarts)
	use(&r, &v.leasesHeld)
	use(&r, &v.leasesTaken)
	use(&r, &v.leasesLost)
	return r.err
}

// leaseVecs are KCL's RenewAllLeases and TakeLeases metrics.
type leaseVecs struct {
	renewTime                             *prometheus.HistogramVec
	renewed, renewSkipped, lost, renewErr *prometheus.CounterVec
	held                                  *prometheus.GaugeVec
	takeTime                              *prometheus.HistogramVec
	scanErrors                            *prometheus.CounterVec
	taken, stolen, takeErr                *prometheus.CounterVec
	workers, target, tableLeases          *prometheus.GaugeVec
}

func newLeaseVecs() leaseVecs {
	const sub = "lease"
	return leaseVecs{
		renewTime:    histogram(sub, "renew_duration_seconds", "Duration of renewal passes (KCL RenewAllLeases Time).", secondsBuckets, lApp),
		renewed:      counter(sub, "renewed_total", "Leases renewed (KCL RenewLease.Success).", lApp),
		renewSkipped: counter(sub, "renew_skipped_total", "Renewals skipped because a recent checkpoint already advanced the lease counter.", lApp),
		lost:         counter(sub, "lost_total", "Leases lost in renewal passes (KCL LostLeases).", lApp),
		renewErr:     counter(sub, "renew_failures_total", "Renewal writes that failed; the lease is kept and retried.", lApp),
		held:         gauge(sub, "current_leases", "Leases held after the last pass (KCL CurrentLeases).", lApp),
		takeTime:     histogram(sub, "take_duration_seconds", "Duration of take passes, balance or expiry_scan (KCL TakeLeases Time).", secondsBuckets, lApp, lPass),
		scanErrors:   counter(sub, "take_scan_errors_total", "Take passes whose lease table scan failed.", lApp, lPass),
		taken:        counter(sub, "taken_total", "Unowned or expired leases taken (KCL TakenLeases, with stolen_total).", lApp),
		stolen:       counter(sub, "stolen_total", "Leases stolen from a worker above its share.", lApp),
		takeErr:      counter(sub, "take_failures_total", "Takes that failed, mostly another worker winning the race.", lApp),
		workers:      gauge(sub, "workers", "Live workers seen in the last successful scan (KCL NumWorkers).", lApp),
		target:       gauge(sub, "target_leases", "This worker's fair share of leases (KCL NeededLeases).", lApp),
		tableLeases:  gauge(sub, "table_leases", "Leases in the table at the last successful scan (KCL TotalLeases).", lApp),
	}
}

func (v *leaseVecs) register(reg prometheus.Registerer) error {
	r := registrar{reg: reg}
	use(&r, &v.renewTime)
	use(&r, &v.renewed)
	use(&r, &v.renewSkipped)
	use(&r, &v.lost)
	use(&r, &v.renewErr)
	use(&r, &v.held)
	use(&r, &v.takeTime)
	use(&r, &v.scanErrors)
	use(&r, &v.taken)
	use(&r, &v.stolen)
	use(&r, &v.takeErr)
	use(&r, &v.workers)
	use(&r, &v.target)
	use(&r, &v.tableLeases)
	return r.err
}

func counter(sub, name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: sub, Name: name, Help: help}, labels)
}

func gauge(sub, name, help string, labels ...string) *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Subsystem: sub, Name: name, Help: help}, labels)
}

func histogram(sub, name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Subsystem: sub, Name: name, Help: help, Buckets: buckets}, labels)
}

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

func failureReason(err error) string {
	for _, r := range failureReasons {
		if errors.Is(err, r.err) {
			return r.label
		}
	}
	return "other"
}
