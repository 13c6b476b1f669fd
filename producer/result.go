package producer

import (
	"context"
	"sync/atomic"
	"time"
)

// Record is one user record.
type Record struct {
	// PartitionKey is required: 1 to 256 characters as Kinesis counts them (UTF-16 code units), valid UTF-8.
	PartitionKey string
	// ExplicitHashKey, if set, routes the record instead of the MD5 of its
	// partition key: a decimal integer in [0, 2^128).
	ExplicitHashKey string
	// Data is the payload. The producer keeps a reference until the
	// record's outcome is known: do not modify it before then.
	Data []byte
}

// Attempt is one PutRecords call that carried the record.
type Attempt struct {
	// Time is when the call was sent and Duration how long it took.
	Time     time.Time
	Duration time.Duration
	// ErrorCode and ErrorMessage are empty for a successful attempt; for a
	// failed one they hold the record's ErrorCode, or the request error.
	ErrorCode    string
	ErrorMessage string
}

// Success reports whether the attempt put the record.
func (a Attempt) Success() bool { return a.ErrorCode == "" }

// Result is the outcome of one record.
//
// Records that travelled in one Kinesis record and got the same outcome
// share one Result (the producer stores where and how they went once per
// Kinesis record, not once per user record): read it, do not modify it.
type Result struct {
	// ShardID and SequenceNumber are where Kinesis stored the record (for
	// an aggregated record, those of the Kinesis record carrying it).
	ShardID        string
	SequenceNumber string
	// Attempts lists every PutRecords call that carried the record, in
	// order. A record that failed without being sent (expired in the
	// buffer, canceled, closed) may have none. Records that travelled
	// together share one slice (its capacity is its length, so appending
	// copies). An ErrorCode of "IncompleteResultEntry" marks a result
	// entry that had neither an error nor a shard and sequence number; the
	// record was retried.
	Attempts []Attempt
	// Err is nil on success, else a *RecordError.
	Err error
}

// Future is the outcome of one Put, available once Done is closed. It is
// safe to use from many goroutines. A Future is never reused by the
// producer.
//
// A Future is only the published outcome: the record itself (key, data,
// context, callback) is held by the producer beside its aggregate until
// the outcome is known, so what outlives a Put is small and holds two
// pointers. With aggregation, Futures are allocated in blocks of 64 per
// shard: a Future kept after its outcome keeps its block (1 KiB) alive,
// and with it the Results of the block's 63 other records (each shard's
// current block keeps those of its records completed so far). A Result's
// Attempts point into the history its PutRecords call shares among its
// records (up to 500 Attempts of about 64 bytes), which stays alive while
// any of their Results does. Keep the Result, not the Future, or copy
// what you need, to hold less.
type Future struct {
	// ch is nil until the outcome is published or Done makes a channel.
	// complete swaps in closedCh (one closed channel for all Futures) if
	// ch is still nil, else closes Done's channel: completing a record
	// takes no lock and one atomic, and costs nothing more when nobody
	// waits on its channel. ch and res are all a Future holds (16 bytes).
	ch  atomic.Pointer[chan struct{}]
	res *Result
}

// futureResult is a Future with room for its own Result, for a record
// that is a Kinesis record of its own (no aggregation): res is f's
// outcome unless a failure replaces it.
type futureResult struct {
	f   Future
	res Result
}

// closedCh is the channel of every Future completed before its Done was
// called.
var closedCh = func() *chan struct{} {
	c := make(chan struct{})
	close(c)
	return &c
}()

// done reports whether f's outcome is published (then f.res is it).
func (f *Future) done() bool {
	c := f.ch.Load()
	if c == nil {
		return false
	}
	if c == closedCh {
		return true
	}
	select {
	case <-*c:
		return true
	default:
		return false
	}
}

// Done returns a channel closed when the outcome is known.
func (f *Future) Done() <-chan struct{} {
	if c := f.ch.Load(); c != nil {
		return *c
	}
	c := make(chan struct{})
	if f.ch.CompareAndSwap(nil, &c) {
		return c
	}
	return *f.ch.Load() // completed meanwhile (closedCh), or another Done's
}

// Wait blocks until the outcome is known or ctx ends. It returns the
// Result and its Err; on ctx's end it returns (nil, ctx.Err()) and the
// record stays in flight.
func (f *Future) Wait(ctx context.Context) (*Result, error) {
	if f.done() {
		return f.res, f.res.Err
	}
	select {
	case <-f.Done():
		return f.res, f.res.Err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Result returns the outcome, or nil if it is not known yet.
func (f *Future) Result() *Result {
	if !f.done() {
		return nil
	}
	return f.res
}

// complete publishes res as f's outcome; the producer never touches f
// afterwards.
func (f *Future) complete(res *Result) {
	f.res = res
	if !f.ch.CompareAndSwap(nil, closedCh) {
		close(*f.ch.Load())
	}
}

// rec is a user record in the producer's hands, on its way into a Kinesis
// record (from Put, or re-routed) or out of one (to its outcome or
// another Kinesis record). It is held by value, in the slices that carry
// records between queues; inside a Kinesis record it is kept in pieces
// (see kRecord), so a buffered record costs no allocation besides its
// Future.
type rec struct {
	f        *Future
	pk, ehk  string
	data     []byte
	hashed   bool            // hi and lo are set
	hi, lo   uint64          // its hash key
	ctx      context.Context // only when it can be canceled
	enq      time.Duration   // its batch's start (from Producer.epoch), at most RecordMaxBufferedTime before Put
	callback func(*Result)
	// hist is the record's own history, once it left a Kinesis record
	// whose records shared theirs (see kRecord.detach); records that
	// leave one together share it. A pointer keeps rec small: most
	// records never have a history of their own.
	hist *[]Attempt
}

// attempts is r's own history.
func (r *rec) attempts() []Attempt {
	if r.hist == nil {
		return nil
	}
	return *r.hist
}

// setAttempts makes h r's own history.
func (r *rec) setAttempts(h []Attempt) { r.hist = &h }

func (r *rec) size() int { return len(r.data) + len(r.pk) }

// hashKey returns r's hash key. Put computed it (or found it in the key
// cache); a record rebuilt from a Kinesis record computes it again only if
// it is routed again.
func (r *rec) hashKey() (hi, lo uint64) {
	if !r.hashed {
		r.hi, r.lo, _ = hashKey(r.pk, r.ehk) // valid: Put checked it
		r.hashed = true
	}
	return r.hi, r.lo
}

// lastAttempt returns the code and message of r's last attempt, if any.
func (r *rec) lastAttempt() (code, msg string) {
	if h := r.attempts(); len(h) > 0 {
		return h[len(h)-1].ErrorCode, h[len(h)-1].ErrorMessage
	}
	return "", ""
}

// stored decides r's outcome (published later by Producer.publish):
// stored at shardID and seq. Until then nobody reads f.res: readers
// wait for complete (Future.done).
func (r *rec) stored(shardID, seq string) {
	r.f.res = &Result{ShardID: shardID, SequenceNumber: seq, Attempts: r.attempts()}
}

// fail decides r's outcome: err, with its own history.
func (r *rec) fail(err error) { r.f.res = &Result{Attempts: r.attempts(), Err: err} }
