//go:build integration

package lease

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/checkpoint"
	"github.com/shardflow/shardflow/internal/itest"
)

func newDynaliteStore(t *testing.T, client DynamoDBAPI, opts ...DynamoOption) *DynamoStore {
	t.Helper()
	ctx := context.Background()
	table := itest.Name("leases")
	s, err := NewDynamoStore(ctx, client, table, opts...)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = itest.DynamoDB(t).DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(table)})
	})
	return s
}

func TestDynamoStoreConformance(t *testing.T) {
	client := itest.DynamoDB(t)
	testStoreConformance(t, func(t *testing.T) Store { return newDynaliteStore(t, client) },
		func(t *testing.T, s Store, item map[string]types.AttributeValue) {
			_, err := client.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(s.(*DynamoStore).Table()), Item: item})
			require.NoError(t, err)
		})
}

func TestDynamoStoreTableLayoutAndKCLItems(t *testing.T) {
	ctx := context.Background()
	client := itest.DynamoDB(t)
	s := newDynaliteStore(t, client)

	d, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(s.Table())})
	require.NoError(t, err)
	require.Equal(t, types.TableStatusActive, d.Table.TableStatus)
	require.Equal(t, "leaseKey", *d.Table.KeySchema[0].AttributeName)
	require.Len(t, d.Table.KeySchema, 1)
	require.Equal(t, types.BillingModePayPerRequest, d.Table.BillingModeSummary.BillingMode)

	// Opening an existing table is fine.
	_, err = NewDynamoStore(ctx, client, s.Table())
	require.NoError(t, err)
	_, err = NewDynamoStore(ctx, client, itest.Name("absent"), WithoutTableCreation())
	require.Error(t, err)

	// An item KCL for Java wrote, plus a KCL 3.x non-lease item.
	_, err = client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(s.Table()), Item: kclItem()})
	require.NoError(t, err)
	_, err = client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(s.Table()), Item: map[string]types.AttributeValue{
		"leaseKey":   &types.AttributeValueMemberS{Value: "worker-metrics-1"},
		"entityType": &types.AttributeValueMemberS{Value: "WORKER_METRICS"},
	}})
	require.NoError(t, err)
	all, err := s.List(ctx)
	require.NoError(t, err)
	require.Len(t, all, 1, "non-lease items are skipped")
	want, err := UnmarshalItem(kclItem())
	require.NoError(t, err)
	require.Equal(t, want, all[0])

	// Our writes keep KCL's layout and the attributes we do not interpret.
	l, err := s.UpdateCheckpoint(ctx, all[0], checkpoint.At("49590338271490256608559692538361571095921575989136599999", 1))
	require.NoError(t, err)
	raw, err := client.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.Table()), Key: keyOf(l.Key), ConsistentRead: aws.Bool(true)})
	require.NoError(t, err)
	require.Equal(t, map[string]string{
		"leaseKey": "S", "leaseOwner": "S", "leaseCounter": "N", "ownerSwitchesSinceCheckpoint": "N",
		"checkpoint": "S", "checkpointSubSequenceNumber": "N", "parentShardId": "SS", "childShardIds": "SS",
		"startingHashKey": "S", "endingHashKey": "S", "throughputKBps": "other", "checkpointOwner": "S", "entityType": "S",
	}, fixNumber(typesOf(raw.Item), "throughputKBps"))
	require.Equal(t, &types.AttributeValueMemberN{Value: "4184"}, raw.Item["leaseCounter"])
	require.Equal(t, &types.AttributeValueMemberN{Value: "0"}, raw.Item["ownerSwitchesSinceCheckpoint"])

	// A lease we create is read back unchanged.
	mine := Lease{Key: "shardId-000000000042", Checkpoint: checkpoint.TrimHorizon, ParentShardIDs: []string{"shardId-000000000007"}}
	ok, err := s.Create(ctx, mine)
	require.NoError(t, err)
	require.True(t, ok)
	raw, err = client.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.Table()), Key: keyOf(mine.Key), ConsistentRead: aws.Bool(true)})
	require.NoError(t, err)
	av, err := MarshalItem(mine)
	require.NoError(t, err)
	require.Equal(t, av, raw.Item)
}

// fixNumber marks a known-N attribute as "other" so the expected map reads
// clearly; typesOf already reports N, this keeps one code path.
func fixNumber(m map[string]string, k string) map[string]string {
	if m[k] == "N" {
		m[k] = "other"
	}
	return m
}

