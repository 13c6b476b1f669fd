package prommetrics

import (
	"github.com/prometheus/client_golang/prometheus"
	mn "github.com/shardflow/shardflow/internal/metricnames"
	"github.com/shardflow/shardflow/lease"
)

// Lease implements lease.Metrics on Prometheus collectors.
type Lease struct {
	renewTime                             prometheus.Observer
	renewed, renewSkipped, lost, renewErr prometheus.Counter
	taken, stolen, takeErr                prometheus.Counter
	held, workers, target, tableLeases    prometheus.Gauge
	takeTime                              prometheus.ObserverVec
	scanErrors                            *prometheus.CounterVec
}

// Every lease hook is implemented (the compiler checks it).
var (
	_ lease.HookRenewPass = (*Lease)(nil)
	_ lease.HookTakePass  = (*Lease)(nil)
)

// NewLease registers the lease coordinator's collectors on reg (reusing
// those a previous call registered) and returns the metrics of the
// coordinator of application's lease table.
func NewLease(reg prometheus.Registerer, application string) (*Lease, error) {
	v := newLeaseVecs()
	if err := v.register(reg); err != nil {
		return nil, err
	}
	a := prometheus.Labels{lApp: application}
	return &Lease{
		renewTime:    v.renewTime.With(a),
		renewed:      v.renewed.With(a),
		renewSkipped: v.renewSkipped.With(a),
		lost:         v.lost.With(a),
		renewErr:     v.renewErr.With(a),
		taken:        v.taken.With(a),
		stolen:       v.stolen.With(a),
		takeErr:      v.takeErr.With(a),
		held:         v.held.With(a),
		workers:      v.workers.With(a),
		target:       v.target.With(a),
		tableLeases:  v.tableLeases.With(a),
		takeTime:     v.takeTime.MustCurryWith(a),
		scanErrors:   v.scanErrors.MustCurryWith(a),
	}, nil
}

// RenewPass implements lease.Metrics.
func (l *Lease) RenewPass(s lease.RenewStats) {
	l.renewTime.Observe(s.Duration.Seconds())
	l.renewed.Add(float64(s.Renewed))
	l.renewSkipped.Add(float64(s.Skipped))
	l.lost.Add(float64(s.Lost))
	l.renewErr.Add(float64(s.Failed))
	l.held.Set(float64(s.Held - s.Lost))
}

// TakePass implements lease.Metrics. The scan's figures are kept from the
// last successful scan: a failed one reports no table state.
func (l *Lease) TakePass(s lease.TakeStats) {
	pass := mn.PassExpiryScan
	switch {
	case s.Targeted:
		pass = mn.PassTargeted
	case s.Balance:
		pass = mn.PassBalance
	}
	l.takeTime.WithLabelValues(pass).Observe(s.Duration.Seconds())
	if s.Err != nil {
		l.scanErrors.WithLabelValues(pass).Inc()
		return
	}
	l.taken.Add(float64(s.Taken))
	l.stolen.Add(float64(s.Stolen))
	l.takeErr.Add(float64(s.Failed))
	l.held.Set(float64(s.Held))
	l.workers.Set(float64(s.Workers))
	l.target.Set(float64(s.Target))
	l.tableLeases.Set(float64(s.Leases))
}
