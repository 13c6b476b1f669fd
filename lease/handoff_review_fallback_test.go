package lease

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Review: the fallback take after HandoffTimeout must not let the new owner
// start while the old holder (alive, its processor still in its batch)
// still holds the lease. Design §6.2 step 6: the holder aborts at
// w0+HandoffTimeout, the wanter takes only at respAt+HandoffTimeout+
// FailoverTime, so the holder has always stopped first.
func TestReviewFallbackNeverOverlapsHolder(t *testing.T) {
	f, _, key := handoffFleet(t, true) // w1's processor never finishes its batch
	w1, w2 := f.workers["w1"], f.workers["w2"]
	timeout := w2.c.Config().HandoffTimeout
	for step := time.Duration(0); step < timeout+2*failover; step += 100 * time.Millisecond {
		f.advance(100 * time.Millisecond)
		if slices.Contains(keys(w2.c.Held()), key) {
			require.NotContains(t, keys(w1.c.Held()), key,
				"at +%v after the mark w2 holds %s (fallback take) while w1 still holds it and was never told to stop", step, key)
			return
		}
	}
	t.Fatalf("w2 never took %s", key)
}
