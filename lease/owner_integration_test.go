//go:build integration

package lease

import (
	"bytes"
	"context"
	"log/slog"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/checkpoint"
	"github.com/shardflow/shardflow/internal/itest"
)

// Leases whose leaseOwner another tool wrote as "" or NULL are unowned: the
// store's take accepts them on the observed counter, and the coordinator
// takes them in its first pass. A take on a stale counter still fails.
// Such items exist only in tables without the owner index: DynamoDB (and
// dynalite) reject a leaseOwner that is "" or NULL as the index's key.
func TestDynamoTakeLeaseWithEmptyOrNullOwner(t *testing.T) {
	ctx := context.Background()
	client := itest.DynamoDB(t)
	s := newDynaliteStore(t, client, WithoutOwnerIndex())
	put := func(key string, owner types.AttributeValue) {
		t.Helper()
		item := mustMarshal(t, Lease{Key: key, Counter: 7, Checkpoint: checkpoint.TrimHorizon})
		item[AttrLeaseOwner] = owner
		_, err := client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(s.Table()), Item: item})
		require.NoError(t, err)
	}
	put("empty", &types.AttributeValueMemberS{Value: ""})
	put("null", &types.AttributeValueMemberNULL{Value: true})

	for _, k := range []string{"empty", "null"} {
		l, err := s.Get(ctx, k)
		require.NoError(t, err)
		require.Equal(t, "", l.Owner, k)
		stale := l
		stale.Counter--
		_, err = s.Take(ctx, stale, "w0")
		require.ErrorIs(t, err, ErrConflict, "%s: stale counter", k)
	}

	c, _ := manual(t, s, Config{})
	c.takePass(ctx, false)
	require.Len(t, c.Held(), 2)
	for _, k := range []string{"empty", "null"} {
		got, err := s.Get(ctx, k)
		require.NoError(t, err)
		require.Equal(t, "w1", got.Owner, k)
		require.Equal(t, int64(8), got.Counter, k)
		require.Equal(t, int64(0), got.OwnerSwitchesSinceCheckpoint, "%s: unowned, so no owner switch", k)
	}
}

// An item List cannot read (a malformed checkpoint) is logged and skipped;
// the others are listed and taken.
func TestDynamoListSkipsMalformedItem(t *testing.T) {
	ctx := context.Background()
	client := itest.DynamoDB(t)
	var logs bytes.Buffer
	table := itest.Name("leases")
	s, err := NewDynamoStore(ctx, client, table, WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = client.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(table)})
	})
	seed(t, s, "good1", "good2")
	bad := mustMarshal(t, Lease{Key: "bad", Checkpoint: checkpoint.TrimHorizon})
	bad[AttrCheckpoint] = &types.AttributeValueMemberS{Value: "garbage"}
	_, err = client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: bad})
	require.NoError(t, err)

	all, err := s.List(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"good1", "good2"}, keys(all))
	require.Contains(t, logs.String(), "lease=bad")

	c, _ := manual(t, s, Config{})
	c.takePass(ctx, true)
	require.Len(t, c.Held(), 2)
}

// On DynamoDB: a child whose parent item is malformed is not taken, and
// Get tells such an item from a missing one.
func TestDynamoChildOfUnreadableParentNotTaken(t *testing.T) {
	ctx := context.Background()
	client := itest.DynamoDB(t)
	s := newDynaliteStore(t, client)
	bad := mustMarshal(t, Lease{Key: "parent", Checkpoint: checkpoint.TrimHorizon})
	bad[AttrCheckpoint] = &types.AttributeValueMemberS{Value: "garbage"}
	_, err := client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(s.Table()), Item: bad})
	require.NoError(t, err)
	_, err = s.Create(ctx, Lease{Key: "child", Checkpoint: checkpoint.TrimHorizon, ParentShardIDs: []string{"parent"}})
	require.NoError(t, err)
	_, err = s.Get(ctx, "parent")
	require.ErrorIs(t, err, ErrUnreadable)
	_, err = s.Get(ctx, "missing")
	require.ErrorIs(t, err, ErrNotFound)

	c, _ := manual(t, s, Config{})
	c.takePass(ctx, true)
	require.Empty(t, c.Held())
}