// countingDynamo counts DynamoDB calls and the items scans read.
type countingDynamo struct {
	DynamoDBAPI
	mu      sync.Mutex
	calls   map[string]int
	scanned int
}

func (c *countingDynamo) add(op string, n int) {
	c.mu.Lock()
	c.calls[op]++
	c.scanned += n
	c.mu.Unlock()
}

func (c *countingDynamo) reset() (map[string]int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	calls, scanned := c.calls, c.scanned
	c.calls, c.scanned = map[string]int{}, 0
	return calls, scanned
}

func (c *countingDynamo) Scan(ctx context.Context, in *dynamodb.ScanInput, o ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	out, err := c.DynamoDBAPI.Scan(ctx, in, o...)
	n := 0
	if err == nil {
		n = int(out.ScannedCount)
	}
	c.add("Scan", n)
	return out, err
}

func (c *countingDynamo) Query(ctx context.Context, in *dynamodb.QueryInput, o ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	out, err := c.DynamoDBAPI.(DynamoDBQueryAPI).Query(ctx, in, o...)
	n := 0
	if err == nil {
		n = int(out.ScannedCount)
	}
	c.add("Query", 0)
	c.mu.Lock()
	c.calls["QueryItems"] += n
	c.mu.Unlock()
	return out, err
}

func (c *countingDynamo) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	c.add("UpdateItem", 0)
	return c.DynamoDBAPI.UpdateItem(ctx, in, o...)
}

func (c *countingDynamo) GetItem(ctx context.Context, in *dynamodb.GetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	c.add("GetItem", 0)
	return c.DynamoDBAPI.GetItem(ctx, in, o...)
}

// TestDynamoSteadyStateCallsPerLeasePerMinute is the measured figure for
// the docs: 3 coordinators on a dynalite table of 12 leases, KCL's default
// timings on the fake clock, DynamoDB calls counted at the client.
func TestDynamoSteadyStateCallsPerLeasePerMinute(t *testing.T) {
	cd := &countingDynamo{DynamoDBAPI: itest.DynamoDB(t), calls: map[string]int{}}
	s := newDynaliteStore(t, cd)
	const minutes = 3
	_, leases := steadyState(t, s, minutes, func() { cd.reset() })
	calls, scanned := cd.reset()
	writes := float64(calls["UpdateItem"]) / float64(leases) / minutes
	reads := float64(scanned+calls["GetItem"]) / float64(leases) / minutes
	t.Logf("DynamoDB, 3 workers x 12 leases, steady state: %.1f writes and %.1f item reads per lease per minute (%.1f Scan calls/min for the fleet; calls %v)",
		writes, reads, float64(calls["Scan"])/minutes, calls)
	require.InDelta(t, 18.1, writes, 0.5)
	require.InDelta(t, 18, reads, 1)
}

// The table cost at 10 workers on dynalite, counted at the DynamoDB client
// (items scanned, GetItems, UpdateItems) as well as at the store: the two
// agree, and reads per lease per minute are ScanFixed's figure (the
// default's choice on a small table).
func TestDynamoTableCostAt10Workers(t *testing.T) {
	cd := &countingDynamo{DynamoDBAPI: itest.DynamoDB(t), calls: map[string]int{}}
	s := newDynaliteStore(t, cd)
	const leases, n, minutes = 30, 10, 3
	c := measureTableCost(t, s, leases, n, minutes, ScanSublinear, true, func() { cd.reset() })
	calls, scanned := cd.reset()
	writes := float64(calls["UpdateItem"]) / leases / minutes
	reads := float64(scanned+calls["GetItem"]) / leases / minutes
	t.Logf("DynamoDB, %d workers x %d leases: %.1f writes and %.1f item reads per lease per minute at the client (store: %.1f and %.1f; calls %v)",
		n, leases, writes, reads, c.writes, c.reads, calls)
	require.InDelta(t, c.writes, writes, 0.5)
	require.InDelta(t, c.reads, reads, 0.5)
	// 6 scans per worker per minute and no probe: on 30 small leases
	// ScanSublinear keeps ScanFixed's schedule (a scan costs fewer read
	// units than the probes would add).
	require.InDelta(t, 6*n, reads, 1.5)
	require.Zero(t, calls["GetItem"])
	require.Zero(t, calls["Query"])
}

