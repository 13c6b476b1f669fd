package lease

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/checkpoint"
)

const (
	orders   = "123456789012:orders:1700000000"
	payments = "123456789012:payments:1700000500"
)

func TestStreamIdentifier(t *testing.T) {
	id, err := ParseStreamIdentifier(orders)
	require.NoError(t, err)
	require.Equal(t, StreamIdentifier{AccountID: "123456789012", StreamName: "orders", CreationEpoch: 1700000000}, id)
	require.Equal(t, orders, id.String())
	for _, bad := range []string{"", "orders", "x:orders:1", "1:orders", "1:orders:0", "1:orders:-3", "1:orders:1e3", "1::5", "1:a:b:2"} {
		_, err := ParseStreamIdentifier(bad)
		require.ErrorIs(t, err, ErrBadStreamIdentifier, bad)
	}
	require.Equal(t, orders+":shardId-000000000001", MultiStreamKey(orders, "shardId-000000000001"))
	require.Equal(t, "shardId-000000000001", MultiStreamKey("", "shardId-000000000001"), "single-stream keys are bare shard ids")
	s, sh, err := ParseMultiStreamKey(orders + ":shardId-000000000001")
	require.NoError(t, err)
	require.Equal(t, []string{orders, "shardId-000000000001"}, []string{s, sh})
	_, _, err = ParseMultiStreamKey("shardId-000000000001")
	require.ErrorIs(t, err, ErrBadStreamIdentifier)
}

// kclMultiStreamItem is a lease item as KCL's multi-stream serializer
// writes it: the key is account:stream:epoch:shardId, streamName holds the
// stream identifier (not the bare name), shardId the bare shard id, and
// parentShardId/childShardIds bare shard ids.
func kclMultiStreamItem(stream, shard, owner, cp string, parents, children []string) map[string]types.AttributeValue {
	it := map[string]types.AttributeValue{
		"leaseKey":                     &types.AttributeValueMemberS{Value: stream + ":" + shard},
		"leaseCounter":                 &types.AttributeValueMemberN{Value: "42"},
		"ownerSwitchesSinceCheckpoint": &types.AttributeValueMemberN{Value: "0"},
		"checkpoint":                   &types.AttributeValueMemberS{Value: cp},
		"checkpointSubSequenceNumber":  &types.AttributeValueMemberN{Value: "0"},
		"startingHashKey":              &types.AttributeValueMemberS{Value: "0"},
		"endingHashKey":                &types.AttributeValueMemberS{Value: "340282366920938463463374607431768211455"},
		"streamName":                   &types.AttributeValueMemberS{Value: stream},
		"shardId":                      &types.AttributeValueMemberS{Value: shard},
	}
	if owner != "" {
		it["leaseOwner"] = &types.AttributeValueMemberS{Value: owner}
	}
	if len(parents) > 0 {
		it["parentShardId"] = &types.AttributeValueMemberSS{Value: parents}
	}
	if len(children) > 0 {
		it["childShardIds"] = &types.AttributeValueMemberSS{Value: children}
	}
	return it
}

