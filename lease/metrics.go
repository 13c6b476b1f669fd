package lease

import (
	"log/slog"

	"github.com/shardflow/shardflow/internal/hookset"
)

// Metrics is a set of optional hooks that receive the coordinator's
// statistics (plug Prometheus, OpenTelemetry or CloudWatch in behind it:
// see the nested modules under metrics/). Any value is a Metrics; the
// coordinator calls each hook interface below that the value implements,
// found once by type assertion in NewCoordinator. New statistics arrive as
// new hook interfaces, never as new methods on an existing one, so an
// implementation written against an older release keeps compiling, and a
// value receives the hooks whose methods are in its own method set. Two
// shapes receive nothing: a wrapper embedding the interface
// (struct{ lease.Metrics }) has no hook methods, as Metrics has none, so it
// passes nothing on to the value it wraps; and a value whose hook methods
// have pointer receivers, passed by value (MyMetrics{} for &MyMetrics{}),
// implements none of them. Wrap by embedding the concrete type (or forward
// each hook), and pass a pointer; NewCoordinator logs a warning when a
// Metrics other than nil or NopMetrics implements no hook. Assert the hooks
// you implement to catch a mistyped method:
//
//	var _ lease.HookRenewPass = (*MyMetrics)(nil)
//
// Calls come from the coordinator's goroutines and must not block.
type Metrics interface{}

// HookRenewPass is called after each renewal pass.
type HookRenewPass interface {
	RenewPass(s RenewStats)
}

// HookTakePass is called after each take pass.
type HookTakePass interface {
	TakePass(s TakeStats)
}

// NopMetrics records nothing: it implements no hook. A nil Config.Metrics
// does the same; NopMetrics stays so that code naming it (or embedding it)
// keeps compiling.
type NopMetrics struct{}

// metricHooks is Config.Metrics resolved into its hooks once.
type metricHooks struct {
	renew HookRenewPass
	take  HookTakePass
}

func newMetricHooks(m Metrics, log *slog.Logger) metricHooks {
	h := metricHooks{renew: nopHooks{}, take: nopHooks{}}
	n := hookset.Resolve(m, &h.renew) + hookset.Resolve(m, &h.take)
	hookset.WarnIfNone[NopMetrics](log, "lease", m, n)
	return h
}

func (h metricHooks) RenewPass(s RenewStats) { h.renew.RenewPass(s) }
func (h metricHooks) TakePass(s TakeStats)   { h.take.TakePass(s) }

type nopHooks struct{}

func (nopHooks) RenewPass(RenewStats) {}
func (nopHooks) TakePass(TakeStats)   {}
