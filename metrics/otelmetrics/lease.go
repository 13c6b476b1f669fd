package otelmetrics

import (
	"github.com/shardflow/shardflow/lease"
	"go.opentelemetry.io/otel/metric"
)

// Lease implements lease.Metrics on OpenTelemetry instruments.
type Lease struct {
	app, balance, expiryRun, targeted *attrs

	renewed, renewSkipped, lost, renewFailed metric.Int64Counter
	taken, stolen, takeFailed, scanErrors    metric.Int64Counter
	held, workers, target, tableLeases       metric.Int64Gauge
	renewTime, takeTime                      metric.Float64Histogram
}

// Every lease hook is implemented (the compiler checks it).
var (
	_ lease.HookRenewPass = (*Lease)(nil)
	_ lease.HookTakePass  = (*Lease)(nil)
)

// NewLease creates the lease coordinator's instruments from mp and returns
// the metrics of the coordinator of application's lease table.
func NewLease(mp metric.MeterProvider, application string) (*Lease, error) {
	if mp == nil {
		return nil, errNilProvider
	}
	b := newBuilder(mp)
	a := keyApp.String(application)
	l := &Lease{
		app:          newAttrs(a),
		balance:      newAttrs(a, keyPass.String("balance")),
		expiryRun:    newAttrs(a, keyPass.String("expiry_scan")),
		targeted:     newAttrs(a, keyPass.String("targeted")),
		renewTime:    b.seconds(lRenewTime),
		renewed:      b.counter(lRenewed),
		renewSkipped: b.counter(lRenewSkipped),
		lost:         b.counter(lLost),
		renewFailed:  b.counter(lRenewFailed),
		held:         b.gauge(lHeld),
		takeTime:     b.seconds(lTakeTime),
		scanErrors:   b.counter(lScanErrors),
		taken:        b.counter(lTaken),
		stolen:       b.counter(lStolen),
		takeFailed:   b.counter(lTakeFailed),
		workers:      b.gauge(lWorkers),
		target:       b.gauge(lTarget),
		tableLeases:  b.gauge(lTableLeases),
	}
	if err := b.done(); err != nil {
		return nil, err
	}
	return l, nil
}

// RenewPass implements lease.Metrics.
func (l *Lease) RenewPass(s lease.RenewStats) {
	l.renewTime.Record(bg, s.Duration.Seconds(), l.app.rec...)
	l.renewed.Add(bg, int64(s.Renewed), l.app.add...)
	l.renewSkipped.Add(bg, int64(s.Skipped), l.app.add...)
	l.lost.Add(bg, int64(s.Lost), l.app.add...)
	l.renewFailed.Add(bg, int64(s.Failed), l.app.add...)
	l.held.Record(bg, int64(s.Held-s.Lost), l.app.rec...)
}

// TakePass implements lease.Metrics. The scan's figures are kept from the
// last successful scan: a failed one reports no table state.
func (l *Lease) TakePass(s lease.TakeStats) {
	pass := l.expiryRun
	switch {
	case s.Targeted:
		pass = l.targeted
	case s.Balance:
		pass = l.balance
	}
	l.takeTime.Record(bg, s.Duration.Seconds(), pass.rec...)
	if s.Err != nil {
		l.scanErrors.Add(bg, 1, pass.add...)
		return
	}
	l.taken.Add(bg, int64(s.Taken), l.app.add...)
	l.stolen.Add(bg, int64(s.Stolen), l.app.add...)
	l.takeFailed.Add(bg, int64(s.Failed), l.app.add...)
	l.held.Record(bg, int64(s.Held), l.app.rec...)
	l.workers.Record(bg, int64(s.Workers), l.app.rec...)
	l.target.Record(bg, int64(s.Target), l.app.rec...)
	l.tableLeases.Record(bg, int64(s.Leases), l.app.rec...)
}
