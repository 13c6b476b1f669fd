package lease

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/checkpoint"
)

// pagingDynamo serves a Scan in pages of two items and scripted UpdateItem
// and GetItem answers.
type pagingDynamo struct {
	DynamoDBAPI
	items      []map[string]types.AttributeValue
	scans      []*dynamodb.ScanInput
	updateErr  error
	getItem    map[string]types.AttributeValue
	getInputs  []*dynamodb.GetItemInput
	updateSeen []*dynamodb.UpdateItemInput
}

func (d *pagingDynamo) Scan(_ context.Context, in *dynamodb.ScanInput, _ ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	cp := *in
	d.scans = append(d.scans, &cp)
	start := 0
	if in.ExclusiveStartKey != nil {
		k := in.ExclusiveStartKey[AttrLeaseKey].(*types.AttributeValueMemberS).Value
		for i, it := range d.items {
			if it[AttrLeaseKey].(*types.AttributeValueMemberS).Value == k {
				start = i + 1
			}
		}
	}
	end := min(start+2, len(d.items))
	out := &dynamodb.ScanOutput{Items: d.items[start:end]}
	if end < len(d.items) {
		out.LastEvaluatedKey = keyOf(d.items[end-1][AttrLeaseKey].(*types.AttributeValueMemberS).Value)
	}
	return out, nil
}

func (d *pagingDynamo) UpdateItem(_ context.Context, in *dynamodb.UpdateItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	d.updateSeen = append(d.updateSeen, in)
	return nil, d.updateErr
}

func (d *pagingDynamo) GetItem(_ context.Context, in *dynamodb.GetItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	d.getInputs = append(d.getInputs, in)
	return &dynamodb.GetItemOutput{Item: d.getItem}, nil
}

func TestDynamoStoreListFollowsLastEvaluatedKeyConsistently(t *testing.T) {
	d := &pagingDynamo{}
	for i := range 5 {
		d.items = append(d.items, mustMarshal(t, Lease{Key: fmt.Sprintf("s%d", 4-i), Checkpoint: checkpoint.TrimHorizon}))
	}
	d.items = append(d.items, map[string]types.AttributeValue{
		AttrLeaseKey: &types.AttributeValueMemberS{Value: "metrics"}, AttrEntityType: &types.AttributeValueMemberS{Value: "WORKER_METRICS"},
	})
	s := &DynamoStore{client: d, table: "t"}
	all, err := s.List(context.Background())
	require.NoError(t, err)
	require.Equal(t, []string{"s0", "s1", "s2", "s3", "s4"}, keys(all))
	require.Len(t, d.scans, 3)
	for _, in := range d.scans {
		require.True(t, aws.ToBool(in.ConsistentRead), "scans must be consistent reads")
	}
}

func TestDynamoStoreErrorClassification(t *testing.T) {
	ctx := context.Background()
	held := Lease{Key: "k", Owner: "w1", Counter: 5, Checkpoint: checkpoint.TrimHorizon}

	t.Run("throttling is not a conflict", func(t *testing.T) {
		d := &pagingDynamo{updateErr: &types.ProvisionedThroughputExceededException{Message: aws.String("slow down")}}
		_, err := (&DynamoStore{client: d, table: "t"}).Renew(ctx, held)
		var pte *types.ProvisionedThroughputExceededException
		require.ErrorAs(t, err, &pte)
		require.NotErrorIs(t, err, ErrConflict)
		require.NotErrorIs(t, err, ErrNotFound)
		require.Empty(t, d.getInputs, "no re-read for a write that did not fail its condition")
	})
	t.Run("failed condition, another owner", func(t *testing.T) {
		other := held
		other.Owner, other.Counter = "w2", 6
		d := &pagingDynamo{updateErr: &types.ConditionalCheckFailedException{}, getItem: mustMarshal(t, other)}
		_, err := (&DynamoStore{client: d, table: "t"}).Renew(ctx, held)
		require.ErrorIs(t, err, ErrConflict)
		require.Len(t, d.getInputs, 1)
		require.True(t, aws.ToBool(d.getInputs[0].ConsistentRead), "the re-read must be consistent")
	})
	t.Run("failed condition, our own retried write landed", func(t *testing.T) {
		mine := held
		mine.Counter = 6
		d := &pagingDynamo{updateErr: &types.ConditionalCheckFailedException{}, getItem: mustMarshal(t, mine)}
		got, err := (&DynamoStore{client: d, table: "t"}).Renew(ctx, held)
		require.NoError(t, err)
		require.Equal(t, int64(6), got.Counter)
	})
	t.Run("failed condition, same counter+1 and owner but other content", func(t *testing.T) {
		mine := held
		mine.Counter, mine.Checkpoint = 6, checkpoint.At("9", 0)
		d := &pagingDynamo{updateErr: &types.ConditionalCheckFailedException{}, getItem: mustMarshal(t, mine)}
		_, err := (&DynamoStore{client: d, table: "t"}).UpdateCheckpoint(ctx, held, checkpoint.At("8", 0))
		require.ErrorIs(t, err, ErrConflict, "a different write landed: not ours to claim")
	})
	t.Run("failed condition, lease gone", func(t *testing.T) {
		d := &pagingDynamo{updateErr: &types.ConditionalCheckFailedException{}}
		_, err := (&DynamoStore{client: d, table: "t"}).Renew(ctx, held)
		require.ErrorIs(t, err, ErrNotFound)
	})
	t.Run("conditions on counter and owner", func(t *testing.T) {
		d := &pagingDynamo{updateErr: errors.New("x")}
		s := &DynamoStore{client: d, table: "t"}
		_, _ = s.Renew(ctx, held)
		_, _ = s.UpdateCheckpoint(ctx, held, checkpoint.At("1", 0))
		_, _ = s.UpdatePendingCheckpoint(ctx, held, nil, nil)
		_, _ = s.Release(ctx, held)
		_, _ = s.Take(ctx, held, "w2")
		_, _ = s.UpdateChildShards(ctx, held, nil)
		unowned := held
		unowned.Owner = ""
		_, _ = s.Take(ctx, unowned, "w2")
		require.Len(t, d.updateSeen, 7)
		for i, in := range d.updateSeen {
			want := "#c = :c AND #o = :o AND attribute_not_exists(#co)"
			if i == 6 {
				want = "#c = :c AND (attribute_not_exists(#o) OR attribute_type(#o, :nullType) OR #o = :noOwner) AND attribute_not_exists(#co)"
			}
			require.Equal(t, want, aws.ToString(in.ConditionExpression))
			require.Equal(t, &types.AttributeValueMemberN{Value: "5"}, in.ExpressionAttributeValues[":c"])
			require.Equal(t, &types.AttributeValueMemberN{Value: "6"}, in.ExpressionAttributeValues[":next"])
			if i < 6 {
				require.Equal(t, &types.AttributeValueMemberS{Value: "w1"}, in.ExpressionAttributeValues[":o"])
			}
		}
	})
}

