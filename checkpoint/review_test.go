package checkpoint

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// A shard whose lease already says SHARD_END has ended: rewriting that
// checkpoint (Checkpoint with nothing delivered) must not be refused.
func TestCheckpointRewritesShardEndStart(t *testing.T) {
	ctx := context.Background()
	w := &fencedWriter{held: true, cp: ShardEnd}
	c := NewCheckpointer("s", w, ShardEnd)
	require.NoError(t, c.Checkpoint(ctx))
	require.Equal(t, ShardEnd, w.cp)
	require.NoError(t, c.CheckpointAt(ctx, ShardEnd))
	require.ErrorIs(t, c.CheckpointAt(ctx, At("1", 0)), ErrPositionBackwards)
}

// Sequence numbers of different lengths and with leading zeros order
// numerically, and sub-sequence numbers order within one.
func TestCompareDecimalEdgeCases(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"0", "000", 0},
		{"0", "1", -1},
		{"0010", "9", 1},
		{"340282366920938463463374607431768211455", "340282366920938463463374607431768211456", -1},
		{"1" + zeros(38), "9" + zeros(37), 1},
		{"00000000000000000000000000000000000000001", "2", -1},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, At(tt.a, 0).Compare(At(tt.b, 0)), "%s vs %s", tt.a, tt.b)
		require.Equal(t, -tt.want, At(tt.b, 0).Compare(At(tt.a, 0)), "%s vs %s", tt.b, tt.a)
	}
	require.Equal(t, -1, At("07", 9).Compare(At("7", 10)))
}

func zeros(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = '0'
	}
	return string(b)
}
