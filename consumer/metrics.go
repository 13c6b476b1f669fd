package consumer

import (
	"log/slog"
	"time"

	"github.com/shardflow/shardflow/internal/hookset"
)

// Metrics is a set of optional hooks that receive the consumer's
// measurements: any value is a Metrics, and the consumer calls each hook
// interface below (HookRecordsProcessed, HookMillisBehindLatest, ...) that
// the value implements. Which hooks a value implements is found once, by
// type assertion in New, not per call; a missing hook is a call to a
// no-op.
// Prometheus, OpenTelemetry and CloudWatch adapters are in the nested
// modules under metrics/.
//
// New metrics arrive as new hook interfaces, never as new methods on an
// existing one, so an implementation written against an older release
// keeps compiling, and a value receives the hooks whose methods are in
// its own method set. Two shapes receive nothing: a wrapper embedding the
// interface (struct{ consumer.Metrics }) has no hook methods, as Metrics has
// none, so it passes nothing on to the value it wraps; and a value whose
// hook methods have pointer receivers, passed by value (MyMetrics{} for
// &MyMetrics{}), implements none of them. Wrap by embedding the concrete
// type (or forward each hook), and pass a pointer; New logs a warning
// when a Metrics other than nil or NopMetrics implements no hook. To
// catch a misspelt or mistyped method at compile time, assert the hooks
// you mean to implement:
//
//	var _ consumer.HookMillisBehindLatest = (*MyMetrics)(nil)
//
// Hooks must be safe for concurrent use and fast: they are called on the
// processing path.
//
// The shardID argument is the shard's lease key: the shard id in
// single-stream mode, "account:stream:creationEpoch:shardId" in
// multi-stream mode (Config.Streams), so measurements carry the stream
// without a change to the interface; lease.ParseMultiStreamKey splits it.
type Metrics interface{}

// HookRecordsProcessed is called after each successful ProcessRecords
// call with the batch's record count, data bytes and processing time.
type HookRecordsProcessed interface {
	RecordsProcessed(shardID string, records, bytes int, took time.Duration)
}

// HookMillisBehindLatest reports each fetched batch's lag.
type HookMillisBehindLatest interface {
	MillisBehindLatest(shardID string, millis int64)
}

// HookProcessorError counts failed (or panicking) processor calls.
type HookProcessorError interface {
	ProcessorError(shardID string)
}

// HookOutOfRangeRecords counts sub-records whose hash key lies outside the
// shard's range (delivered anyway; KCL would drop them).
type HookOutOfRangeRecords interface {
	OutOfRangeRecords(shardID string, n int)
}

// HookThrottled counts throttled Kinesis reads.
type HookThrottled interface {
	Throttled(shardID string)
}

// HookIteratorExpired counts ExpiredIteratorException recoveries.
type HookIteratorExpired interface {
	IteratorExpired(shardID string)
}

// HookRetentionRestart counts restarts at TRIM_HORIZON because the shard's
// checkpoint was older than the stream's retention: the records between
// the checkpoint and the trim horizon were lost (logged at Error).
type HookRetentionRestart interface {
	RetentionRestart(shardID string)
}

// HookLeasesHeld reports how many shards this worker processes.
type HookLeasesHeld interface {
	LeasesHeld(n int)
}

// HookLeaseTaken counts lease acquisitions.
type HookLeaseTaken interface {
	LeaseTaken(shardID string)
}

// HookLeaseLost counts lease losses (to another worker, expiry or a fenced
// write); leases this worker hands back itself, at shard end or on
// Shutdown, are not losses.
type HookLeaseLost interface {
	LeaseLost(shardID string)
}

// HookShardReleased is called when a shard's pipeline stops on this worker
// for any reason other than the loss of its lease (which calls
// HookLeaseLost instead): handed over to another worker, the shard ended,
// Shutdown or Run's context ending. An adapter that keeps per-shard state
// (a lag gauge) drops the shard's there, so that only its current owner
// reports it.
type HookShardReleased interface {
	ShardReleased(shardID string)
}

