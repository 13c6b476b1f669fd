package consumer

import "time"

// Metrics receives the consumer's measurements. Implementations must be safe
// for concurrent use and fast (they are called on the processing path);
// Prometheus, OpenTelemetry or CloudWatch adapters plug in here. Embed
// NopMetrics to implement only some methods.
//
// The shardID argument is the shard's lease key: the shard id in
// single-stream mode, "account:stream:creationEpoch:shardId" in
// multi-stream mode (Config.Streams), so measurements carry the stream
// without a change to the interface; lease.ParseMultiStreamKey splits it.
type Metrics interface {
	// RecordsProcessed is called after each successful ProcessRecords call
	// with the batch's record count, data bytes and processing time.
	RecordsProcessed(shardID string, records, bytes int, took time.Duration)
	// MillisBehindLatest reports each fetched batch's lag.
	MillisBehindLatest(shardID string, millis int64)
	// ProcessorError counts failed (or panicking) processor calls.
	ProcessorError(shardID string)
	// OutOfRangeRecords counts sub-records whose hash key lies outside the
	// shard's range (delivered anyway; KCL would drop them).
	OutOfRangeRecords(shardID string, n int)
	// Throttled counts throttled Kinesis reads; IteratorExpired counts
	// ExpiredIteratorException recoveries.
	Throttled(shardID string)
	IteratorExpired(shardID string)
	// RetentionRestart counts restarts at TRIM_HORIZON because the shard's
	// checkpoint was older than the stream's retention: the records between
	// the checkpoint and the trim horizon were lost (logged at Error).
	RetentionRestart(shardID string)
	// LeasesHeld reports how many shards this worker processes.
	LeasesHeld(n int)
	// LeaseTaken and LeaseLost count lease acquisitions and losses (to
	// another worker, expiry or a fenced write); leases this worker hands
	// back itself, at shard end or on Shutdown, are not losses.
	LeaseTaken(shardID string)
	LeaseLost(shardID string)
}

// NopMetrics discards all measurements.
type NopMetrics struct{}

func (NopMetrics) RecordsProcessed(string, int, int, time.Duration) {}
func (NopMetrics) MillisBehindLatest(string, int64)                 {}
func (NopMetrics) ProcessorError(string)                            {}
func (NopMetrics) OutOfRangeRecords(string, int)                    {}
func (NopMetrics) Throttled(string)                                 {}
func (NopMetrics) IteratorExpired(string)                           {}
func (NopMetrics) RetentionRestart(string)                          {}
func (NopMetrics) LeasesHeld(int)                                   {}
func (NopMetrics) LeaseTaken(string)                                {}
func (NopMetrics) LeaseLost(string)                                 {}

var _ Metrics = NopMetrics{}
