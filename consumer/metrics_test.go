package consumer_test

import (
	"sync/atomic"
	"time"

	"github.com/shardflow/shardflow/consumer"
)

// countingMetrics counts what the tests check.
type countingMetrics struct {
	consumer.NopMetrics
	records    atomic.Int64
	throttled  atomic.Int64
	expired    atomic.Int64
	procErrors atomic.Int64
	outOfRange atomic.Int64
	taken      atomic.Int64
	lost       atomic.Int64
}

func (m *countingMetrics) RecordsProcessed(_ string, n, _ int, _ time.Duration) {
	m.records.Add(int64(n))
}
func (m *countingMetrics) Throttled(string)                  { m.throttled.Add(1) }
func (m *countingMetrics) IteratorExpired(string)            { m.expired.Add(1) }
func (m *countingMetrics) ProcessorError(string)             { m.procErrors.Add(1) }
func (m *countingMetrics) OutOfRangeRecords(_ string, n int) { m.outOfRange.Add(int64(n)) }
func (m *countingMetrics) LeaseTaken(string)                 { m.taken.Add(1) }
func (m *countingMetrics) LeaseLost(string)                  { m.lost.Add(1) }
