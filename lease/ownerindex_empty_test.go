package lease

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"
)

// emptyKeyDynamo rejects an empty index key value as DynamoDB does.
type emptyKeyDynamo struct{ *indexDynamo }

func (d emptyKeyDynamo) Query(ctx context.Context, in *dynamodb.QueryInput, opt ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	if v, ok := in.ExpressionAttributeValues[":o"].(*types.AttributeValueMemberS); ok && v.Value == "" {
		d.queries = append(d.queries, in)
		return nil, &smithy.GenericAPIError{Code: "ValidationException", Message: "One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty string value. IndexName: LeaseOwnerToLeaseKeyIndex, IndexKey: leaseOwner"}
	}
	return d.indexDynamo.Query(ctx, in, opt...)
}

// ListOwned("") cannot be answered by the sparse index, and DynamoDB
// rejects the empty key value with a ValidationException, which once
// switched the index off for good.
func TestDynamoStoreListOwnedEmptyOwnerKeepsTheIndex(t *testing.T) {
	ctx := context.Background()
	d := &indexDynamo{exists: true, index: true, items: ownedItems(t)}
	s, err := NewDynamoStore(ctx, emptyKeyDynamo{d}, "t")
	require.NoError(t, err)
	require.True(t, s.HasOwnerIndex())

	got, err := s.ListOwned(ctx, "")
	require.NoError(t, err)
	mem := NewMemoryStore()
	for _, it := range ownedItems(t) {
		l, err := UnmarshalItem(it)
		require.NoError(t, err)
		_, err = mem.Create(ctx, l)
		require.NoError(t, err)
	}
	want, err := mem.ListOwned(ctx, "")
	require.NoError(t, err)
	require.Equal(t, want, got, "the unowned leases, as MemoryStore lists them")

	scans := d.scans
	got, err = s.ListOwned(ctx, "w1")
	require.NoError(t, err)
	require.Equal(t, []string{"a", "c"}, got)
	require.True(t, s.HasOwnerIndex(), "the index is still there")
	require.Equal(t, scans, d.scans, "w1's leases come from the index, not from a scan of the table")
}

// A ValidationException that does not say the index is missing (a bad
// expression, a bad key value) is returned and leaves the index in use.
func TestDynamoStoreListOwnedOtherValidationErrorKeepsTheIndex(t *testing.T) {
	ctx := context.Background()
	d := &indexDynamo{exists: true, index: true, items: ownedItems(t),
		queryErr: &smithy.GenericAPIError{Code: "ValidationException", Message: "Invalid KeyConditionExpression: An expression attribute value used in expression is not defined"}}
	s, err := NewDynamoStore(ctx, d, "t")
	require.NoError(t, err)
	_, err = s.ListOwned(ctx, "w1")
	var ae smithy.APIError
	require.ErrorAs(t, err, &ae)
	require.Equal(t, "ValidationException", ae.ErrorCode())
	require.True(t, s.HasOwnerIndex())
	require.Zero(t, d.scans)
}

// fullIndexDynamo is an index that projects every attribute, so its
// Query shows entityType.
type fullIndexDynamo struct{ *indexDynamo }

func (d fullIndexDynamo) Query(_ context.Context, in *dynamodb.QueryInput, _ ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	owner := in.ExpressionAttributeValues[":o"].(*types.AttributeValueMemberS).Value
	var out dynamodb.QueryOutput
	for _, it := range d.items {
		if o, ok := it[AttrLeaseOwner].(*types.AttributeValueMemberS); ok && o.Value == owner {
			out.Items = append(out.Items, it)
		}
	}
	return &out, nil
}

// Items whose entityType is not LEASE (KCL 3.x's other rows) are skipped
// by the index Query as by List and MemoryStore.
func TestDynamoStoreListOwnedSkipsNonLeaseItems(t *testing.T) {
	ctx := context.Background()
	items := append(ownedItems(t), map[string]types.AttributeValue{
		AttrLeaseKey:   &types.AttributeValueMemberS{Value: "worker-metrics-w1"},
		AttrLeaseOwner: &types.AttributeValueMemberS{Value: "w1"},
		AttrEntityType: &types.AttributeValueMemberS{Value: "WORKER_METRICS"},
	})
	d := &indexDynamo{exists: true, index: true, items: items}
	s, err := NewDynamoStore(ctx, fullIndexDynamo{d}, "t")
	require.NoError(t, err)
	require.True(t, s.HasOwnerIndex())
	got, err := s.ListOwned(ctx, "w1")
	require.NoError(t, err)
	require.Equal(t, []string{"a", "c"}, got)
	require.Zero(t, d.scans)
}

// noQueryDynamo is a user's implementation of DynamoDBAPI written before
// the owner index: it has no Query.
type noQueryDynamo struct{ DynamoDBAPI }

// A client without Query still works: the table is created with the
// index (KCL 3.x's tables have it), and ListOwned scans.
func TestDynamoStoreClientWithoutQueryScans(t *testing.T) {
	ctx := context.Background()
	d := &indexDynamo{items: ownedItems(t)}
	var client DynamoDBAPI = noQueryDynamo{d}
	_, ok := client.(DynamoDBQueryAPI)
	require.False(t, ok)
	s, err := NewDynamoStore(ctx, client, "t")
	require.NoError(t, err)
	require.Equal(t, OwnerIndexName, aws.ToString(d.created.GlobalSecondaryIndexes[0].IndexName))
	require.False(t, s.HasOwnerIndex())
	got, err := s.ListOwned(ctx, "w1")
	require.NoError(t, err)
	require.Equal(t, []string{"a", "c"}, got)
	require.Empty(t, d.queries)
	require.Equal(t, 1, d.scans)
}
