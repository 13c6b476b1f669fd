package aggregation

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestGrow checks that a grown Aggregator takes n records with distinct
// keys without allocating, and builds the same blob as one that grew as
// it went.
func TestGrow(t *testing.T) {
	const n = 300
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%04d", i)
	}
	data := []byte("payload")
	fill := func(a *Aggregator) {
		for _, k := range keys {
			a.Add(k, "", data)
		}
	}
	var plain Aggregator
	fill(&plain)

	var grown Aggregator
	grown.Grow(n)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fill(&grown)
	runtime.ReadMemStats(&after)
	if !raceEnabled {
		require.Zero(t, after.Mallocs-before.Mallocs, "Add after Grow(n) allocated for n records")
	}
	require.Equal(t, plain.AppendBlob(nil), grown.AppendBlob(nil))
	grown.Grow(0) // no-op
	grown.Grow(-1)
	require.Equal(t, n, grown.Len())
}

// TestGrowUnindexed checks that GrowUnindexed(n) lets n records in with
// AddWithinUnindexed without an allocation beyond its own, and builds no
// key index.
func TestGrowUnindexed(t *testing.T) {
	const n = 300
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%04d", i)
	}
	data := []byte("payload")
	var a Aggregator
	grow := testing.AllocsPerRun(5, func() {
		a = Aggregator{}
		a.GrowUnindexed(n)
	})
	filled := testing.AllocsPerRun(5, func() {
		a = Aggregator{}
		a.GrowUnindexed(n)
		for _, k := range keys {
			if !a.AddWithinUnindexed(k, "", data, 1<<30) {
				t.Fatal("refused under no limit")
			}
		}
	})
	if !raceEnabled {
		require.Equal(t, grow, filled, "AddWithinUnindexed after GrowUnindexed(n) allocated for n records")
	}
	require.Nil(t, a.pks.index, "GrowUnindexed built a key index")
	a.GrowUnindexed(0) // no-op
	require.Equal(t, n, a.Len())
	_, err := Unmarshal(a.AppendBlob(nil))
	require.NoError(t, err)
}
