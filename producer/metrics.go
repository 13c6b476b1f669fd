package producer

import (
	"log/slog"
	"time"

	"github.com/shardflow/shardflow/internal/hookset"
)

// Metrics is a set of optional hooks that receive the KPL's metrics: any
// value is a Metrics, and the producer calls each hook interface below
// (HookUserRecordReceived, HookKinesisRecordPut, ...) that the value
// implements. Which hooks a value implements is found once, by type
// assertion in New, not per call; a missing hook is a call to a no-op,
// and with none of the per-record hooks (all but UserRecordsPending,
// RequestTime and ErrorsByCode) the per-record metric work is skipped.
//
// New metrics arrive as new hook interfaces, never as new methods on an
// existing one, so an implementation written against an older release
// keeps compiling, and a value receives the hooks whose methods are in
// its own method set. Two shapes receive nothing: a wrapper embedding the
// interface (struct{ producer.Metrics }) has no hook methods, as Metrics has
// none, so it passes nothing on to the value it wraps; and a value whose
// hook methods have pointer receivers, passed by value (MyMetrics{} for
// &MyMetrics{}), implements none of them. Wrap by embedding the concrete
// type (or forward each hook), and pass a pointer; New logs a warning
// when a Metrics other than nil or NopMetrics implements no hook. To
// catch a misspelt or mistyped method at compile time, assert the hooks
// you mean to implement:
//
//	var _ producer.HookKinesisRecordPut = (*MyMetrics)(nil)
//
// Hooks are called from the producer's goroutines, must be safe for
// concurrent use and must not block. shardID is the shard the record was
// predicted for (or, for puts, where Kinesis stored it); it is empty while
// no shard map is loaded.
type Metrics interface{}

// HookUserRecordReceived: one record accepted by Put (KPL
// UserRecordsReceived, UserRecordsDataPut on receipt).
type HookUserRecordReceived interface {
	UserRecordReceived(dataSize int)
}

// HookUserRecordsPending: records with no outcome yet (or a callback that
// has not returned) and the bytes they are charged against
// MaxBufferedBytes, after each PutRecords call (KPL UserRecordsPending).
type HookUserRecordsPending interface {
	UserRecordsPending(records, bytes int)
}

// HookKinesisRecordPut: one Kinesis record carrying userRecords user
// records (userDataSize bytes of data) stored on shardID, kinesisSize
// bytes on the wire (KPL UserRecordsPut, UserRecordsDataPut,
// KinesisRecordsPut, KinesisRecordsDataPut, UserRecordsPerKinesisRecord).
type HookKinesisRecordPut interface {
	KinesisRecordPut(shardID string, userRecords, userDataSize, kinesisSize int)
}

// HookUserRecordsFailed: n user records failed for good with err (KPL
// AllErrors on user records). Expired records are also reported to
// HookUserRecordsExpired.
type HookUserRecordsFailed interface {
	UserRecordsFailed(shardID string, n int, err error)
}

// HookUserRecordsExpired: n user records passed RecordTTL (KPL
// UserRecordExpired).
type HookUserRecordsExpired interface {
	UserRecordsExpired(shardID string, n int)
}

// HookBufferingTime: time from Put to the first send of one user record
// (KPL BufferingTime).
type HookBufferingTime interface {
	BufferingTime(shardID string, d time.Duration)
}

// HookRetriesPerRecord: attempts minus one of a user record at its
// outcome (KPL RetriesPerRecord).
type HookRetriesPerRecord interface {
	RetriesPerRecord(shardID string, retries int)
}

// HookRequestTime: one PutRecords call of kinesisRecords entries (KPL
// Request Time, KinesisRecordsPerPutRecordsRequest); err is its
// request-level error.
type HookRequestTime interface {
	RequestTime(d time.Duration, kinesisRecords int, err error)
}

// HookErrorsByCode: n Kinesis records failed an attempt with code (a
// per-record ErrorCode or the request error's code) (KPL ErrorsByCode).
type HookErrorsByCode interface {
	ErrorsByCode(shardID, code string, n int)
}

