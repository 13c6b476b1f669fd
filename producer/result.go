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
type Result struct {
	// ShardID and SequenceNumber are where Kinesis stored the record (for
	// an aggregated record, those of the Kinesis record carrying it).
	ShardID        string
	SequenceNumber string
	// Attempts lists every PutRecords call that carried the record, in
	// order. A record that failed without being sent (expired in the
	// buffer, canceled, closed) may have none. Records that travelled
	// together share one slice (its capacity is its length, so appending
	// copies): read it, do not modify its elements. An ErrorCode of
	// "IncompleteResultEntry" marks a result entry that had neither an
	// error nor a shard and sequence number; the record was retried.
	Attempts []Attempt
	// Err is nil on success, else a *RecordError.
	Err error
}

// Future is the outcome of one Put, available once Done is closed. It is
// safe to use from many goroutines. A Future is never reused by the
// producer.
type Future struct {
	// record state, owned by the producer until completion
	pk, ehk  string
	data     []byte
	hi, lo   uint64
	ctx      context.Context // only when it can be canceled
	enq      time.Duration   // its batch's start (from Producer.epoch), at most RecordMaxBufferedTime before Put
	callback func(*Result)

	// res.Attempts is filled in only when the record leaves its Kinesis
	// record (kRecord.detach): until then the kRecord holds the history its
	// records share.
	res Result

	// state has futureDone once the outcome is published and futureCh
	// once Done made ch: whichever of complete and Done sets its bit
	// second closes ch, so completing a record takes no lock, and costs
	// nothing more when nobody waits on its channel.
	state atomic.Uint32
	ch    atomic.Pointer[chan struct{}]
}

const (
	futureDone = 1 << iota
	futureCh
)

// Done returns a channel closed when the outcome is known.
func (f *Future) Done() <-chan struct{} {
	if c := f.ch.Load(); c != nil {
		return *c
	}
	c := make(chan struct{})
	if !f.ch.CompareAndSwap(nil, &c) {
		return *f.ch.Load()
	}
	if f.state.Or(futureCh)&futureDone != 0 {
		close(c)
	}
	return c
}

// Wait blocks until the outcome is known or ctx ends. It returns the
// Result and its Err; on ctx's end it returns (nil, ctx.Err()) and the
// record stays in flight.
func (f *Future) Wait(ctx context.Context) (*Result, error) {
	if f.state.Load()&futureDone != 0 {
		return &f.res, f.res.Err
	}
	select {
	case <-f.Done():
		return &f.res, f.res.Err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Result returns the outcome, or nil if it is not known yet.
func (f *Future) Result() *Result {
	if f.state.Load()&futureDone == 0 {
		return nil
	}
	return &f.res
}

func (f *Future) size() int { return len(f.data) + len(f.pk) }

// complete publishes the outcome and returns the callback to run; the
// producer never touches f afterwards except to read it.
func (f *Future) complete() func(*Result) {
	f.data = nil
	f.ctx = nil
	cb := f.callback
	f.callback = nil
	if f.state.Or(futureDone)&futureCh != 0 {
		close(*f.ch.Load())
	}
	return cb
}
