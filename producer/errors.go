package producer

import (
	"errors"
	"fmt"

	"github.com/shardflow/shardflow/internal/awserr"
)

// Errors returned by Put and friends before anything is enqueued.
var (
	// ErrClosed is returned by Put after Close, and is the outcome of
	// records still unsent when Close's context ends.
	ErrClosed = errors.New("producer: closed")
	// ErrBufferFull is returned by Put when the buffer is full and
	// Config.FailWhenBufferFull is set.
	ErrBufferFull = errors.New("producer: buffer full")
	// ErrInvalidRecord is wrapped by every bad-input error from Put.
	ErrInvalidRecord = errors.New("producer: invalid record")
	// ErrEmptyPartitionKey, ErrPartitionKeyTooLong, ErrRecordTooLarge,
	// ErrInvalidExplicitHashKey and ErrPartitionKeyNotUTF8 describe bad
	// input; each also matches ErrInvalidRecord. The error Put returns
	// matches one of them with errors.Is and says the offending size or
	// value ("partition key is 300 UTF-16 code units, over 256"): but for
	// ErrEmptyPartitionKey a new value, not the sentinel, so compare with
	// errors.Is, never ==.
	ErrEmptyPartitionKey      = &inputError{msg: "empty partition key"}
	ErrPartitionKeyTooLong    = &inputError{msg: "partition key longer than 256 characters"}
	ErrRecordTooLarge         = &inputError{msg: "record (data plus partition key) larger than 1 MiB"}
	ErrInvalidExplicitHashKey = &inputError{msg: "explicit hash key is not a decimal integer in [0, 2^128)"}
	// ErrPartitionKeyNotUTF8: the SDK would send U+FFFD in place of the
	// bad bytes, so Kinesis would hash another key than the one given.
	ErrPartitionKeyNotUTF8 = &inputError{msg: "partition key is not valid UTF-8"}
)

// inputError is a bad-input error: a sentinel (reason nil) or one with
// the details of a record, matching its sentinel.
type inputError struct {
	msg    string
	reason *inputError
}

func (e *inputError) Error() string { return "producer: invalid record: " + e.msg }
func (e *inputError) Is(target error) bool {
	return target == ErrInvalidRecord || (e.reason != nil && target == e.reason)
}

// invalid returns reason with details; only bad input pays for it.
func invalid(reason *inputError, format string, a ...any) error {
	return &inputError{msg: fmt.Sprintf(format, a...), reason: reason}
}

// Reasons a record failed; a Result's Err matches exactly one of them with
// errors.Is (besides wrapped causes).
var (
	// ErrRecordExpired: the record was not put within Config.RecordTTL.
	ErrRecordExpired = errors.New("producer: record expired")
	// ErrThrottled: Kinesis throttled the record and FailIfThrottled is set.
	ErrThrottled = errors.New("producer: record throttled")
	// ErrRejected: Kinesis rejected the record or the request with an
	// error that cannot succeed on retry (validation, access denied,
	// stream not found, KMS key unusable).
	ErrRejected = errors.New("producer: record rejected")
	// ErrCanceled: the context given to Put ended before the record was
	// stored: before it was sent or, if its Result has attempts, while it
	// waited for a retry. Then an earlier attempt whose outcome was
	// unknown (a timeout, a lost response; RecordError.Code tells the
	// last one) may still have stored it.
	ErrCanceled = errors.New("producer: record canceled")
)

// ErrStreamNotFound is matched by CheckStream's error, and by a
// RecordError (besides its reason, ErrRejected) when the stream does not
// exist: Kinesis's ResourceNotFoundException, which errors.As with
// *types.ResourceNotFoundException also finds.
var ErrStreamNotFound = errors.New("producer: stream not found")

// RecordError is the Err of a failed Result. Use errors.Is with the
// sentinels above (ErrRecordExpired, ErrThrottled, ErrRejected,
// ErrCanceled, ErrClosed) and errors.As for the SDK error behind it, if
// any.
type RecordError struct {
	// Reason is one of the sentinel errors.
	Reason error
	// Code and Message are the last Kinesis error code and message
	// (per-record ErrorCode or the request error's code), if any.
	Code, Message string
	// Cause is the request-level error of the last attempt, if it had one.
	Cause error
}

func (e *RecordError) Error() string {
	s := e.Reason.Error()
	if e.Code != "" {
		s += fmt.Sprintf(": %s: %s", e.Code, e.Message)
	} else if e.Cause != nil {
		s += ": " + e.Cause.Error()
	}
	return s
}

// Is makes errors.Is(err, ErrStreamNotFound) true for a record that
// failed because the stream does not exist.
func (e *RecordError) Is(target error) bool {
	return target == ErrStreamNotFound && e.Code == awserr.ResourceNotFound
}

// Unwrap returns the reason and the cause.
func (e *RecordError) Unwrap() []error {
	if e.Cause != nil {
		return []error{e.Reason, e.Cause}
	}
	return []error{e.Reason}
}
