package producer

import (
	"context"
	"errors"

	"github.com/aws/smithy-go"
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
	switch code {
	case "ProvisionedThroughputExceededException":
		return classThrottled
	case "ResourceNotFoundException", "AccessDeniedException", "InvalidArgumentException",
		"ValidationException", "SerializationException", "UnrecognizedClientException",
		"InvalidSignatureException", "IncompleteSignature", "MissingAuthenticationToken",
		"KMSDisabledException", "KMSInvalidStateException", "KMSAccessDeniedException",
		"KMSNotFoundException", "KMSOptInRequired":
		return classRejected
	}
	// InternalFailure, ServiceUnavailable, LimitExceededException,
	// KMSThrottlingException, ThrottlingException and anything unknown.
	return classTransient
}

// classifyErr classifies a request-level error and names its code.
func classifyErr(err error) (errClass, string, string) {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return classifyCode(ae.ErrorCode()), ae.ErrorCode(), ae.ErrorMessage()
	}
	if errors.Is(err, ErrRequestTimeout) {
		return classTransient, "RequestTimeout", err.Error()
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return classTransient, "RequestCanceled", err.Error()
	}
	return classTransient, "NetworkError", err.Error()
}
