package emfmetrics

import (
	"fmt"

	"github.com/shardflow/shardflow/lease"
)

// Lease implements lease.Metrics, in KCL's RenewAllLeases and TakeLeases
// names, for a lease.Coordinator run directly. It reports CurrentLeases,
// LostLeases and TakenLeases as Consumer does: give a consumer's
// application one or the other, not both.
type Lease struct {
	e            *Emitter
	renew, takes groupKey
}

// Every lease hook is implemented (the compiler checks it).
var (
	_ lease.HookRenewPass = (*Lease)(nil)
	_ lease.HookTakePass  = (*Lease)(nil)
)

// Lease returns the metrics of the coordinator of application's lease
// table (the CloudWatch namespace, as in KCL).
func (e *Emitter) Lease(application string) (*Lease, error) {
	if err := checkNamespace(application); err != nil {
		return nil, fmtInvalid("application", err)
	}
	return &Lease{
		e:     e,
		renew: groupKey{namespace: application, operation: opRenewAll},
		takes: groupKey{namespace: application, operation: opTakeLeases},
	}, nil
}

func fmtInvalid(what string, err error) error {
	return fmt.Errorf("%w: %s: %w", ErrInvalidOptions, what, err)
}

// RenewPass implements lease.Metrics.
func (l *Lease) RenewPass(s lease.RenewStats) {
	l.e.add(l.renew, kclOperationTime, ms(s.Duration))
	l.e.add(l.renew, kclOperationSuccess, 1)
	l.e.add(l.renew, kclRenewLeaseSuccess, float64(s.Renewed))
	l.e.add(l.renew, kclRenewLeaseSkipped, float64(s.Skipped))
	l.e.add(l.renew, kclRenewLeaseFailure, float64(s.Failed))
	l.e.add(l.renew, kclLostLeases, float64(s.Lost))
	l.e.add(l.renew, kclCurrentLeases, float64(s.Held-s.Lost))
}

// TakePass implements lease.Metrics. Success counts the passes whose scan
// worked (0 in an interval where all failed, rather than no data) and
// ListLeases.Failure those whose scan failed.
func (l *Lease) TakePass(s lease.TakeStats) {
	l.e.add(l.takes, kclOperationTime, ms(s.Duration))
	if s.Err != nil {
		l.e.add(l.takes, kclOperationSuccess, 0)
		l.e.add(l.takes, kclOperationScanFailed, 1)
		return
	}
	l.e.add(l.takes, kclOperationSuccess, 1)
	l.e.add(l.takes, kclTakenLeases, float64(s.Taken+s.Stolen))
	l.e.add(l.takes, kclStolenLeases, float64(s.Stolen))
	l.e.add(l.takes, kclTakeLeaseFailure, float64(s.Failed))
	l.e.add(l.takes, kclNumWorkers, float64(s.Workers))
	l.e.add(l.takes, kclNeededLeases, float64(s.Target))
	l.e.add(l.takes, kclTotalLeases, float64(s.Leases))
}
