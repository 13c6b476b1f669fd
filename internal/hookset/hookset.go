package hookset

import (
	"fmt"
	"log/slog"
)

// Resolve sets *dst to m and returns 1 when m implements the hook T;
// otherwise it leaves *dst (a no-op) and returns 0.
func Resolve[T any](m any, dst *T) int {
	if v, ok := m.(T); ok {
		*dst = v
		return 1
	}
	return 0
}

// WarnIfNone logs once, at Warn, when m resolved to no hook (resolved is
// the sum of Resolve's results) although it was set to something other than
// nil or the package's no-op type Nop (or *Nop): such a value is almost
// always a mistake that would silently record nothing, for example a wrapper
// embedding the Metrics interface, or hooks with pointer receivers set by
// value.
func WarnIfNone[Nop any](log *slog.Logger, pkg string, m any, resolved int) {
	if resolved > 0 || IsNop[Nop](m) {
		return
	}
	log.Warn(pkg+": Config.Metrics implements no hook and receives nothing "+
		"(a wrapper embedding the Metrics interface passes nothing on; hook methods with pointer receivers need a pointer)",
		"metrics_type", fmt.Sprintf("%T", m))
}

// IsNop reports whether m is meant to receive nothing: nil, a Nop or a *Nop.
func IsNop[Nop any](m any) bool {
	switch m.(type) {
	case nil, Nop, *Nop:
		return true
	}
	return false
}
