package backoff

import (
	"math/rand/v2"
	"time"
)

// Delay returns the wait after the failures-th failure in a row (1 for
// the first): base doubled for each earlier failure, capped at max, with
// full jitter, so uniform in (0, d]. It is 0 when d is not positive.
func Delay(base, max time.Duration, failures int) time.Duration {
	d := Cap(base, max, failures)
	if d <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(d)) + 1)
}

// Cap returns Delay's upper bound: base doubled failures-1 times, at most
// max.
func Cap(base, max time.Duration, failures int) time.Duration {
	d := base
	for i := 1; i < failures && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}