// NopMetrics records nothing: it implements no hook. A nil Config.Metrics
// does the same; NopMetrics stays so that code naming it (or embedding it,
// as implementations had to before hooks were optional) keeps compiling.
type NopMetrics struct{}

// metricHooks is Config.Metrics resolved into its hooks once, in New: each
// field is the user's hook or a no-op, so a call site makes one interface
// call whether or not the hook exists, and nothing is asserted per call.
// Its methods have the hooks' names, so call sites read as calls on a
// full Metrics.
type metricHooks struct {
	// on: at least one per-record hook is set, so per-record metric work
	// (clock reads, shard lookups) is worth doing.
	on       bool
	received HookUserRecordReceived
	pending  HookUserRecordsPending
	put      HookKinesisRecordPut
	failed   HookUserRecordsFailed
	expired  HookUserRecordsExpired
	buffer   HookBufferingTime
	retries  HookRetriesPerRecord
	request  HookRequestTime
	errs     HookErrorsByCode
}

func newMetricHooks(m Metrics, log *slog.Logger) *metricHooks {
	var nop nopHooks
	h := &metricHooks{received: nop, pending: nop, put: nop, failed: nop, expired: nop, buffer: nop, retries: nop, request: nop, errs: nop}
	n := hook(m, &h.received, &h.on) + hook(m, &h.pending, nil) + hook(m, &h.put, &h.on) +
		hook(m, &h.failed, &h.on) + hook(m, &h.expired, &h.on) + hook(m, &h.buffer, &h.on) +
		hook(m, &h.retries, &h.on) + hook(m, &h.request, nil) + hook(m, &h.errs, nil)
	hookset.WarnIfNone[NopMetrics](log, "producer", m, n)
	return h
}

// hook resolves the hook T (hookset.Resolve) and sets *on when it is
// there and on is not nil: on marks the per-record hooks.
func hook[T any](m Metrics, dst *T, on *bool) int {
	n := hookset.Resolve(m, dst)
	if n == 1 && on != nil {
		*on = true
	}
	return n
}

func (h *metricHooks) UserRecordReceived(n int) { h.received.UserRecordReceived(n) }
func (h *metricHooks) UserRecordsPending(records, bytes int) {
	h.pending.UserRecordsPending(records, bytes)
}
func (h *metricHooks) KinesisRecordPut(shardID string, userRecords, userDataSize, kinesisSize int) {
	h.put.KinesisRecordPut(shardID, userRecords, userDataSize, kinesisSize)
}
func (h *metricHooks) UserRecordsFailed(shardID string, n int, err error) {
	h.failed.UserRecordsFailed(shardID, n, err)
}
func (h *metricHooks) UserRecordsExpired(shardID string, n int) {
	h.expired.UserRecordsExpired(shardID, n)
}
func (h *metricHooks) BufferingTime(shardID string, d time.Duration) {
	h.buffer.BufferingTime(shardID, d)
}
func (h *metricHooks) RetriesPerRecord(shardID string, retries int) {
	h.retries.RetriesPerRecord(shardID, retries)
}
func (h *metricHooks) RequestTime(d time.Duration, kinesisRecords int, err error) {
	h.request.RequestTime(d, kinesisRecords, err)
}
func (h *metricHooks) ErrorsByCode(shardID, code string, n int) {
	h.errs.ErrorsByCode(shardID, code, n)
}

// nopHooks is the hook of every metric the user's Metrics does not take.
type nopHooks struct{}

func (nopHooks) UserRecordReceived(int)                 {}
func (nopHooks) UserRecordsPending(int, int)            {}
func (nopHooks) KinesisRecordPut(string, int, int, int) {}
func (nopHooks) UserRecordsFailed(string, int, error)   {}
func (nopHooks) UserRecordsExpired(string, int)         {}
func (nopHooks) BufferingTime(string, time.Duration)    {}
func (nopHooks) RetriesPerRecord(string, int)           {}
func (nopHooks) RequestTime(time.Duration, int, error)  {}
func (nopHooks) ErrorsByCode(string, string, int)       {}
