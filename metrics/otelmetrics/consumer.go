package otelmetrics

import (
	"context"
	"sync"
	"time"

	"github.com/shardflow/shardflow/consumer"
	"go.opentelemetry.io/otel/metric"
)

// Consumer implements consumer.Metrics on OpenTelemetry instruments. Call
// Close when the consumer is gone, to stop reporting its shards' lag.
type Consumer struct {
	stream *attrs
	shards shardAttrs

	processed, processedSize, processorErrors metric.Int64Counter
	outOfRange, throttles, expiredIters       metric.Int64Counter
	retentionRestarts                         metric.Int64Counter
	leasesTaken, leasesLost                   metric.Int64Counter
	leasesHeld                                metric.Int64Gauge
	processTime                               metric.Float64Histogram

	// The lag is an observable gauge over the shards held, so a lost
	// shard's series ends instead of repeating its last value forever.
	behindLatest metric.Float64ObservableGauge
	reg          metric.Registration
	mu           sync.Mutex
	lag          map[string]int64 // shard id -> last MillisBehindLatest
	closeOnce    sync.Once
	closeErr     error
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

// NewConsumer creates the consumer's instruments from mp and returns the
// metrics of a consumer of stream.
func NewConsumer(mp metric.MeterProvider, stream string) (*Consumer, error) {
	if mp == nil {
		return nil, errNilProvider
	}
	b := newBuilder(mp)
	s := keyStream.String(stream)
	c := &Consumer{
		stream:            newAttrs(s),
		shards:            shardAttrs{base: s},
		processed:         b.counter(cProcessed),
		processedSize:     b.counter(cProcessedSize),
		processTime:       b.seconds(cProcessTime),
		behindLatest:      b.observableSeconds(cBehindLatest),
		processorErrors:   b.counter(cProcessorError),
		outOfRange:        b.counter(cOutOfRange),
		throttles:         b.counter(cThrottles),
		expiredIters:      b.counter(cExpiredIters),
		retentionRestarts: b.counter(cRetentionRestarts),
		leasesHeld:        b.gauge(cLeasesHeld),
		leasesTaken:       b.counter(cLeasesTaken),
		leasesLost:        b.counter(cLeasesLost),
		lag:               make(map[string]int64),
	}
	if err := b.done(); err != nil {
		return nil, err
	}
	reg, err := b.m.RegisterCallback(c.observe, c.behindLatest)
	if err != nil {
		return nil, err
	}
	c.reg = reg
	return c, nil
}

func (c *Consumer) observe(_ context.Context, o metric.Observer) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for shard, ms := range c.lag {
		o.ObserveFloat64(c.behindLatest, float64(ms)/1000, c.shards.of(shard).obs...)
	}
	return nil
}

// Close stops reporting the lag gauge. It is idempotent.
func (c *Consumer) Close() error {
	c.closeOnce.Do(func() {
		c.closeErr = c.reg.Unregister()
		c.mu.Lock()
		clear(c.lag)
		c.mu.Unlock()
	})
	return c.closeErr
}

// RecordsProcessed implements consumer.Metrics.
func (c *Consumer) RecordsProcessed(shardID string, records, bytes int, took time.Duration) {
	at := c.shards.of(shardID)
	c.processed.Add(bg, int64(records), at.add...)
	c.processedSize.Add(bg, int64(bytes), at.add...)
	c.processTime.Record(bg, took.Seconds(), c.stream.rec...)
}

// MillisBehindLatest implements consumer.Metrics.
func (c *Consumer) MillisBehindLatest(shardID string, millis int64) {
	c.mu.Lock()
	c.lag[shardID] = millis
	c.mu.Unlock()
}

// ProcessorError implements consumer.Metrics.
func (c *Consumer) ProcessorError(shardID string) {
	c.processorErrors.Add(bg, 1, c.shards.of(shardID).add...)
}

// OutOfRangeRecords implements consumer.Metrics.
func (c *Consumer) OutOfRangeRecords(shardID string, n int) {
	c.outOfRange.Add(bg, int64(n), c.shards.of(shardID).add...)
}

// Throttled implements consumer.Metrics.
func (c *Consumer) Throttled(shardID string) {
	c.throttles.Add(bg, 1, c.shards.of(shardID).add...)
}

// IteratorExpired implements consumer.Metrics.
func (c *Consumer) IteratorExpired(shardID string) {
	c.expiredIters.Add(bg, 1, c.shards.of(shardID).add...)
}

// RetentionRestart implements consumer.Metrics.
func (c *Consumer) RetentionRestart(shardID string) {
	c.retentionRestarts.Add(bg, 1, c.shards.of(shardID).add...)
}

// LeasesHeld implements consumer.Metrics.
func (c *Consumer) LeasesHeld(n int) {
	c.leasesHeld.Record(bg, int64(n), c.stream.rec...)
}

// LeaseTaken implements consumer.Metrics.
func (c *Consumer) LeaseTaken(string) {
	c.leasesTaken.Add(bg, 1, c.stream.add...)
}

// LeaseLost implements consumer.Metrics. The shard's lag is no longer
// reported: another worker reports it now.
func (c *Consumer) LeaseLost(shardID string) {
	c.leasesLost.Add(bg, 1, c.stream.add...)
	c.mu.Lock()
	delete(c.lag, shardID)
	c.mu.Unlock()
}

// ShardReleased implements consumer.Metrics: the shard's pipeline stopped
// here without a loss (handed over, ended, shut down). Its lag is no
// longer reported, as on a loss: only the shard's current owner reports
// it.
func (c *Consumer) ShardReleased(shardID string) {
	c.mu.Lock()
	delete(c.lag, shardID)
	c.mu.Unlock()
}
