package consumer

import (
	"math/rand/v2"
	"time"
)

func randUint32() uint32 { return rand.Uint32() }

// retrier yields the delays of one run of retries.
type retrier struct {
	b Backoff
	n int
}

// next returns the delay before the next attempt: Initial * 2^n capped at
// Max, minus up to half of it at random so workers do not retry in step.
func (r *retrier) next() time.Duration {
	d := r.b.Initial
	for i := 0; i < r.n && d < r.b.Max; i++ {
		d *= 2
	}
	if d > r.b.Max {
		d = r.b.Max
	}
	r.n++
	if half := int64(d / 2); half > 0 {
		d -= time.Duration(rand.Int64N(half + 1))
	}
	return d
}

func (r *retrier) reset() { r.n = 0 }
