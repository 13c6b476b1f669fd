//go:build integration

package producer

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/internal/itest"
)

// CheckStream against kinesalite: a stream that exists passes, one that
// does not fails with ErrStreamNotFound and the SDK's typed error, as
// against Kinesis.
func TestIntegrationCheckStream(t *testing.T) {
	client := itest.Kinesis(t, itest.Kinesalite)
	stream := itest.Name("check")
	itest.CreateStream(t, client, stream, 1)
	ctx := context.Background()

	p, err := New(client, stream, Config{Logger: discardLogger()})
	require.NoError(t, err)
	require.NoError(t, p.CheckStream(ctx))
	require.NoError(t, p.Close(ctx))

	p, err = New(client, itest.Name("absent"), Config{Logger: discardLogger()})
	require.NoError(t, err)
	defer p.Close(ctx)
	err = p.CheckStream(ctx)
	require.ErrorIs(t, err, ErrStreamNotFound)
	var rnf *types.ResourceNotFoundException
	require.ErrorAs(t, err, &rnf)
}