func TestReadKCLMultiStreamItem(t *testing.T) {
	for _, withEntity := range []bool{false, true} {
		it := kclMultiStreamItem(orders, "shardId-000000000003", "kcl-worker", "4959033827", []string{"shardId-000000000001"}, nil)
		if withEntity { // KCL 3.x
			it["entityType"] = &types.AttributeValueMemberS{Value: "LEASE"}
		}
		l, err := UnmarshalItem(it)
		require.NoError(t, err)
		require.Equal(t, orders+":shardId-000000000003", l.Key)
		require.Equal(t, orders, l.StreamID)
		require.Equal(t, "shardId-000000000003", l.ShardID)
		require.Equal(t, "shardId-000000000003", l.Shard())
		require.Equal(t, []string{"shardId-000000000001"}, l.ParentShardIDs, "parents stay bare ids")
		require.Equal(t, []string{orders + ":shardId-000000000001"}, l.ParentKeys())
		require.Equal(t, checkpoint.At("4959033827", 0), l.Checkpoint)
		require.Empty(t, l.Extra["streamName"], "streamName is interpreted, not carried as Extra")

		back, err := MarshalItem(l)
		require.NoError(t, err)
		require.Equal(t, it, back, "our item for a KCL multi-stream lease is KCL's item")
	}

	// A single-stream lease maps parents to bare keys.
	l := Lease{Key: "shardId-000000000002", ParentShardIDs: []string{"shardId-000000000000"}}
	require.Equal(t, []string{"shardId-000000000000"}, l.ParentKeys())
	require.Equal(t, "shardId-000000000002", l.Shard())

	// A key that is not streamName:shardId cannot be mapped to its
	// parents: unreadable rather than guessed.
	bad := kclMultiStreamItem(orders, "shardId-000000000003", "", "TRIM_HORIZON", nil, nil)
	bad["shardId"] = &types.AttributeValueMemberS{Value: "shardId-000000000004"}
	_, err := UnmarshalItem(bad)
	require.ErrorIs(t, err, ErrUnreadable)
	bad = kclMultiStreamItem(orders, "shardId-000000000003", "", "TRIM_HORIZON", nil, nil)
	bad["streamName"] = &types.AttributeValueMemberS{Value: "orders"}
	_, err = UnmarshalItem(bad)
	require.ErrorIs(t, err, ErrUnreadable)
}

// Leases shardflow creates in multi-stream mode have KCL's names and types,
// exactly as KCL's multi-stream serializer writes them.
func TestOurMultiStreamItemLayout(t *testing.T) {
	sh := Shard{StreamID: payments, ID: "shardId-000000000004", ParentIDs: []string{"shardId-000000000001", "shardId-000000000002"}, StartingHashKey: "0", EndingHashKey: "99"}
	av, err := MarshalItem(sh.lease(checkpoint.TrimHorizon))
	require.NoError(t, err)
	require.Equal(t, map[string]string{
		"leaseKey": "S", "leaseCounter": "N", "ownerSwitchesSinceCheckpoint": "N",
		"checkpoint": "S", "checkpointSubSequenceNumber": "N", "parentShardId": "SS",
		"startingHashKey": "S", "endingHashKey": "S", "streamName": "S", "shardId": "S",
	}, typesOf(av))
	require.Equal(t, &types.AttributeValueMemberS{Value: payments + ":shardId-000000000004"}, av["leaseKey"])
	require.Equal(t, &types.AttributeValueMemberS{Value: payments}, av["streamName"])
	require.Equal(t, &types.AttributeValueMemberS{Value: "shardId-000000000004"}, av["shardId"])
	require.Equal(t, &types.AttributeValueMemberSS{Value: []string{"shardId-000000000001", "shardId-000000000002"}}, av["parentShardId"])

	_, err = MarshalItem(Lease{Key: "shardId-1", StreamID: payments, ShardID: "shardId-1", Checkpoint: checkpoint.TrimHorizon})
	require.ErrorIs(t, err, ErrBadStreamIdentifier, "key must be streamName:shardId")
}

