package prommetrics

import (
	"errors"
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
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

// maxCodes caps the distinct values of the code label per adapter. Kinesis
// has a couple of dozen error codes; a proxy or a future API returning
// free-form codes must not grow the series count without bound.
const maxCodes = 64

// overflowCode replaces codes beyond maxCodes.
const overflowCode = "other"

// codeSet admits the first maxCodes distinct codes.
type codeSet struct {
	mu   sync.Mutex
	seen map[string]struct{}
}

func (s *codeSet) label(code string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.seen[code]; ok {
		return code
	}
	if len(s.seen) >= maxCodes {
		return overflowCode
	}
	if s.seen == nil {
		s.seen = make(map[string]struct{})
	}
	s.seen[code] = struct{}{}
	return code
}
