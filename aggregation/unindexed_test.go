package aggregation

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestAddWithinUnindexed checks that records added without the key index
// read back as added, that a key repeated back to back shares its table
// entry while one repeated later gets another (one table entry more than
// AddWithin builds), that Size stays exact, and that mixing it with
// AddWithin and a size refusal keep the aggregate consistent.
func TestAddWithinUnindexed(t *testing.T) {
	recs := []Record{
		{PartitionKey: "a", Data: []byte("1")},
		{PartitionKey: "a", Data: []byte("2")},
		{PartitionKey: "b", Data: []byte("3"), ExplicitHashKey: "42"},
		{PartitionKey: "a", Data: []byte("4")},
		{PartitionKey: "c", Data: []byte("5"), ExplicitHashKey: "42"},
	}
	const limit = 1 << 20
	var idx, unidx Aggregator
	for _, r := range recs {
		require.True(t, idx.AddWithin(r.PartitionKey, r.ExplicitHashKey, r.Data, limit))
		require.True(t, unidx.AddWithinUnindexed(r.PartitionKey, r.ExplicitHashKey, r.Data, limit))
	}
	blob := unidx.AppendBlob(nil)
	require.Len(t, blob, unidx.Size())
	got, err := Unmarshal(blob)
	require.NoError(t, err)
	require.Equal(t, recs, got)
	// "a" is in the table twice (records 1-2 share one entry, record 4
	// has its own), and the explicit hash key once.
	require.Equal(t, idx.Size()+tableEntrySize("a"), unidx.Size())

	// A record over the limit is refused and changes nothing.
	before := unidx.Size()
	require.False(t, unidx.AddWithinUnindexed("d", "", []byte("6"), before))
	require.Equal(t, before, unidx.Size())
	require.Equal(t, len(recs), unidx.Len())

	// Indexed adds after unindexed ones still read back right.
	require.True(t, unidx.AddWithin("a", "", []byte("7"), limit))
	require.True(t, unidx.AddWithin("a", "", []byte("8"), limit))
	blob = unidx.AppendBlob(nil)
	require.Len(t, blob, unidx.Size())
	got, err = Unmarshal(blob)
	require.NoError(t, err)
	want := append(append([]Record(nil), recs...), Record{PartitionKey: "a", Data: []byte("7")}, Record{PartitionKey: "a", Data: []byte("8")})
	require.Equal(t, want, got)
	pk, _, _ := unidx.Record(6)
	require.Equal(t, "a", pk)
}
