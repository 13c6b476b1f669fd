package consumer_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

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

// lagOnly implements a single hook and nothing else.
type lagOnly struct{ calls atomic.Int64 }

func (m *lagOnly) MillisBehindLatest(string, int64) { m.calls.Add(1) }

// A Metrics implementing one hook gets that hook's calls and nothing else
// is required of it.
func TestMetricsSingleHook(t *testing.T) {
	p := newChanProc()
	m := &lagOnly{}
	srv, _, _, _ := single(t, p, func(cfg *consumer.Config) { cfg.Metrics = m })
	put(t, srv, "a")
	in := <-p.batches
	require.Equal(t, "a", string(in.Records[0].Data))
	p.release <- nil
	require.Positive(t, m.calls.Load(), "the batch's lag was reported before its delivery")
}
