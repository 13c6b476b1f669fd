package consumer

import (
	"math/rand/v2"
	"time"

	"github.com/shardflow/shardflow/internal/backoff"
)

func randUint32() uint32 { return rand.Uint32() }

// retrier yields the delays of one run of retries.
type retrier struct {
	b Backoff
	n int
}

// next returns the delay before the next attempt: Initial * 2^n capped at
// Max, with full jitter (see internal/backoff) so workers do not retry in
// step.
func (r *retrier) next() time.Duration {
	r.n++
	return backoff.Delay(r.b.Initial, r.b.Max, r.n)
}

func (r *retrier) reset() { r.n = 0 }