// Coordinators on dynalite: a taken lease fences the old holder's
// checkpoint through the real conditional write.
func TestDynamoTakenLeaseCannotCheckpoint(t *testing.T) {
	ctx := context.Background()
	s := newDynaliteStore(t, itest.DynamoDB(t))
	f := newFleet(t, s, 2)
	w1 := f.start("w1")
	require.Len(t, w1.c.Held(), 2)
	ev := w1.eventsOf(Acquired)[0]
	cp := checkpoint.NewCheckpointer(ev.Lease.Key, ev.Writer, ev.Lease.Checkpoint)
	cp.Delivered(checkpoint.At("10", 0))
	require.NoError(t, cp.Checkpoint(ctx))
	cur, err := s.Get(ctx, ev.Lease.Key)
	require.NoError(t, err)
	_, err = s.Take(ctx, cur, "w2")
	require.NoError(t, err)
	cp.Delivered(checkpoint.At("20", 0))
	err = cp.Checkpoint(ctx)
	require.ErrorIs(t, err, checkpoint.ErrLeaseLost)
	require.ErrorIs(t, err, ErrConflict)
	got, err := s.Get(ctx, ev.Lease.Key)
	require.NoError(t, err)
	require.Equal(t, checkpoint.At("10", 0), got.Checkpoint)
}

// A graceful handoff through dynalite's conditional writes.
func TestDynamoHandoffCompletes(t *testing.T) {
	testHandoffCompletes(t, newDynaliteStore(t, itest.DynamoDB(t)))
}

// Workers that crash and shut down cleanly on dynalite.
func TestDynamoFleetFailoverAndHandOver(t *testing.T) {
	s := newDynaliteStore(t, itest.DynamoDB(t))
	f := newFleet(t, s, 12)
	startBalanced(t, f)
	f.advance(2*takeInterval + handoffTime)
	require.Equal(t, map[string]int{"w1": 4, "w2": 4, "w3": 4}, f.owners())
	f.stop("w3")
	f.advance(failover + takeInterval)
	require.Equal(t, map[string]int{"w1": 6, "w2": 6}, f.owners())
	require.NoError(t, f.workers["w2"].c.ReleaseAll(context.Background()))
	f.stop("w2")
	f.advance(takeInterval)
	require.Equal(t, map[string]int{"w1": 12}, f.owners())
}

// The KCL multi-stream takeover on dynalite, items put as KCL writes them.
func TestKCLMultiStreamTakeoverDynalite(t *testing.T) {
	client := itest.DynamoDB(t)
	s := newDynaliteStore(t, client)
	testKCLMultiStreamTakeover(t, s, func(it map[string]types.AttributeValue) {
		_, err := client.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(s.Table()), Item: it})
		require.NoError(t, err)
	})
	// Items we created in multi-stream mode read back from DynamoDB with
	// KCL's types.
	_, _, err := SyncShards(context.Background(), s, []Shard{{StreamID: orders, ID: "shardId-000000000009"}}, checkpoint.TrimHorizon)
	require.NoError(t, err)
	out, err := client.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String(s.Table()), ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{"leaseKey": &types.AttributeValueMemberS{Value: orders + ":shardId-000000000009"}}})
	require.NoError(t, err)
	require.Equal(t, &types.AttributeValueMemberS{Value: orders}, out.Item["streamName"])
	require.Equal(t, &types.AttributeValueMemberS{Value: "shardId-000000000009"}, out.Item["shardId"])
}