// NopMetrics records nothing: it implements no hook. A nil Config.Metrics
// does the same; NopMetrics stays so that code naming it (or embedding it,
// as implementations had to before hooks were optional) keeps compiling.
type NopMetrics struct{}

// metricHooks is Config.Metrics resolved into its hooks once, in New: each
// field is the user's hook or a no-op, so a call site makes one interface
// call and nothing is asserted per call. Its methods have the hooks'
// names, so call sites read as calls on a full Metrics.
type metricHooks struct {
	processed  HookRecordsProcessed
	behind     HookMillisBehindLatest
	procErr    HookProcessorError
	outOfRange HookOutOfRangeRecords
	throttled  HookThrottled
	expired    HookIteratorExpired
	retention  HookRetentionRestart
	leasesHeld HookLeasesHeld
	leaseTaken HookLeaseTaken
	leaseLost  HookLeaseLost
	released   HookShardReleased
}

func newMetricHooks(m Metrics, log *slog.Logger) *metricHooks {
	var nop nopHooks
	h := &metricHooks{nop, nop, nop, nop, nop, nop, nop, nop, nop, nop, nop}
	n := hookset.Resolve(m, &h.processed) + hookset.Resolve(m, &h.behind) + hookset.Resolve(m, &h.procErr) +
		hookset.Resolve(m, &h.outOfRange) + hookset.Resolve(m, &h.throttled) + hookset.Resolve(m, &h.expired) +
		hookset.Resolve(m, &h.retention) + hookset.Resolve(m, &h.leasesHeld) + hookset.Resolve(m, &h.leaseTaken) +
		hookset.Resolve(m, &h.leaseLost) + hookset.Resolve(m, &h.released)
	hookset.WarnIfNone[NopMetrics](log, "consumer", m, n)
	return h
}

func (h *metricHooks) RecordsProcessed(shardID string, records, bytes int, took time.Duration) {
	h.processed.RecordsProcessed(shardID, records, bytes, took)
}
func (h *metricHooks) MillisBehindLatest(shardID string, millis int64) {
	h.behind.MillisBehindLatest(shardID, millis)
}
func (h *metricHooks) ProcessorError(shardID string) { h.procErr.ProcessorError(shardID) }
func (h *metricHooks) OutOfRangeRecords(shardID string, n int) {
	h.outOfRange.OutOfRangeRecords(shardID, n)
}
func (h *metricHooks) Throttled(shardID string)        { h.throttled.Throttled(shardID) }
func (h *metricHooks) IteratorExpired(shardID string)  { h.expired.IteratorExpired(shardID) }
func (h *metricHooks) RetentionRestart(shardID string) { h.retention.RetentionRestart(shardID) }
func (h *metricHooks) LeasesHeld(n int)                { h.leasesHeld.LeasesHeld(n) }
func (h *metricHooks) LeaseTaken(shardID string)       { h.leaseTaken.LeaseTaken(shardID) }
func (h *metricHooks) LeaseLost(shardID string)        { h.leaseLost.LeaseLost(shardID) }
func (h *metricHooks) ShardReleased(shardID string)    { h.released.ShardReleased(shardID) }

// nopHooks is the hook of every measurement the user's Metrics does not
// take.
type nopHooks struct{}

func (nopHooks) RecordsProcessed(string, int, int, time.Duration) {}
func (nopHooks) MillisBehindLatest(string, int64)                 {}
func (nopHooks) ProcessorError(string)                            {}
func (nopHooks) OutOfRangeRecords(string, int)                    {}
func (nopHooks) Throttled(string)                                 {}
func (nopHooks) IteratorExpired(string)                           {}
func (nopHooks) RetentionRestart(string)                          {}
func (nopHooks) LeasesHeld(int)                                   {}
func (nopHooks) LeaseTaken(string)                                {}
func (nopHooks) LeaseLost(string)                                 {}
func (nopHooks) ShardReleased(string)                             {}
