package lease

import (
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"
)

// The fleet harness's passCounter implements TakePass only, so every
// coordinator test runs with a single-hook Metrics; this checks the
// resolution itself.
func TestMetricHooksOptional(t *testing.T) {
	pc := &passCounter{}
	h := newMetricHooks(pc, slog.New(slog.DiscardHandler))
	h.RenewPass(RenewStats{Held: 1}) // no hook: a no-op
	h.TakePass(TakeStats{Taken: 2, Stolen: 1})
	require.Equal(t, 2, pc.taken)
	require.Equal(t, 1, pc.stolen)
	_, isNop := h.renew.(nopHooks)
	require.True(t, isNop)

	for _, m := range []Metrics{nil, NopMetrics{}, struct{}{}} {
		h := newMetricHooks(m, slog.New(slog.DiscardHandler))
		h.RenewPass(RenewStats{})
		h.TakePass(TakeStats{})
	}
}