// dynalite@4.0.0 supports global secondary indexes created with the table
// and Query on them (its UpdateTable accepts an index Create but does
// nothing), so the owner index path runs against it: a table
// NewDynamoStore creates has KCL 3.x's LeaseOwnerToLeaseKeyIndex and
// ListOwned reads it with Query, not Scan; without it, a Scan.
func TestDynamoOwnerIndex(t *testing.T) {
	ctx := context.Background()
	client := itest.DynamoDB(t)
	cd := &countingDynamo{DynamoDBAPI: client, calls: map[string]int{}}
	s := newDynaliteStore(t, cd)
	require.True(t, s.HasOwnerIndex())
	d, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(s.Table())})
	require.NoError(t, err)
	require.Len(t, d.Table.GlobalSecondaryIndexes, 1)
	gsi := d.Table.GlobalSecondaryIndexes[0]
	require.Equal(t, OwnerIndexName, aws.ToString(gsi.IndexName))
	require.Equal(t, types.ProjectionTypeKeysOnly, gsi.Projection.ProjectionType)
	require.Equal(t, "leaseOwner", aws.ToString(gsi.KeySchema[0].AttributeName))
	require.Equal(t, types.KeyTypeHash, gsi.KeySchema[0].KeyType)
	require.Equal(t, "leaseKey", aws.ToString(gsi.KeySchema[1].AttributeName))

	noIndex := itest.Name("leases-noindex")
	plain, err := NewDynamoStore(ctx, cd, noIndex, WithoutOwnerIndex())
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = client.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(noIndex)})
	})
	require.False(t, plain.HasOwnerIndex())
	// Opened again with the default options: no index to use.
	reopened, err := NewDynamoStore(ctx, cd, noIndex)
	require.NoError(t, err)
	require.False(t, reopened.HasOwnerIndex())

	for _, st := range []*DynamoStore{s, plain} {
		for i := range 6 {
			l := Lease{Key: fmt.Sprintf("shardId-%012d", i), Checkpoint: checkpoint.TrimHorizon}
			_, err := st.Create(ctx, l)
			require.NoError(t, err)
			if i%2 == 0 {
				_, err = st.Take(ctx, l, "w1")
				require.NoError(t, err)
			}
		}
		cd.reset()
		got, err := st.ListOwned(ctx, "w1")
		require.NoError(t, err)
		require.Equal(t, []string{"shardId-000000000000", "shardId-000000000002", "shardId-000000000004"}, got)
		calls, scanned := cd.reset()
		if st == s {
			require.Zero(t, calls["Scan"], "the index answers")
			require.Positive(t, calls["Query"])
		} else {
			require.Zero(t, calls["Query"])
			require.Equal(t, 6, scanned, "a scan of the table")
		}
	}
}

// dynalite's answer to a Query on an index the table does not have is
// what indexMissing recognises (the same message as DynamoDB's), and
// ListOwned("") lists the unowned leases without giving the index up.
func TestDynamoOwnerIndexMissingAndEmptyOwner(t *testing.T) {
	ctx := context.Background()
	client := itest.DynamoDB(t)
	s := newDynaliteStore(t, client)
	require.True(t, s.HasOwnerIndex())
	for i := range 4 {
		l := Lease{Key: fmt.Sprintf("shardId-%012d", i), Checkpoint: checkpoint.TrimHorizon}
		_, err := s.Create(ctx, l)
		require.NoError(t, err)
		if i%2 == 0 {
			_, err = s.Take(ctx, l, "w1")
			require.NoError(t, err)
		}
	}
	got, err := s.ListOwned(ctx, "")
	require.NoError(t, err)
	require.Equal(t, []string{"shardId-000000000001", "shardId-000000000003"}, got)
	require.True(t, s.HasOwnerIndex())

	noIndex := itest.Name("leases-noindex")
	plain, err := NewDynamoStore(ctx, client, noIndex, WithoutOwnerIndex())
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = client.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(noIndex)})
	})
	plain.ownerIndex.Store(true) // as if the index had been deleted since
	got, err = plain.ListOwned(ctx, "w1")
	require.NoError(t, err)
	require.Empty(t, got)
	require.False(t, plain.HasOwnerIndex(), "dynalite's ValidationException says the index is missing")
}

// A crash at 6 workers on dynalite (60 leases of 1.3 KB, where reading a
// worker's leases costs fewer read units than a scan), with the owner
// index (a table NewDynamoStore created) and without it: either way the
// crashed worker's leases go to live workers without any live worker
// losing one. With the index they are normally taken by targeted reads (a
// Query of the index and a GetItem each) rather than scans; that is
// logged, not asserted, since a read that times out on a loaded machine
// falls back to a scan.
func TestDynamoCrashTakeoverWithAndWithoutOwnerIndex(t *testing.T) {
	for _, index := range []bool{true, false} {
		t.Run(fmt.Sprintf("index=%v", index), func(t *testing.T) {
			cd := &countingDynamo{DynamoDBAPI: itest.DynamoDB(t), calls: map[string]int{}}
			var opts []DynamoOption
			if !index {
				opts = append(opts, WithoutOwnerIndex())
			}
			s := newDynaliteStore(t, cd, opts...)
			require.Equal(t, index, s.HasOwnerIndex())
			fillMidStream(t, s, 60, 1024)
			f := balancedFleet(t, s, 60, 6, ScanSublinear)
			cd.reset()
			leases, targeted, scanned := crashTakeover(t, f, "w1")
			calls, _ := cd.reset()
			t.Logf("index %v: %d leases of the crashed worker, %d taken by targeted reads, %d by scans; calls %v", index, len(leases), targeted, scanned, calls)
			require.Equal(t, len(leases), targeted+scanned)
			f.requireConsistent()
			if !index {
				require.Zero(t, targeted)
				require.Zero(t, calls["Query"])
			}
		})
	}
}
