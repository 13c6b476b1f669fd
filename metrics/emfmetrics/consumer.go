package emfmetrics

import (
	"time"

	"github.com/shardflow/shardflow/consumer"
)

// Consumer implements consumer.Metrics, in KCL's names and dimensions:
// namespace the application name, Operation ProcessTask (per shard),
// RenewAllLeases and TakeLeases (per worker). As with KCL's defaults in
// single-stream mode, there is no stream dimension: the application
// consumes one stream.
type Consumer struct {
	e                     *Emitter
	process, renew, takes groupKey
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

// Consumer returns the metrics of the consumer application (KCL's
// applicationName, the CloudWatch namespace).
func (e *Emitter) Consumer(application string) (*Consumer, error) {
	if err := checkNamespace(application); err != nil {
		return nil, fmtInvalid("application", err)
	}
	return &Consumer{
		e:       e,
		process: groupKey{namespace: application, operation: opProcessTask},
		renew:   groupKey{namespace: application, operation: opRenewAll},
		takes:   groupKey{namespace: application, operation: opTakeLeases},
	}, nil
}

func (c *Consumer) shard(shardID string) groupKey {
	k := c.process
	k.shard = shardID
	return k
}

// RecordsProcessed implements consumer.Metrics.
func (c *Consumer) RecordsProcessed(shardID string, records, bytes int, took time.Duration) {
	k := c.shard(shardID)
	c.e.add(k, kclRecordsProcessed, float64(records))
	c.e.add(k, kclDataBytesProcessed, float64(bytes))
	c.e.add(k, kclProcessRecordsTime, ms(took))
}

// MillisBehindLatest implements consumer.Metrics.
func (c *Consumer) MillisBehindLatest(shardID string, millis int64) {
	c.e.add(c.shard(shardID), kclMillisBehindLatest, float64(millis))
}

// ProcessorError implements consumer.Metrics.
func (c *Consumer) ProcessorError(shardID string) {
	c.e.add(c.shard(shardID), kclProcessorErrors, 1)
}

// OutOfRangeRecords implements consumer.Metrics.
func (c *Consumer) OutOfRangeRecords(shardID string, n int) {
	c.e.add(c.shard(shardID), kclOutOfRangeRecords, float64(n))
}

// Throttled implements consumer.Metrics.
func (c *Consumer) Throttled(shardID string) {
	c.e.add(c.shard(shardID), kclReadThrottles, 1)
}

// IteratorExpired implements consumer.Metrics.
func (c *Consumer) IteratorExpired(shardID string) {
	c.e.add(c.shard(shardID), kclExpiredIterator, 1)
}

// RetentionRestart implements consumer.Metrics (shardflow's own metric;
// KCL has none for it).
func (c *Consumer) RetentionRestart(shardID string) {
	c.e.add(c.shard(shardID), kclRetentionRestart, 1)
}

// LeasesHeld implements consumer.Metrics.
func (c *Consumer) LeasesHeld(n int) {
	c.e.add(c.renew, kclCurrentLeases, float64(n))
}

// LeaseTaken implements consumer.Metrics.
func (c *Consumer) LeaseTaken(string) {
	c.e.add(c.takes, kclTakenLeases, 1)
}

// LeaseLost implements consumer.Metrics.
func (c *Consumer) LeaseLost(string) {
	c.e.add(c.renew, kclLostLeases, 1)
}

// ShardReleased implements consumer.Metrics. There is nothing to drop: the
// emitter keeps no per-shard value from one flush to the next, so a shard
// handed over, ended or shut down here simply stops appearing.
func (c *Consumer) ShardReleased(string) {}
