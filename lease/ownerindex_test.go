package lease

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/checkpoint"
)

// indexDynamo is a table that may or may not have the owner index: it
// records CreateTable and answers DescribeTable, Scan (every item, one page)
// and Query on the index (one owner's keys, in pages of one), or the
// scripted Query error (the SDK's typed errors).
type indexDynamo struct {
	DynamoDBAPI
	exists, index bool
	items         []map[string]types.AttributeValue
	created       *dynamodb.CreateTableInput
	queryErr      error
	queries       []*dynamodb.QueryInput
	scans         int
}

func (d *indexDynamo) DescribeTable(context.Context, *dynamodb.DescribeTableInput, ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error) {
	if !d.exists {
		return nil, &types.ResourceNotFoundException{Message: aws.String("no table")}
	}
	t := &types.TableDescription{TableStatus: types.TableStatusActive}
	if d.index {
		t.GlobalSecondaryIndexes = []types.GlobalSecondaryIndexDescription{{
			IndexName: aws.String(OwnerIndexName), IndexStatus: types.IndexStatusActive,
			KeySchema: []types.KeySchemaElement{
				{AttributeName: aws.String(AttrLeaseOwner), KeyType: types.KeyTypeHash},
				{AttributeName: aws.String(AttrLeaseKey), KeyType: types.KeyTypeRange},
			},
		}}
	}
	return &dynamodb.DescribeTableOutput{Table: t}, nil
}

func (d *indexDynamo) CreateTable(_ context.Context, in *dynamodb.CreateTableInput, _ ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error) {
	d.created, d.exists, d.index = in, true, len(in.GlobalSecondaryIndexes) > 0
	return &dynamodb.CreateTableOutput{}, nil
}

func (d *indexDynamo) Scan(context.Context, *dynamodb.ScanInput, ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	d.scans++
	return &dynamodb.ScanOutput{Items: d.items}, nil
}

func (d *indexDynamo) Query(_ context.Context, in *dynamodb.QueryInput, _ ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	cp := *in
	d.queries = append(d.queries, &cp)
	if d.queryErr != nil {
		return nil, d.queryErr
	}
	owner := in.ExpressionAttributeValues[":o"].(*types.AttributeValueMemberS).Value
	var after string
	if in.ExclusiveStartKey != nil {
		after = in.ExclusiveStartKey[AttrLeaseKey].(*types.AttributeValueMemberS).Value
	}
	for _, it := range d.items {
		o, ok := it[AttrLeaseOwner].(*types.AttributeValueMemberS)
		k := it[AttrLeaseKey].(*types.AttributeValueMemberS).Value
		if !ok || o.Value != owner || k <= after {
			continue
		}
		// Keys only, one per page.
		key := map[string]types.AttributeValue{AttrLeaseKey: it[AttrLeaseKey], AttrLeaseOwner: it[AttrLeaseOwner]}
		return &dynamodb.QueryOutput{Items: []map[string]types.AttributeValue{key}, LastEvaluatedKey: key}, nil
	}
	return &dynamodb.QueryOutput{}, nil
}

func ownedItems(t *testing.T) []map[string]types.AttributeValue {
	var out []map[string]types.AttributeValue
	for _, l := range []Lease{
		{Key: "a", Owner: "w1", Counter: 3}, {Key: "b", Owner: "w2", Counter: 1},
		{Key: "c", Owner: "w1", Counter: 9}, {Key: "d"},
	} {
		l.Checkpoint = checkpoint.TrimHorizon
		av, err := MarshalItem(l)
		require.NoError(t, err)
		out = append(out, av)
	}
	return out
}

