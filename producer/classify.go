package producer

import (
	"context"
	"errors"

	"github.com/shardflow/shardflow/internal/awserr"
)

type errClass int

const (
	classTransient errClass = iota // retry with backoff
	classThrottled                 // retry with backoff, or fail with FailIfThrottled
	classRejected                  // cannot succeed on retry: fail at once
)

// ErrRequestTimeout is the cause of a PutRecords call canceled after
// Config.RequestTimeout.
var ErrRequestTimeout = errors.New("producer: PutRecords timed out")

// errNoOpenShards is the shard map refresh's failure when ListShards
// works but lists no open shard (a stream being created, or every shard
// closed); classifyErr names it codeNoOpenShards, so the listing's
// warnings tell it from a network error.
var errNoOpenShards = errors.New("producer: stream has no open shards")

const codeNoOpenShards = "NoOpenShards"

// codeIncompleteResult is the Attempt.ErrorCode of a PutRecords result
// entry that has no ErrorCode but lacks its ShardId or SequenceNumber: a
// malformed response, retried as a transient failure.
const codeIncompleteResult = "IncompleteResultEntry"

func classifyCode(code string) errClass {
	switch {
	case code == awserr.ProvisionedThroughputExceed:
		// Only the stream's throughput: FailIfThrottled (KPL's
		// failIfThrottled) is about that one.
		return classThrottled
	case awserr.IsPermanentCode(code):
		return classRejected
	}
	// InternalFailure, ServiceUnavailable, LimitExceededException,
	// KMSThrottlingException, ThrottlingException and anything unknown.
	return classTransient
}

// classifyErr classifies a request-level error and names its code.
func classifyErr(err error) (errClass, string, string) {
	if code, msg, ok := awserr.Code(err); ok {
		return classifyCode(code), code, msg
	}
	if errors.Is(err, ErrRequestTimeout) {
		return classTransient, "RequestTimeout", err.Error()
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return classTransient, "RequestCanceled", err.Error()
	}
	if errors.Is(err, errNoOpenShards) {
		return classTransient, codeNoOpenShards, err.Error()
	}
	return classTransient, "NetworkError", err.Error()
}
