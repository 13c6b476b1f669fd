//go:build integration

package lease

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/internal/itest"
)

// A deleted lease table is reported as ErrTableNotFound (and the SDK's
// ResourceNotFoundException) by dynalite, as by DynamoDB.
func TestIntegrationTableDeleted(t *testing.T) {
	ctx := context.Background()
	client := itest.DynamoDB(t)
	table := itest.Name("deleted")
	s, err := NewDynamoStore(ctx, client, table)
	require.NoError(t, err)
	_, err = client.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(table)})
	require.NoError(t, err)
	// dynalite deletes asynchronously: wait until the table is gone.
	w := dynamodb.NewTableNotExistsWaiter(client)
	require.NoError(t, w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)}, time.Hour)) // no deadline of ours: go test -timeout reports a hang
	_, err = s.List(ctx)
	require.ErrorIs(t, err, ErrTableNotFound)
	var rnf *types.ResourceNotFoundException
	require.True(t, errors.As(err, &rnf))
	require.ErrorContains(t, err, "lease: table "+table+": scan")
}