func TestDynamoStoreCreatesTableWithKCLOwnerIndex(t *testing.T) {
	d := &indexDynamo{}
	s, err := NewDynamoStore(context.Background(), d, "t")
	require.NoError(t, err)
	require.True(t, s.HasOwnerIndex())
	require.Len(t, d.created.GlobalSecondaryIndexes, 1)
	gsi := d.created.GlobalSecondaryIndexes[0]
	require.Equal(t, OwnerIndexName, aws.ToString(gsi.IndexName))
	require.Equal(t, []types.KeySchemaElement{
		{AttributeName: aws.String("leaseOwner"), KeyType: types.KeyTypeHash},
		{AttributeName: aws.String("leaseKey"), KeyType: types.KeyTypeRange},
	}, gsi.KeySchema)
	require.Equal(t, types.ProjectionTypeKeysOnly, gsi.Projection.ProjectionType)
	require.Contains(t, d.created.AttributeDefinitions, types.AttributeDefinition{AttributeName: aws.String("leaseOwner"), AttributeType: types.ScalarAttributeTypeS})

	d = &indexDynamo{}
	s, err = NewDynamoStore(context.Background(), d, "t", WithoutOwnerIndex())
	require.NoError(t, err)
	require.False(t, s.HasOwnerIndex())
	require.Empty(t, d.created.GlobalSecondaryIndexes)
	require.Len(t, d.created.AttributeDefinitions, 1)
}

func TestDynamoStoreListOwnedQueriesTheIndex(t *testing.T) {
	d := &indexDynamo{exists: true, index: true, items: ownedItems(t)}
	s, err := NewDynamoStore(context.Background(), d, "t")
	require.NoError(t, err)
	got, err := s.ListOwned(context.Background(), "w1")
	require.NoError(t, err)
	require.Equal(t, []string{"a", "c"}, got)
	require.Zero(t, d.scans, "the index answers: no scan")
	require.Len(t, d.queries, 3, "followed LastEvaluatedKey to the end")
	require.Equal(t, OwnerIndexName, aws.ToString(d.queries[0].IndexName))
	require.Equal(t, map[string]string{"#o": "leaseOwner"}, d.queries[0].ExpressionAttributeNames)
}

func TestDynamoStoreListOwnedFallsBackToScan(t *testing.T) {
	ctx := context.Background()
	// A table without the index.
	d := &indexDynamo{exists: true, items: ownedItems(t)}
	s, err := NewDynamoStore(ctx, d, "t")
	require.NoError(t, err)
	require.False(t, s.HasOwnerIndex())
	got, err := s.ListOwned(ctx, "w1")
	require.NoError(t, err)
	require.Equal(t, []string{"a", "c"}, got)
	require.Empty(t, d.queries)
	require.Equal(t, 1, d.scans)

	// An index that disappears (the SDK's typed errors), once for good.
	for _, qerr := range []error{
		&types.ResourceNotFoundException{Message: aws.String("Requested resource not found")},
		// The SDK has no typed error for ValidationException.
		&smithy.GenericAPIError{Code: "ValidationException", Message: "The table does not have the specified index"},
	} {
		d := &indexDynamo{exists: true, index: true, items: ownedItems(t), queryErr: qerr}
		s, err := NewDynamoStore(ctx, d, "t")
		require.NoError(t, err)
		for range 2 {
			got, err := s.ListOwned(ctx, "w2")
			require.NoError(t, err)
			require.Equal(t, []string{"b"}, got)
		}
		require.Len(t, d.queries, 1, "not queried again once gone")
		require.Equal(t, 2, d.scans)
		require.False(t, s.HasOwnerIndex())
	}

	// Other errors are returned, and the index kept.
	d = &indexDynamo{exists: true, index: true, items: ownedItems(t), queryErr: &types.ProvisionedThroughputExceededException{Message: aws.String("slow down")}}
	s, err = NewDynamoStore(ctx, d, "t")
	require.NoError(t, err)
	_, err = s.ListOwned(ctx, "w2")
	var pt *types.ProvisionedThroughputExceededException
	require.ErrorAs(t, err, &pt)
	require.True(t, s.HasOwnerIndex())
	require.Zero(t, d.scans)
}
