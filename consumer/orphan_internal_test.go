package consumer

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/lease"
)

// A lease of a stream no longer configured is named by an ARN built from
// the SDK client's region. The consumer wraps its client for Status, so
// the region must still be read from the client the user passed.
func TestOrphanARNUsesTheClientsRegion(t *testing.T) {
	kc := kinesis.New(kinesis.Options{Region: "cn-north-1"})
	factory := ProcessorFactoryFunc(func(string) RecordProcessor { return nil })
	c, err := New(kc, lease.NewMemoryStore(), factory, Config{
		ApplicationName: "app", WorkerID: "w1",
		Streams: func(context.Context) ([]StreamConfig, error) { return []StreamConfig{{Name: "a"}}, nil },
	})
	require.NoError(t, err)
	got := c.orphanARN(lease.StreamIdentifier{AccountID: "123456789012", StreamName: "gone", CreationEpoch: 1})
	require.Equal(t, "arn:aws-cn:kinesis:cn-north-1:123456789012:stream/gone", got)
}
