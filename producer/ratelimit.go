package producer

import "time"

// tokenBucket is a token bucket holding at most one second of tokens, as
// in the KPL's limiter. It is not safe for concurrent use.
type tokenBucket struct {
	rate   float64 // tokens per second
	tokens float64
	last   time.Time
}

func newTokenBucket(rate float64, now time.Time) tokenBucket {
	return tokenBucket{rate: rate, tokens: rate, last: now}
}

func (b *tokenBucket) refill(now time.Time) {
	if d := now.Sub(b.last); d > 0 {
		b.tokens += d.Seconds() * b.rate
		if b.tokens > b.rate {
			b.tokens = b.rate
		}
		b.last = now
	}
}

// wait returns how long until n tokens are available (0 if they are). A
// request larger than the bucket is allowed once the bucket is full.
func (b *tokenBucket) wait(n float64, now time.Time) time.Duration {
	b.refill(now)
	if n > b.rate {
		n = b.rate
	}
	if b.tokens >= n {
		return 0
	}
	return time.Duration((n-b.tokens)/b.rate*float64(time.Second)) + time.Millisecond
}

func (b *tokenBucket) take(n float64)   { b.tokens -= n }
func (b *tokenBucket) refund(n float64) { b.tokens += n }
