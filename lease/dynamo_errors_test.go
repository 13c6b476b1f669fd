package lease

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/stretchr/testify/require"
)

// failingDynamo fails every call with err; DescribeTable reports the table
// ACTIVE so NewDynamoStore succeeds.
type failingDynamo struct {
	DynamoDBAPI
	err error
}

func (f failingDynamo) DescribeTable(_ context.Context, in *dynamodb.DescribeTableInput, _ ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error) {
	return &dynamodb.DescribeTableOutput{Table: &types.TableDescription{TableName: in.TableName, TableStatus: types.TableStatusActive}}, nil
}

func (f failingDynamo) Scan(context.Context, *dynamodb.ScanInput, ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	return nil, f.err
}

func (f failingDynamo) GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	return nil, f.err
}

func (f failingDynamo) UpdateItem(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	return nil, f.err
}

// missingTable is DynamoDB without the table.
type missingTable struct{ DynamoDBAPI }

func (missingTable) DescribeTable(context.Context, *dynamodb.DescribeTableInput, ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error) {
	return nil, &types.ResourceNotFoundException{Message: aws.String("Requested resource not found")}
}

func TestDynamoStoreErrors(t *testing.T) {
	ctx := context.Background()
	unreachable := &smithy.OperationError{ServiceID: "DynamoDB", OperationName: "Scan",
		Err: &smithyhttp.RequestSendError{Err: &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}}}
	for name, tc := range map[string]struct {
		err  error
		kind error
	}{
		"table deleted": {err: &types.ResourceNotFoundException{Message: aws.String("gone")}, kind: ErrTableNotFound},
		"unreachable":   {err: unreachable, kind: ErrStoreUnreachable},
		"throttled":     {err: &types.ProvisionedThroughputExceededException{Message: aws.String("slow down")}},
	} {
		t.Run(name, func(t *testing.T) {
			s, err := NewDynamoStore(ctx, failingDynamo{err: tc.err}, "leases")
			require.NoError(t, err)
			_, lerr := s.List(ctx)
			_, gerr := s.Get(ctx, "shardId-1")
			_, rerr := s.Renew(ctx, Lease{Key: "shardId-1", Owner: "w", Counter: 1})
			for _, err := range []error{lerr, gerr, rerr} {
				require.Error(t, err)
				require.True(t, strings.HasPrefix(err.Error(), "lease: table leases: "), err.Error())
				require.ErrorIs(t, err, tc.err, "the SDK's error is kept")
				for _, k := range []error{ErrTableNotFound, ErrStoreUnreachable} {
					require.Equal(t, k == tc.kind, errors.Is(err, k), "%v: %v", k, err)
				}
			}
			var rnf *types.ResourceNotFoundException
			require.Equal(t, tc.kind == ErrTableNotFound, errors.As(lerr, &rnf))
		})
	}
	_, err := NewDynamoStore(ctx, missingTable{}, "leases", WithoutTableCreation())
	require.ErrorIs(t, err, ErrTableNotFound)
	require.ErrorContains(t, err, "lease: table leases: describe")
}

// The SDK's own error for an endpoint nobody listens on (a closed port on
// loopback: refused at once) matches ErrStoreUnreachable.
func TestDynamoStoreUnreachableEndpoint(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close()) // now nothing listens there
	client := dynamodb.New(dynamodb.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String("http://" + addr),
		Credentials:      credentials.NewStaticCredentialsProvider("k", "s", ""),
		RetryMaxAttempts: 1,
	})
	_, err = NewDynamoStore(context.Background(), client, "leases")
	require.ErrorIs(t, err, ErrStoreUnreachable)
	require.NotErrorIs(t, err, ErrTableNotFound)
	require.ErrorContains(t, err, "lease: table leases: describe")
}
