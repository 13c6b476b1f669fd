package lease

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/checkpoint"
)

// kclItem is a lease item laid out as KCL for Java 2.x/3.x writes it (the
// attribute names and DynamoDB types of the reference table).
func kclItem() map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		"leaseKey":                           &types.AttributeValueMemberS{Value: "shardId-000000000007"},
		"leaseOwner":                         &types.AttributeValueMemberS{Value: "worker-a"},
		"leaseCounter":                       &types.AttributeValueMemberN{Value: "4183"},
		"ownerSwitchesSinceCheckpoint":       &types.AttributeValueMemberN{Value: "2"},
		"checkpoint":                         &types.AttributeValueMemberS{Value: "49590338271490256608559692538361571095921575989136588898"},
		"checkpointSubSequenceNumber":        &types.AttributeValueMemberN{Value: "3"},
		"pendingCheckpoint":                  &types.AttributeValueMemberS{Value: "49590338271490256608559692538361571095921575989136589000"},
		"pendingCheckpointSubSequenceNumber": &types.AttributeValueMemberN{Value: "0"},
		"pendingCheckpointState":             &types.AttributeValueMemberB{Value: []byte{0xde, 0xad}},
		"parentShardId":                      &types.AttributeValueMemberSS{Value: []string{"shardId-000000000001", "shardId-000000000002"}},
		"childShardIds":                      &types.AttributeValueMemberSS{Value: []string{"shardId-000000000009"}},
		"startingHashKey":                    &types.AttributeValueMemberS{Value: "0"},
		"endingHashKey":                      &types.AttributeValueMemberS{Value: "340282366920938463463374607431768211455"},
		"throughputKBps":                     &types.AttributeValueMemberN{Value: "12.5"},
		"checkpointOwner":                    &types.AttributeValueMemberS{Value: "worker-a"},
		"entityType":                         &types.AttributeValueMemberS{Value: "LEASE"},
	}
}

func TestReadKCLItem(t *testing.T) {
	l, err := UnmarshalItem(kclItem())
	require.NoError(t, err)
	require.Equal(t, "shardId-000000000007", l.Key)
	require.Equal(t, "worker-a", l.Owner)
	require.Equal(t, int64(4183), l.Counter)
	require.Equal(t, int64(2), l.OwnerSwitchesSinceCheckpoint)
	require.Equal(t, checkpoint.At("49590338271490256608559692538361571095921575989136588898", 3), l.Checkpoint)
	require.Equal(t, checkpoint.At("49590338271490256608559692538361571095921575989136589000", 0), *l.PendingCheckpoint)
	require.Equal(t, []byte{0xde, 0xad}, l.PendingCheckpointState)
	require.Equal(t, []string{"shardId-000000000001", "shardId-000000000002"}, l.ParentShardIDs)
	require.Equal(t, []string{"shardId-000000000009"}, l.ChildShardIDs)
	require.Equal(t, "0", l.StartingHashKey)
	require.Equal(t, "340282366920938463463374607431768211455", l.EndingHashKey)
	require.Equal(t, "worker-a", l.CheckpointOwner)
	require.False(t, l.InHandoff(), "checkpointOwner equal to leaseOwner is no handoff")
	require.Len(t, l.Extra, 1)
	require.Equal(t, 12.5, l.ThroughputKBps)

	// Round trip: our item for that lease is KCL's item, attribute for
	// attribute and type for type.
	back, err := MarshalItem(l)
	require.NoError(t, err)
	require.Equal(t, kclItem(), back)
}

func TestReadKCLSentinelAndMinimalItem(t *testing.T) {
	// A new, unowned lease as KCL's shard sync creates it.
	l, err := UnmarshalItem(map[string]types.AttributeValue{
		"leaseKey":                     &types.AttributeValueMemberS{Value: "shardId-000000000000"},
		"leaseCounter":                 &types.AttributeValueMemberN{Value: "0"},
		"ownerSwitchesSinceCheckpoint": &types.AttributeValueMemberN{Value: "0"},
		"checkpoint":                   &types.AttributeValueMemberS{Value: "TRIM_HORIZON"},
		"checkpointSubSequenceNumber":  &types.AttributeValueMemberN{Value: "0"},
	})
	require.NoError(t, err)
	require.Equal(t, Lease{Key: "shardId-000000000000", Checkpoint: checkpoint.TrimHorizon}, l)
	l.Checkpoint = checkpoint.ShardEnd
	require.True(t, l.Finished())
}

// Our items have exactly KCL's layout: names, types, and absent (not empty
// or NULL) attributes for unset values.
func TestOurItemLayout(t *testing.T) {
	pending := checkpoint.At("200", 1)
	full := Lease{
		Key: "shardId-000000000003", Owner: "w1", Counter: 7,
		Checkpoint: checkpoint.At("100", 2), PendingCheckpoint: &pending, PendingCheckpointState: []byte("s"),
		OwnerSwitchesSinceCheckpoint: 1, ParentShardIDs: []string{"p"}, ChildShardIDs: []string{"c1", "c2"},
		StartingHashKey: "0", EndingHashKey: "99",
	}
	av, err := MarshalItem(full)
	require.NoError(t, err)
	wantTypes := map[string]string{
		"leaseKey": "S", "leaseOwner": "S", "leaseCounter": "N", "ownerSwitchesSinceCheckpoint": "N",
		"checkpoint": "S", "checkpointSubSequenceNumber": "N", "pendingCheckpoint": "S",
		"pendingCheckpointSubSequenceNumber": "N", "pendingCheckpointState": "B",
		"parentShardId": "SS", "childShardIds": "SS", "startingHashKey": "S", "endingHashKey": "S",
	}
	require.Equal(t, wantTypes, typesOf(av))
	require.Equal(t, &types.AttributeValueMemberN{Value: "7"}, av["leaseCounter"])
	require.Equal(t, &types.AttributeValueMemberS{Value: "100"}, av["checkpoint"])
	require.Equal(t, &types.AttributeValueMemberN{Value: "2"}, av["checkpointSubSequenceNumber"])

	minimal, err := MarshalItem(Lease{Key: "k", Checkpoint: checkpoint.TrimHorizon})
	require.NoError(t, err)
	require.Equal(t, map[string]string{
		"leaseKey": "S", "leaseCounter": "N", "ownerSwitchesSinceCheckpoint": "N",
		"checkpoint": "S", "checkpointSubSequenceNumber": "N",
	}, typesOf(minimal))
	require.Equal(t, &types.AttributeValueMemberS{Value: "TRIM_HORIZON"}, minimal["checkpoint"])

	_, err = MarshalItem(Lease{Key: "k"})
	require.Error(t, err, "a lease without a checkpoint is refused")
}

func TestEntityTypeFilter(t *testing.T) {
	it := kclItem()
	require.True(t, isLeaseItem(it))
	delete(it, "entityType")
	require.True(t, isLeaseItem(it), "KCL 2.x items have no entityType")
	it["entityType"] = &types.AttributeValueMemberS{Value: "WORKER_METRICS"}
	require.False(t, isLeaseItem(it))
}

func typesOf(av map[string]types.AttributeValue) map[string]string {
	out := map[string]string{}
	for k, v := range av {
		switch v.(type) {
		case *types.AttributeValueMemberS:
			out[k] = "S"
		case *types.AttributeValueMemberN:
			out[k] = "N"
		case *types.AttributeValueMemberB:
			out[k] = "B"
		case *types.AttributeValueMemberSS:
			out[k] = "SS"
		default:
			out[k] = "other"
		}
	}
	return out
}
