package prommetrics

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	mn "github.com/shardflow/shardflow/internal/metricnames"
)

// registrar registers collectors, reusing the one already registered under
// the same descriptor: two producers (or a producer re-created after a
// restart) on one registry then share the vectors, told apart by their
// stream label, instead of failing with a duplicate registration.
//
// On a failure (a different collector under one of our names) the ones
// this call registered are unregistered again, so a failed constructor
// leaves the registry as it found it.
type registrar struct {
	reg   prometheus.Registerer
	added []prometheus.Collector
	err   error
}

func use[C prometheus.Collector](r *registrar, c *C) {
	if r.err != nil {
		return
	}
	err := r.reg.Register(*c)
	if err == nil {
		r.added = append(r.added, *c)
		return
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			*c = existing
			return
		}
	}
	for _, a := range r.added {
		r.reg.Unregister(a)
	}
	r.err = fmt.Errorf("prommetrics: %w", err)
}

// maxCodes caps the distinct values of the code label (see
// metricnames.Codes).
const (
	maxCodes     = mn.MaxCodes
	overflowCode = mn.OverflowCode
)
