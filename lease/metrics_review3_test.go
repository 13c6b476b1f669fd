package lease

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// statsRecorder is a passCounter (as the harness's workers have) that
// also keeps every TakeStats reported.
type statsRecorder struct {
	*passCounter
	mu    sync.Mutex
	takes []TakeStats
}

func (r *statsRecorder) TakePass(s TakeStats) {
	r.passCounter.TakePass(s)
	r.mu.Lock()
	r.takes = append(r.takes, s)
	r.mu.Unlock()
}

func (r *statsRecorder) all() []TakeStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]TakeStats(nil), r.takes...)
}

// launchRecording is fleet.launch with a statsRecorder as the metrics.
func (f *fleet) launchRecording(id string) *statsRecorder {
	cfg := f.cfg
	cfg.WorkerID, cfg.Clock = id, f.clk
	rec := &statsRecorder{passCounter: &passCounter{}}
	cfg.Metrics = rec
	c, err := NewCoordinator(f.store, cfg)
	require.NoError(f.t, err)
	ctx, cancel := context.WithCancel(context.Background())
	w := &worker{c: c, cancel: cancel, done: make(chan error, 1), passes: rec.passCounter, drain: make(chan struct{})}
	go func() { w.done <- c.Run(ctx) }()
	go func() {
		defer close(w.drain)
		for ev := range c.Events() {
			w.mu.Lock()
			w.events = append(w.events, ev)
			w.mu.Unlock()
			if ev.Type == HandoffRequested && !f.holdHandoffs {
				_ = c.Release(context.Background(), ev.Lease.Key)
			}
		}
	}()
	f.workers[id] = w
	f.clk.BlockUntil(f.idleTimers())
	f.settle()
	return rec
}

// recordingFleet is balancedFleet (n workers a second apart, balanced) on
// store, every worker's TakeStats recorded.
func recordingFleet(t *testing.T, store Store, leases, n int) (*fleet, map[string]*statsRecorder) {
	f := newFleet(t, store, leases)
	f.cfg.ScanScaling = ScanSublinear
	recs := map[string]*statsRecorder{}
	for i := range n {
		id := fmt.Sprintf("w%d", i)
		recs[id] = f.launchRecording(id)
		f.advance(time.Second)
	}
	f.advance(4*takeInterval + handoffTime)
	require.Len(t, f.owners(), n)
	return f, recs
}

// A targeted pass that cannot decide (ListOwned fails, here throttled) is
// reported to the metrics as a successful take pass (Err nil) with no
// table state: Leases, Workers, Target and Held all 0. Metrics hooks
// (prommetrics, otelmetrics, emfmetrics) keep "the scan's figures ... from
// the last successful scan: a failed one reports no table state", so on
// every such probe the workers/target/held/table-leases gauges drop to 0
// (a worker always counts itself: Workers is at least 1 in any real plan).
// The same zero pass is reported when the targeted read ends on drain
// (StopTaking), with no scan after it to set the gauges back.
func TestReview3FailedTargetedPassReportsEmptyTableAsSuccess(t *testing.T) {
	mem := bigLeases(t)
	store := indexWrap{Store: mem, list: func(context.Context, string) ([]string, error) {
		return nil, errors.New("throttled")
	}}
	f, recs := recordingFleet(t, store, 60, 6)
	f.advance(7 * time.Second)
	crashTakeover(t, f, "w1")
	bad := 0
	for id, rec := range recs {
		if id == "w1" {
			continue
		}
		for _, s := range rec.all() {
			if s.Err == nil && s.Workers == 0 {
				bad++
				t.Logf("%s: %+v", id, s)
			}
		}
	}
	require.Zero(t, bad, "take passes reported as successful with no table state (Workers 0)")
}