// One unreadable item (a malformed checkpoint written by another tool) must
// not make List fail: the fleet keeps balancing every other lease.
func TestDynamoStoreListSkipsMalformedItems(t *testing.T) {
	d := &pagingDynamo{}
	for i := range 3 {
		d.items = append(d.items, mustMarshal(t, Lease{Key: fmt.Sprintf("s%d", i), Checkpoint: checkpoint.TrimHorizon}))
	}
	bad := mustMarshal(t, Lease{Key: "bad-checkpoint", Checkpoint: checkpoint.TrimHorizon})
	bad[AttrCheckpoint] = &types.AttributeValueMemberS{Value: "not-a-sequence-number"}
	badType := mustMarshal(t, Lease{Key: "bad-counter", Checkpoint: checkpoint.TrimHorizon})
	badType[AttrLeaseCounter] = &types.AttributeValueMemberS{Value: "seven"}
	d.items = append(d.items[:1], append([]map[string]types.AttributeValue{bad, badType}, d.items[1:]...)...)

	var logs bytes.Buffer
	s := &DynamoStore{client: d, table: "t"}
	var o dynamoOptions
	WithLogger(slog.New(slog.NewTextHandler(&logs, nil)))(&o)
	s.log = o.logger
	all, err := s.List(context.Background())
	require.NoError(t, err)
	require.Equal(t, []string{"s0", "s1", "s2"}, keys(all))
	require.Contains(t, logs.String(), "lease=bad-checkpoint")
	require.Contains(t, logs.String(), "lease=bad-counter")
	require.Contains(t, logs.String(), "level=ERROR")
}

// A take of an unowned lease accepts leaseOwner absent, NULL or "" (other
// tools write those); only the counter must match.
func TestDynamoStoreTakeConditionAcceptsEmptyOwner(t *testing.T) {
	d := &pagingDynamo{updateErr: errors.New("recorded only")}
	s := &DynamoStore{client: d, table: "t"}
	_, err := s.Take(context.Background(), Lease{Key: "k", Counter: 3, Checkpoint: checkpoint.TrimHorizon}, "w1")
	require.ErrorIs(t, err, d.updateErr)
	require.Len(t, d.updateSeen, 1)
	in := d.updateSeen[0]
	cond := aws.ToString(in.ConditionExpression)
	require.Contains(t, cond, "attribute_not_exists(#o)")
	require.Contains(t, cond, "attribute_type(#o, :nullType)")
	require.Contains(t, cond, "#o = :noOwner")
	require.Equal(t, &types.AttributeValueMemberS{Value: "NULL"}, in.ExpressionAttributeValues[":nullType"])
	require.Equal(t, &types.AttributeValueMemberS{Value: ""}, in.ExpressionAttributeValues[":noOwner"])
}
