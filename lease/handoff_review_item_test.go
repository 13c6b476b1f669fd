package lease

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/checkpoint"
)

// Review #8: the item as KCL 3.x writes it. A renewal writes
// throughputKBps, 0 included (KCL never removes it); a mark is conditional
// on the lease not being finished; throughput keeps 6 decimals.
func TestReviewHandoffItemAsKCL3(t *testing.T) {
	ctx := context.Background()
	d := &pagingDynamo{updateErr: errors.New("recorded only")}
	s := &DynamoStore{client: d, table: "t"}
	l := Lease{Key: "k", Owner: "w1", Counter: 3, Checkpoint: checkpoint.At("5", 0)}

	_, err := s.Renew(ctx, l)
	require.ErrorIs(t, err, d.updateErr)
	in := d.updateSeen[0]
	require.Contains(t, aws.ToString(in.UpdateExpression), "SET")
	require.NotContains(t, aws.ToString(in.UpdateExpression), "REMOVE", "throughputKBps is not removed at 0")
	var tp types.AttributeValue
	for ph, name := range in.ExpressionAttributeNames {
		if name == AttrThroughputKBps {
			require.Contains(t, aws.ToString(in.UpdateExpression), ph+" = ")
			for vp, v := range in.ExpressionAttributeValues {
				if containsAssign(aws.ToString(in.UpdateExpression), ph, vp) {
					tp = v
				}
			}
		}
	}
	require.Equal(t, &types.AttributeValueMemberN{Value: "0"}, tp)

	_, err = s.MarkHandoff(ctx, l, "w2")
	require.ErrorIs(t, err, d.updateErr)
	in = d.updateSeen[1]
	require.Contains(t, aws.ToString(in.ConditionExpression), "#cp <> :shardEnd")
	require.Equal(t, AttrCheckpoint, in.ExpressionAttributeNames["#cp"])
	require.Equal(t, &types.AttributeValueMemberS{Value: checkpoint.SentinelShardEnd}, in.ExpressionAttributeValues[":shardEnd"])

	_, err = NewMemoryStore().MarkHandoff(ctx, Lease{Key: "k", Owner: "w1", Checkpoint: checkpoint.ShardEnd}, "w2")
	require.Error(t, err, "a finished lease is not marked")

	// 1 byte in one second: 0.000488 KiB/s after smoothing, not 0.
	t0 := time.Unix(0, 0)
	h := &heldLease{rateSince: t0}
	h.bytes.Add(1)
	require.Equal(t, 0.000488, h.measure(t0.Add(time.Second)))
}

func containsAssign(expr, ph, vp string) bool {
	set, _, _ := strings.Cut(strings.TrimPrefix(expr, "SET "), " REMOVE ")
	return slices.Contains(strings.Split(set, ", "), ph+" = "+vp)
}