// Two streams with the same shard ids share one table: keys never collide,
// each stream's lineage is its own, and cleanup maps bare child ids.
func TestSyncShardsMultiStream(t *testing.T) {
	ctx := context.Background()
	split := func(stream string) []Shard {
		return []Shard{
			{StreamID: stream, ID: "shardId-000000000000", Closed: true},
			{StreamID: stream, ID: "shardId-000000000001", ParentIDs: []string{"shardId-000000000000"}},
			{StreamID: stream, ID: "shardId-000000000002", ParentIDs: []string{"shardId-000000000000"}},
		}
	}
	s := NewMemoryStore()
	made, _, err := SyncShards(ctx, s, split(orders), checkpoint.TrimHorizon)
	require.NoError(t, err)
	require.Equal(t, []string{orders + ":shardId-000000000000", orders + ":shardId-000000000001", orders + ":shardId-000000000002"}, keys(made))
	require.Equal(t, checkpoint.TrimHorizon, made[1].Checkpoint)
	// LATEST on the other stream: its closed parent has no leased
	// ancestry in *that* stream (orders' parent lease must not count).
	made, _, err = SyncShards(ctx, s, split(payments), checkpoint.Latest)
	require.NoError(t, err)
	require.Equal(t, []string{payments + ":shardId-000000000001", payments + ":shardId-000000000002"}, keys(made))
	require.Equal(t, checkpoint.Latest, made[0].Checkpoint)
	got, err := s.Get(ctx, payments+":shardId-000000000001")
	require.NoError(t, err)
	require.Equal(t, payments, got.StreamID)
	require.Equal(t, "shardId-000000000001", got.ShardID)
	require.Equal(t, []string{"shardId-000000000000"}, got.ParentShardIDs)

	finish := func(key string, pos checkpoint.Position) {
		l, err := s.Get(ctx, key)
		require.NoError(t, err)
		l, err = s.Take(ctx, l, "w")
		require.NoError(t, err)
		_, err = s.UpdateCheckpoint(ctx, l, pos)
		require.NoError(t, err)
	}
	finish(orders+":shardId-000000000000", checkpoint.ShardEnd)
	l, err := s.Get(ctx, orders+":shardId-000000000000")
	require.NoError(t, err)
	_, err = s.UpdateChildShards(ctx, l, []string{"shardId-000000000001", "shardId-000000000002"})
	require.NoError(t, err)
	finish(orders+":shardId-000000000001", checkpoint.At("5", 0))
	// payments' children have started, orders' second child has not: the
	// orders parent stays (bare child ids must not be read as payments').
	finish(payments+":shardId-000000000001", checkpoint.At("5", 0))
	finish(payments+":shardId-000000000002", checkpoint.At("5", 0))
	listed, err := s.List(ctx)
	require.NoError(t, err)
	deleted, err := DeleteFinished(ctx, s, listed, nil)
	require.NoError(t, err)
	require.Empty(t, deleted)
	finish(orders+":shardId-000000000002", checkpoint.At("6", 0))
	listed, err = s.List(ctx)
	require.NoError(t, err)
	deleted, err = DeleteFinished(ctx, s, listed, nil)
	require.NoError(t, err)
	require.Equal(t, []string{orders + ":shardId-000000000000"}, deleted)

	made, err = CreateChildLeases(ctx, NewMemoryStore(), split(orders)[1:])
	require.NoError(t, err)
	require.Equal(t, orders+":shardId-000000000001", made[0].Key)
	require.Equal(t, "shardId-000000000001", made[0].ShardID)
}

// kclMultiStreamTable is a table as KCL 2.x/3.x multi-stream workers leave
// it: two streams with the same shard ids, checkpoints mid-shard, a closed
// parent with two children in orders (parent not finished yet), a finished
// parent in payments whose child may start, and one SHARD_END lease.
func kclMultiStreamTable() []map[string]types.AttributeValue {
	return []map[string]types.AttributeValue{
		kclMultiStreamItem(orders, "shardId-000000000000", "kcl-a", "49590000000000000000000000000000000000000000000000000100", nil, nil),
		kclMultiStreamItem(orders, "shardId-000000000001", "", "TRIM_HORIZON", []string{"shardId-000000000000"}, nil),
		kclMultiStreamItem(orders, "shardId-000000000002", "", "TRIM_HORIZON", []string{"shardId-000000000000"}, nil),
		kclMultiStreamItem(payments, "shardId-000000000000", "kcl-b", "SHARD_END", nil, []string{"shardId-000000000001"}),
		kclMultiStreamItem(payments, "shardId-000000000001", "kcl-b", "49590000000000000000000000000000000000000000000000000777", []string{"shardId-000000000000"}, nil),
		kclMultiStreamItem(payments, "shardId-000000000005", "", "LATEST", nil, nil),
	}
}

