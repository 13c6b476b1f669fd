package kinesistest

import (
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// The fake returns the SDK's own error types with the service's messages,
// so callers handle fake and real failures alike with errors.As. Schema
// violations the service reports as ValidationException (a code the SDK did
// not model in older releases) are *types.ValidationException.

func errStreamNotFound(s *Server, name string) error {
	return &types.ResourceNotFoundException{Message: aws.String(fmt.Sprintf(
		"Stream %s under account %s not found.", name, s.account))}
}

func errShardNotFound(s *Server, stream, shard string) error {
	return &types.ResourceNotFoundException{Message: aws.String(fmt.Sprintf(
		"Shard %s in stream %s under account %s does not exist", shard, stream, s.account))}
}

func errCouldNotFindShard(s *Server, stream, shard string) error {
	return &types.ResourceNotFoundException{Message: aws.String(fmt.Sprintf(
		"Could not find shard %s in stream %s under account %s.", shard, stream, s.account))}
}

func errInvalidArg(format string, args ...any) error {
	return &types.InvalidArgumentException{Message: aws.String(fmt.Sprintf(format, args...))}
}

func errInUse(format string, args ...any) error {
	return &types.ResourceInUseException{Message: aws.String(fmt.Sprintf(format, args...))}
}

func errLimit(format string, args ...any) error {
	return &types.LimitExceededException{Message: aws.String(fmt.Sprintf(format, args...))}
}

func errThroughput(msg string) error {
	return &types.ProvisionedThroughputExceededException{Message: aws.String(msg)}
}

func errInvalidIterator() error { return errInvalidArg("Invalid ShardIterator.") }

func errExpiredIterator(issued, now time.Time) error {
	return &types.ExpiredIteratorException{Message: aws.String(fmt.Sprintf(
		"Iterator expired. The iterator was created at time %s while right now it is %s which is further in the future than the tolerated delay of %d milliseconds.",
		amzTime(issued), amzTime(now), iteratorTTL.Milliseconds()))}
}

// amzTime formats like the service's messages: "Thu Jan 22 01:22:02 UTC 2015".
func amzTime(t time.Time) string { return t.UTC().Format("Mon Jan 02 15:04:05 UTC 2006") }

// validationError mirrors the service's schema validation failure.
func validationError(value any, member, constraint string) error {
	return &types.ValidationException{Message: aws.String(fmt.Sprintf(
		"1 validation error detected: Value '%v' at '%s' failed to satisfy constraint: %s",
		value, member, constraint))}
}
