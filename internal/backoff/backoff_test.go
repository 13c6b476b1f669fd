package backoff

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCap(t *testing.T) {
	for _, tc := range []struct {
		failures int
		want     time.Duration
	}{{0, 100 * time.Millisecond}, {1, 100 * time.Millisecond}, {2, 200 * time.Millisecond}, {4, 800 * time.Millisecond}, {5, time.Second}, {1000, time.Second}} {
		require.Equal(t, tc.want, Cap(100*time.Millisecond, time.Second, tc.failures), "failures %d", tc.failures)
	}
	require.Equal(t, time.Duration(0), Delay(0, time.Second, 3))
}

// Full jitter: every delay lies in (0, cap], and they spread over the
// whole window (both halves are hit), unlike equal jitter's upper half.
func TestDelayFullJitter(t *testing.T) {
	const base, max = 10 * time.Millisecond, 80 * time.Millisecond
	for failures := 1; failures <= 6; failures++ {
		c := Cap(base, max, failures)
		low, high := 0, 0
		for range 2000 {
			d := Delay(base, max, failures)
			require.Positive(t, d)
			require.LessOrEqual(t, d, c)
			if d <= c/2 {
				low++
			} else {
				high++
			}
		}
		// 2000 fair coin flips: below 800 on either side has odds under 1e-19.
		require.Greater(t, low, 800, "failures %d", failures)
		require.Greater(t, high, 800, "failures %d", failures)
	}
}
