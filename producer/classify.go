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
	return classTransient, "NetworkError", err.Error()
}
