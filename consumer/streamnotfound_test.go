package consumer_test

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/consumer"
	"github.com/shardflow/shardflow/kinesistest"
	"github.com/shardflow/shardflow/lease"
)

func TestRunOnMissingStream(t *testing.T) {
	srv := kinesistest.New(kinesistest.Options{})
	f := consumer.ProcessRecord(func(context.Context, string, consumer.Record) error { return nil })
	c, err := consumer.New(srv, lease.NewMemoryStore(), f,
		consumer.Config{ApplicationName: "app", StreamName: "missing", Logger: testLogger(t)})
	require.NoError(t, err)
	err = c.Run(t.Context())
	require.ErrorIs(t, err, consumer.ErrStreamNotFound)
	require.ErrorContains(t, err, "missing")
	var rnf *types.ResourceNotFoundException
	require.ErrorAs(t, err, &rnf)
}
