package checkpoint

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCompare(t *testing.T) {
	big := "49590338271490256608559692538361571095921575989136588898"
	tests := []struct {
		name string
		a, b Position
		want int
	}{
		{"numeric not lexical", At("9", 0), At("10", 0), -1},
		{"leading zeros", At("007", 0), At("7", 0), 0},
		{"128-bit", At(big, 0), At("49590338271490256608559692538361571095921575989136588899", 0), -1},
		{"sub-sequence breaks ties", At(big, 2), At(big, 1), 1},
		{"equal", At(big, 3), At(big, 3), 0},
		{"trim horizon before any record", TrimHorizon, At("0", 0), -1},
		{"latest before any record", Latest, At("1", 0), -1},
		{"at timestamp before trim horizon", AtTimestamp, TrimHorizon, -1},
		{"trim horizon before latest", TrimHorizon, Latest, -1},
		{"shard end after everything", ShardEnd, At(big+"999", 99), 1},
		{"sentinel equals itself", ShardEnd, ShardEnd, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, tt.a.Compare(tt.b))
			require.Equal(t, -tt.want, tt.b.Compare(tt.a))
		})
	}
}

func TestParseAndString(t *testing.T) {
	for _, s := range []string{"TRIM_HORIZON", "LATEST", "AT_TIMESTAMP", "SHARD_END"} {
		p, err := Parse(s, 0)
		require.NoError(t, err)
		require.True(t, p.IsSentinel())
		require.Equal(t, s, p.String())
	}
	p, err := Parse("123", 4)
	require.NoError(t, err)
	require.Equal(t, At("123", 4), p)
	require.Equal(t, "123/4", p.String())
	require.Equal(t, "123", At("123", 0).String())
	for _, bad := range []string{"", "12a", "-1", "NOPE"} {
		_, err := Parse(bad, 0)
		require.ErrorIs(t, err, ErrInvalidPosition, bad)
	}
	require.ErrorIs(t, At("1", -1).Validate(), ErrInvalidPosition)
}

func BenchmarkCompare(b *testing.B) {
	x := At("49590338271490256608559692538361571095921575989136588898", 1)
	y := At("49590338271490256608559692538361571095921575989136588899", 0)
	b.ReportAllocs()
	for b.Loop() {
		if x.Compare(y) >= 0 {
			b.Fatal("order")
		}
	}
}
