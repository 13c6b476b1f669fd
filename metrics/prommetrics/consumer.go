package prommetrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shardflow/shardflow/consumer"
)

// Consumer implements consumer.Metrics on Prometheus collectors.
type Consumer struct {
	processTime                                prometheus.Observer
	leasesHeld                                 prometheus.Gauge
	leasesTaken, leasesLost                    prometheus.Counter
	processed, processedBytes, processorErrors *prometheus.CounterVec
	outOfRange, throttles, expiredIters        *prometheus.CounterVec
	retentionRestarts                          *prometheus.CounterVec
	behindLatest                               *prometheus.GaugeVec
}

// Every consumer hook is implemented (the compiler checks it: a hook
// missed or mistyped here would silently never be called).
var (
	_ consumer.HookRecordsProcessed   = (*Consumer)(nil)
	_ consumer.HookMillisBehindLatest = (*Consumer)(nil)
	_ consumer.HookProcessorError     = (*Consumer)(nil)
	_ consumer.HookOutOfRangeRecords  = (*Consumer)(nil)
	_ consumer.HookThrottled          = (*Consumer)(nil)
	_ consumer.HookIteratorExpired    = (*Consumer)(nil)
	_ consumer.HookRetentionRestart   = (*Consumer)(nil)
	_ consumer.HookLeasesHeld         = (*Consumer)(nil)
	_ consumer.HookLeaseTaken         = (*Consumer)(nil)
	_ consumer.HookLeaseLost          = (*Consumer)(nil)
	_ consumer.HookShardReleased      = (*Consumer)(nil)
)

// NewConsumer registers the consumer's collectors on reg (reusing those a
// previous call registered) and returns the metrics of a consumer of
// stream.
func NewConsumer(reg prometheus.Registerer, stream string) (*Consumer, error) {
	v := newConsumerVecs()
	if err := v.register(reg); err != nil {
		return nil, err
	}
	s := prometheus.Labels{lStream: stream}
	return &Consumer{
		processTime:       v.processTime.With(s),
		leasesHeld:        v.leasesHeld.With(s),
		leasesTaken:       v.leasesTaken.With(s),
		leasesLost:        v.leasesLost.With(s),
		processed:         v.processed.MustCurryWith(s),
		processedBytes:    v.processedBytes.MustCurryWith(s),
		processorErrors:   v.processorErrors.MustCurryWith(s),
		outOfRange:        v.outOfRange.MustCurryWith(s),
		throttles:         v.throttles.MustCurryWith(s),
		expiredIters:      v.expiredIters.MustCurryWith(s),
		retentionRestarts: v.retentionRestarts.MustCurryWith(s),
		behindLatest:      v.behindLatest.MustCurryWith(s),
	}, nil
}

// RecordsProcessed implements consumer.Metrics.
func (c *Consumer) RecordsProcessed(shardID string, records, bytes int, took time.Duration) {
	c.processed.WithLabelValues(shardID).Add(float64(records))
	c.processedBytes.WithLabelValues(shardID).Add(float64(bytes))
	c.processTime.Observe(took.Seconds())
}

// MillisBehindLatest implements consumer.Metrics.
func (c *Consumer) MillisBehindLatest(shardID string, millis int64) {
	c.behindLatest.WithLabelValues(shardID).Set(float64(millis) / 1000)
}

// ProcessorError implements consumer.Metrics.
func (c *Consumer) ProcessorError(shardID string) {
	c.processorErrors.WithLabelValues(shardID).Inc()
}

// OutOfRangeRecords implements consumer.Metrics.
func (c *Consumer) OutOfRangeRecords(shardID string, n int) {
	c.outOfRange.WithLabelValues(shardID).Add(float64(n))
}

// Throttled implements consumer.Metrics.
func (c *Consumer) Throttled(shardID string) {
	c.throttles.WithLabelValues(shardID).Inc()
}

// IteratorExpired implements consumer.Metrics.
func (c *Consumer) IteratorExpired(shardID string) {
	c.expiredIters.WithLabelValues(shardID).Inc()
}

// RetentionRestart implements consumer.Metrics.
func (c *Consumer) RetentionRestart(shardID string) {
	c.retentionRestarts.WithLabelValues(shardID).Inc()
}

// LeasesHeld implements consumer.Metrics.
func (c *Consumer) LeasesHeld(n int) {
	c.leasesHeld.Set(float64(n))
}

// LeaseTaken implements consumer.Metrics.
func (c *Consumer) LeaseTaken(string) {
	c.leasesTaken.Inc()
}

// LeaseLost implements consumer.Metrics. The shard's lag series is removed:
// another worker reports it now, and a stale value here would show lag
// that no longer exists.
func (c *Consumer) LeaseLost(shardID string) {
	c.leasesLost.Inc()
	c.behindLatest.DeleteLabelValues(shardID)
}

// ShardReleased implements consumer.Metrics: the shard's pipeline stopped
// here without a loss (handed over, ended, shut down). Its lag series is
// removed, as on a loss: only the shard's current owner reports it.
func (c *Consumer) ShardReleased(shardID string) {
	c.behindLatest.DeleteLabelValues(shardID)
}