// A KCL-written multi-stream table is taken over exactly: every lease with
// KCL's checkpoint, orders' children wait for their parent through the
// stream-qualified key (a bare "shardId-000000000000" is no lease, and
// payments' finished shard of that id must not release them), the items
// keep KCL's attributes through our writes.
func testKCLMultiStreamTakeover(t *testing.T, s Store, putItem func(map[string]types.AttributeValue)) {
	ctx := context.Background()
	for _, it := range kclMultiStreamTable() {
		putItem(it)
	}
	c, clk := manual(t, s, Config{WorkerID: "sf-1"})
	// The KCL workers stopped: their leases expire on our clock.
	c.takePass(ctx, false)
	require.Equal(t, []string{payments + ":shardId-000000000005"}, keys(c.Held()), "only unowned, unblocked leases at first sight")
	clk.Advance(c.cfg.FailoverTime + 1)
	c.takePass(ctx, true)
	held := map[string]Lease{}
	for _, l := range c.Held() {
		held[l.Key] = l
	}
	require.Contains(t, held, orders+":shardId-000000000000")
	require.Contains(t, held, payments+":shardId-000000000001", "child of a finished parent starts")
	require.NotContains(t, held, orders+":shardId-000000000001", "child waits for its parent in its own stream")
	require.NotContains(t, held, orders+":shardId-000000000002")
	require.NotContains(t, held, payments+":shardId-000000000000", "SHARD_END is not taken")
	require.Equal(t, checkpoint.At("49590000000000000000000000000000000000000000000000000100", 0), held[orders+":shardId-000000000000"].Checkpoint)
	require.Equal(t, checkpoint.At("49590000000000000000000000000000000000000000000000000777", 0), held[payments+":shardId-000000000001"].Checkpoint)
	require.Equal(t, checkpoint.Latest, held[payments+":shardId-000000000005"].Checkpoint)

	// Our checkpoint keeps KCL's layout; the parent's SHARD_END releases
	// its children.
	require.NoError(t, c.WriteCheckpoint(ctx, orders+":shardId-000000000000", checkpoint.ShardEnd))
	require.NoError(t, c.WriteCheckpoint(ctx, payments+":shardId-000000000001", checkpoint.At("49590000000000000000000000000000000000000000000000000800", 0)))
	got, err := s.Get(ctx, payments+":shardId-000000000001")
	require.NoError(t, err)
	require.Equal(t, payments, got.StreamID)
	require.Equal(t, "shardId-000000000001", got.ShardID)
	require.Equal(t, "sf-1", got.Owner)
	require.Zero(t, got.OwnerSwitchesSinceCheckpoint, "checkpoint resets the switches")
	require.NoError(t, c.Release(ctx, orders+":shardId-000000000000"))
	c.takePass(ctx, true)
	held = map[string]Lease{}
	for _, l := range c.Held() {
		held[l.Key] = l
	}
	require.Contains(t, held, orders+":shardId-000000000001")
	require.Contains(t, held, orders+":shardId-000000000002")
	require.Equal(t, checkpoint.TrimHorizon, held[orders+":shardId-000000000001"].Checkpoint)
}

func TestKCLMultiStreamTakeoverMemory(t *testing.T) {
	s := NewMemoryStore()
	testKCLMultiStreamTakeover(t, s, func(it map[string]types.AttributeValue) {
		l, err := UnmarshalItem(it)
		require.NoError(t, err)
		s.mu.Lock()
		s.leases[l.Key] = normalize(l)
		s.mu.Unlock()
	})
}

// MaxLeasesForWorker bounds the leases a worker takes across all streams
// of the table, not per stream.
func TestMaxLeasesForWorkerAcrossStreams(t *testing.T) {
	ctx := context.Background()
	s := NewMemoryStore()
	var shards []Shard
	for _, st := range []string{orders, payments, "123456789012:audit:1700000900"} {
		for i := range 4 {
			shards = append(shards, Shard{StreamID: st, ID: "shardId-00000000000" + string(rune('0'+i))})
		}
	}
	for i := 0; i < len(shards); i += 4 {
		_, _, err := SyncShards(ctx, s, shards[i:i+4], checkpoint.TrimHorizon)
		require.NoError(t, err)
	}
	c, _ := manual(t, s, Config{MaxLeasesForWorker: 5, InitialTakeDelay: -1})
	c.takePass(ctx, true)
	c.takePass(ctx, true)
	require.Len(t, c.Held(), 5)
}
