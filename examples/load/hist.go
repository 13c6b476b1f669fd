package main

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// A histogram counts durations in fixed log-linear buckets: 8 buckets per
// power of two, so a reported quantile is within 6.25 % of the true value
// (the bucket midpoint is reported). Recording is one atomic add, safe from
// any goroutine, and costs no allocation.
const (
	histSubBits = 3
	histSub     = 1 << histSubBits
	// Values below histLinear get a bucket each; above, bucket
	// histLinear + (exponent-histSubBits-1)*histSub + mantissa.
	histLinear  = 2 * histSub
	histBuckets = histLinear + (64-histSubBits-1)*histSub
)

type histogram struct {
	counts [histBuckets]atomic.Uint64
	max    atomic.Int64
}

// histCounts is a point-in-time copy of a histogram's buckets; two copies
// subtract to give an interval's distribution.
type histCounts [histBuckets]uint64

func bucketOf(v uint64) int {
	if v < histLinear {
		return int(v)
	}
	e := bits.Len64(v) - 1 // >= histSubBits+1
	sub := (v >> (e - histSubBits)) & (histSub - 1)
	return histLinear + (e-histSubBits-1)*histSub + int(sub)
}

// bucketMid returns the midpoint of bucket i's value range.
func bucketMid(i int) uint64 {
	if i < histLinear {
		return uint64(i)
	}
	e := (i-histLinear)/histSub + histSubBits + 1
	sub := uint64((i - histLinear) % histSub)
	width := uint64(1) << (e - histSubBits)
	return (histSub+sub)*width + width/2
}

func (h *histogram) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(uint64(d))].Add(1)
	for {
		m := h.max.Load()
		if int64(d) <= m || h.max.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

func (h *histogram) snapshot() histCounts {
	var c histCounts
	for i := range h.counts {
		c[i] = h.counts[i].Load()
	}
	return c
}

// sub returns the counts recorded between prev and c.
func (c *histCounts) sub(prev *histCounts) histCounts {
	var d histCounts
	for i := range c {
		d[i] = c[i] - prev[i]
	}
	return d
}

func (c *histCounts) total() uint64 {
	var n uint64
	for _, v := range c {
		n += v
	}
	return n
}

// quantile returns the value below which a fraction q of the counts lie
// (0 when empty).
func (c *histCounts) quantile(q float64) time.Duration {
	n := c.total()
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n-1)) + 1 // 1-based rank of the wanted value
	var seen uint64
	for i, v := range c {
		seen += v
		if seen >= rank {
			return time.Duration(bucketMid(i))
		}
	}
	return time.Duration(bucketMid(histBuckets - 1))
}
