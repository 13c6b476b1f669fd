//go:build integration

package lease

import (
	"context"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/checkpoint"
	"github.com/shardflow/shardflow/internal/itest"
)

// Workers starting together all find the table missing and create it; the
// losers get ResourceInUseException and must wait, not fail.
func TestDynamoConcurrentTableCreation(t *testing.T) {
	client := itest.DynamoDB(t)
	table := itest.Name("race")
	t.Cleanup(func() {
		_, _ = client.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(table)})
	})
	const n = 4
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = NewDynamoStore(context.Background(), client, table)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
}

// Empty and duplicated sets (which DynamoDB rejects or stores as NULL) are
// normalised on Create, and the stored item matches MemoryStore's lease.
func TestDynamoCreateWithEmptyAndDuplicateSets(t *testing.T) {
	ctx := context.Background()
	s := newDynaliteStore(t, itest.DynamoDB(t))
	in := Lease{Key: "k", Checkpoint: checkpoint.TrimHorizon, ParentShardIDs: []string{"p", "p"}, ChildShardIDs: []string{}, PendingCheckpointState: []byte{}}
	ok, err := s.Create(ctx, in)
	require.NoError(t, err)
	require.True(t, ok)
	got, err := s.Get(ctx, "k")
	require.NoError(t, err)
	mem := NewMemoryStore()
	_, err = mem.Create(ctx, in)
	require.NoError(t, err)
	want, err := mem.Get(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, want, got)
	raw, err := itest.DynamoDB(t).GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.Table()), Key: keyOf("k"), ConsistentRead: aws.Bool(true)})
	require.NoError(t, err)
	require.NotContains(t, raw.Item, AttrChildShardIDs)
	require.NotContains(t, raw.Item, AttrPendingCheckpointState)
}
