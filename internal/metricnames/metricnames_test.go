package metricnames

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Names are unique, valid and in Prometheus conventions: counters end in
// _total, others do not, histograms have increasing buckets.
func TestTable(t *testing.T) {
	valid := regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	seen := map[string]bool{}
	for _, d := range All() {
		n := d.FullName()
		require.False(t, seen[n], "duplicate %s", n)
		seen[n] = true
		require.Regexp(t, valid, n)
		require.NotEmpty(t, d.Help, n)
		require.Equal(t, d.Kind == Counter, strings.HasSuffix(n, "_total"), n)
		if d.Kind == Histogram {
			require.NotEmpty(t, d.Buckets, n)
			require.True(t, slices.IsSorted(d.Buckets), n)
			require.NotContains(t, d.Labels, Shard, "histograms are per stream only: %s", n)
		}
		for _, l := range d.Labels {
			require.Regexp(t, valid, l)
		}
	}
	require.Len(t, seen, 42)
}

func TestCodesCapped(t *testing.T) {
	var c Codes
	for i := range MaxCodes {
		require.Equal(t, "c"+string(rune('A'+i)), c.Label("c"+string(rune('A'+i))))
	}
	require.Equal(t, OverflowCode, c.Label("one too many"))
	require.Equal(t, "cA", c.Label("cA"), "codes already seen keep their label")
}
