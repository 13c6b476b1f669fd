package awserr

import (
	"context"
	"errors"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Error codes the packages act on.
const (
	ResourceNotFound            = "ResourceNotFoundException"
	ResourceInUse               = "ResourceInUseException"
	InvalidArgument             = "InvalidArgumentException"
	ExpiredIterator             = "ExpiredIteratorException"
	ProvisionedThroughputExceed = "ProvisionedThroughputExceededException"
)

// HasCode reports whether any AWS API error in err's chain has code.
func HasCode(err error, code string) bool {
	found := false
	walk(err, func(e error) bool {
		if ae, ok := e.(smithy.APIError); ok && ae.ErrorCode() == code {
			found = true
		}
		return found
	})
	return found
}

// Code returns the code and message of the first AWS API error in err's
// chain; ok is false when there is none.
func Code(err error) (code, message string, ok bool) {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode(), ae.ErrorMessage(), true
	}
	return "", "", false
}

// walk calls f on err and every error it wraps, depth first, until f
// returns true.
func walk(err error, f func(error) bool) bool {
	if err == nil {
		return false
	}
	if f(err) {
		return true
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		return walk(u.Unwrap(), f)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if walk(e, f) {
				return true
			}
		}
	}
	return false
}

// IsThrottleCode reports whether code means the caller is going too fast
// for the resource or the account: retry later, more slowly.
func IsThrottleCode(code string) bool {
	switch code {
	case ProvisionedThroughputExceed, "LimitExceededException", "KMSThrottlingException", "ThrottlingException":
		return true
	}
	return false
}

// IsThrottle reports whether err is an AWS throttling error.
func IsThrottle(err error) bool {
	found := false
	walk(err, func(e error) bool {
		if ae, ok := e.(smithy.APIError); ok && IsThrottleCode(ae.ErrorCode()) {
			found = true
		}
		return found
	})
	return found
}

// IsPermanentCode reports whether a Kinesis error code means the same
// request cannot succeed on retry: the resource is missing, the caller may
// not use it, the request is malformed, or its KMS key is unusable.
func IsPermanentCode(code string) bool {
	switch code {
	case ResourceNotFound, "AccessDeniedException", InvalidArgument,
		"ValidationException", "SerializationException", "UnrecognizedClientException",
		"InvalidSignatureException", "IncompleteSignature", "MissingAuthenticationToken",
		"KMSDisabledException", "KMSInvalidStateException", "KMSAccessDeniedException",
		"KMSNotFoundException", "KMSOptInRequired":
		return true
	}
	return false
}

// IsNotFound reports whether err is a ResourceNotFoundException: for
// Kinesis a missing stream, shard or consumer, for DynamoDB a missing table.
func IsNotFound(err error) bool { return HasCode(err, ResourceNotFound) }

// IsUnreachable reports whether err is a call that got no response: the
// request could not be sent or its connection failed (DNS, refused,
// reset), as opposed to an error the service returned or a context that
// ended.
func IsUnreachable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return false
	}
	var se *smithyhttp.RequestSendError
	return errors.As(err, &se)
}
