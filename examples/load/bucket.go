package main

import (
	"sync"
	"time"
)

// tokenBucket paces the producers to a record rate. Goroutines reserve
// tokens in chunks (a reservation may drive the balance negative, as in
// golang.org/x/time/rate) and wait the returned time once per chunk, so the
// pacing costs one lock and at most one timer per chunk, never a sleep per
// record.
type tokenBucket struct {
	mu     sync.Mutex
	rate   float64 // tokens per second
	burst  float64
	tokens float64
	last   time.Time
	now    func() time.Time
}

func newTokenBucket(rate float64, burst int, now func() time.Time) *tokenBucket {
	return &tokenBucket{rate: rate, burst: float64(burst), tokens: float64(burst), last: now(), now: now}
}

// reserve takes n tokens and returns how long the caller must wait before
// using them.
func (b *tokenBucket) reserve(n int) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if el := now.Sub(b.last); el > 0 {
		b.tokens = min(b.burst, b.tokens+el.Seconds()*b.rate)
		b.last = now
	}
	b.tokens -= float64(n)
	if b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens / b.rate * float64(time.Second))
}

// chunkFor returns how many records a producer reserves at once: about
// 5 ms worth at the target rate, between 1 and 256.
func chunkFor(rate float64) int {
	if rate <= 0 {
		return 256
	}
	return max(1, min(256, int(rate/200)))
}
