package consumer

import (
	"math/big"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/aggregation"
	"github.com/shardflow/shardflow/checkpoint"
)

func rawRecord(t *testing.T, seq string, subs ...aggregation.Record) types.Record {
	t.Helper()
	if len(subs) == 1 {
		return types.Record{SequenceNumber: aws.String(seq), PartitionKey: aws.String(subs[0].PartitionKey), Data: subs[0].Data}
	}
	blob, err := aggregation.Marshal(subs)
	require.NoError(t, err)
	return types.Record{SequenceNumber: aws.String(seq), PartitionKey: aws.String(subs[0].PartitionKey), Data: blob}
}

func TestConverterDeaggregatesAndSkipsCheckpointed(t *testing.T) {
	sub := func(pk, data string) aggregation.Record {
		return aggregation.Record{PartitionKey: pk, Data: []byte(data)}
	}
	raw := []types.Record{
		rawRecord(t, "100", sub("a", "0"), sub("b", "1"), sub("c", "2")),
		rawRecord(t, "200", sub("d", "plain")),
		rawRecord(t, "300", sub("e", "3"), sub("f", "4")),
	}
	// Resume at (100, 1): sub-records 0 and 1 of 100 were processed.
	c := newConverter("shardId-000000000000", "", "", checkpoint.At("100", 1))
	got, size, oor := c.convert(nil, raw)
	require.Zero(t, oor)
	var pos []string
	for _, r := range got {
		pos = append(pos, r.Position().String()+"="+string(r.Data))
	}
	require.Equal(t, []string{
		checkpoint.At("100", 2).String() + "=2",
		checkpoint.At("200", 0).String() + "=plain",
		checkpoint.At("300", 0).String() + "=3",
		checkpoint.At("300", 1).String() + "=4",
	}, pos)
	require.Equal(t, 1+5+1+1, size)
	require.True(t, got[0].Aggregated)
	require.False(t, got[1].Aggregated)

	// A plain record at the checkpoint is skipped; later ones are not.
	c = newConverter("s", "", "", checkpoint.At("200", 0))
	got, _, _ = c.convert(nil, raw[1:])
	require.Len(t, got, 2)
	require.Equal(t, "300", got[0].SequenceNumber)

	// A trimmed checkpoint (first record later than it) skips nothing.
	c = newConverter("s", "", "", checkpoint.At("50", 7))
	got, _, _ = c.convert(nil, raw)
	require.Len(t, got, 6)
}

func TestConverterCountsOutOfRangeSubRecords(t *testing.T) {
	// Range: the lower half of the hash key space.
	half := new(big.Int).Lsh(big.NewInt(1), 127)
	end := new(big.Int).Sub(half, big.NewInt(1)).String()
	c := newConverter("s", "0", end, checkpoint.TrimHorizon)
	raw := []types.Record{rawRecord(t, "1",
		aggregation.Record{PartitionKey: "x", ExplicitHashKey: "5", Data: []byte("in")},
		aggregation.Record{PartitionKey: "y", ExplicitHashKey: half.String(), Data: []byte("out")},
	)}
	got, _, oor := c.convert(nil, raw)
	require.Len(t, got, 2, "out-of-range sub-records are still delivered")
	require.Equal(t, 1, oor)
}

func TestSeqLess(t *testing.T) {
	require.True(t, seqLess("9", "10"))
	require.True(t, seqLess("10", "11"))
	require.False(t, seqLess("11", "11"))
	require.False(t, seqLess("100", "99"))
}
