package consumer

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/shardflow/shardflow/internal/awserr"
)

// Kinesis is the part of *kinesis.Client a polling consumer uses;
// *kinesis.Client and *kinesistest.Server satisfy it.
type Kinesis interface {
	DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, optFns ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
	ListShards(ctx context.Context, in *kinesis.ListShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, optFns ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error)
	GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
}

// FanOutKinesis adds what enhanced fan-out needs; *kinesis.Client (including
// kinesistest's (*Server).Client()) satisfies it.
type FanOutKinesis interface {
	Kinesis
	RegisterStreamConsumer(ctx context.Context, in *kinesis.RegisterStreamConsumerInput, optFns ...func(*kinesis.Options)) (*kinesis.RegisterStreamConsumerOutput, error)
	DescribeStreamConsumer(ctx context.Context, in *kinesis.DescribeStreamConsumerInput, optFns ...func(*kinesis.Options)) (*kinesis.DescribeStreamConsumerOutput, error)
	SubscribeToShard(ctx context.Context, in *kinesis.SubscribeToShardInput, optFns ...func(*kinesis.Options)) (*kinesis.SubscribeToShardOutput, error)
}

var (
	_ Kinesis       = (*kinesis.Client)(nil)
	_ FanOutKinesis = (*kinesis.Client)(nil)
)

// PanicError wraps a panic recovered from a RecordProcessor call.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("consumer: processor panicked: %v", e.Value) }

// Errors.
var (
	// ErrStopped is returned by Run after Shutdown, and by Run or Shutdown
	// called on a consumer that already stopped.
	ErrStopped = errors.New("consumer: stopped")
	// ErrFanOutUnsupported is returned by New when EnhancedFanOut is set
	// but the Kinesis client does not implement FanOutKinesis.
	ErrFanOutUnsupported = errors.New("consumer: enhanced fan-out needs a client with SubscribeToShard")
	// ErrStreamNotFound is matched by the error Run returns when the
	// stream of StreamName or StreamARN does not exist (Kinesis's
	// ResourceNotFoundException, which errors.As with
	// *types.ResourceNotFoundException also finds). In multi-stream mode
	// (Streams) Run does not fail: the stream sync's Error log carries it
	// and the stream is tried again at the next sync.
	ErrStreamNotFound = errors.New("consumer: stream not found")
)

func isThrottle(err error) bool { return awserr.IsThrottle(err) }

func isExpiredIterator(err error) bool { return awserr.HasCode(err, awserr.ExpiredIterator) }

func isResourceNotFound(err error) bool { return awserr.IsNotFound(err) }

func isInvalidArgument(err error) bool { return awserr.HasCode(err, awserr.InvalidArgument) }

func isResourceInUse(err error) bool { return awserr.HasCode(err, awserr.ResourceInUse) }
