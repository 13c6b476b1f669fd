package promexport

import (
	"time"

	"github.com/shardflow/shardflow/consumer"
	mn "github.com/shardflow/shardflow/internal/metricnames"
	"github.com/shardflow/shardflow/producer"
)

// Producer receives a producer's metrics (every producer hook), labelled
// with its stream.
type Producer struct {
	stream string
	codes  mn.Codes

	received, receivedBytes, pending, pendingBytes          *family
	userPut, userPutBytes, kinesisPut, kinesisPutBytes      *family
	userPerKinesis, failed, expired, bufferingTime, retries *family
	requestTime, perRequest, errorsByCode                   *family
}

var (
	_ producer.HookUserRecordReceived = (*Producer)(nil)
	_ producer.HookUserRecordsPending = (*Producer)(nil)
	_ producer.HookKinesisRecordPut   = (*Producer)(nil)
	_ producer.HookUserRecordsFailed  = (*Producer)(nil)
	_ producer.HookUserRecordsExpired = (*Producer)(nil)
	_ producer.HookBufferingTime      = (*Producer)(nil)
	_ producer.HookRetriesPerRecord   = (*Producer)(nil)
	_ producer.HookRequestTime        = (*Producer)(nil)
	_ producer.HookErrorsByCode       = (*Producer)(nil)
)

// Producer returns the metrics of a producer writing to stream, for
// producer.Config.Metrics.
func (r *Registry) Producer(stream string) *Producer {
	return &Producer{
		stream:          stream,
		received:        r.family(mn.ProducerReceived),
		receivedBytes:   r.family(mn.ProducerReceivedBytes),
		pending:         r.family(mn.ProducerPending),
		pendingBytes:    r.family(mn.ProducerPendingBytes),
		userPut:         r.family(mn.ProducerUserPut),
		userPutBytes:    r.family(mn.ProducerUserPutBytes),
		kinesisPut:      r.family(mn.ProducerKinesisPut),
		kinesisPutBytes: r.family(mn.ProducerKinesisPutBytes),
		userPerKinesis:  r.family(mn.ProducerUserPerKinesis),
		failed:          r.family(mn.ProducerFailed),
		expired:         r.family(mn.ProducerExpired),
		bufferingTime:   r.family(mn.ProducerBufferingTime),
		retries:         r.family(mn.ProducerRetries),
		requestTime:     r.family(mn.ProducerRequestTime),
		perRequest:      r.family(mn.ProducerKinesisPerRequest),
		errorsByCode:    r.family(mn.ProducerErrorsByCode),
	}
}

func (p *Producer) UserRecordReceived(dataSize int) {
	p.received.add(1, p.stream)
	p.receivedBytes.add(float64(dataSize), p.stream)
}

func (p *Producer) UserRecordsPending(records, bytes int) {
	p.pending.set(float64(records), p.stream)
	p.pendingBytes.set(float64(bytes), p.stream)
}

func (p *Producer) KinesisRecordPut(shardID string, userRecords, userDataSize, kinesisSize int) {
	p.userPut.add(float64(userRecords), p.stream, shardID)
	p.userPutBytes.add(float64(userDataSize), p.stream, shardID)
	p.kinesisPut.add(1, p.stream, shardID)
	p.kinesisPutBytes.add(float64(kinesisSize), p.stream, shardID)
	p.userPerKinesis.observe(float64(userRecords), p.stream)
}

func (p *Producer) UserRecordsFailed(shardID string, n int, err error) {
	p.failed.add(float64(n), p.stream, shardID, mn.FailureReason(err))
}

func (p *Producer) UserRecordsExpired(shardID string, n int) {
	p.expired.add(float64(n), p.stream, shardID)
}

func (p *Producer) BufferingTime(_ string, d time.Duration) {
	p.bufferingTime.observe(d.Seconds(), p.stream)
}

func (p *Producer) RetriesPerRecord(_ string, retries int) {
	p.retries.observe(float64(retries), p.stream)
}

func (p *Producer) RequestTime(d time.Duration, kinesisRecords int, _ error) {
	p.requestTime.observe(d.Seconds(), p.stream)
	p.perRequest.observe(float64(kinesisRecords), p.stream)
}

func (p *Producer) ErrorsByCode(shardID, code string, n int) {
	p.errorsByCode.add(float64(n), p.stream, shardID, p.codes.Label(code))
}

// Consumer receives a consumer's metrics (every consumer hook), labelled
// with its stream.
type Consumer struct {
	stream string

	processed, processedBytes, processTime, behindLatest   *family
	processorErrors, outOfRange, throttles, expiredIters   *family
	retentionRestarts, leasesHeld, leasesTaken, leasesLost *family
}

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

// Consumer returns the metrics of a consumer of stream, for
// consumer.Config.Metrics.
func (r *Registry) Consumer(stream string) *Consumer {
	return &Consumer{
		stream:            stream,
		processed:         r.family(mn.ConsumerProcessed),
		processedBytes:    r.family(mn.ConsumerProcessedBytes),
		processTime:       r.family(mn.ConsumerProcessTime),
		behindLatest:      r.family(mn.ConsumerBehindLatest),
		processorErrors:   r.family(mn.ConsumerProcessorErrors),
		outOfRange:        r.family(mn.ConsumerOutOfRange),
		throttles:         r.family(mn.ConsumerThrottles),
		expiredIters:      r.family(mn.ConsumerExpiredIterators),
		retentionRestarts: r.family(mn.ConsumerRetentionRestarts),
		leasesHeld:        r.family(mn.ConsumerLeasesHeld),
		leasesTaken:       r.family(mn.ConsumerLeasesTaken),
		leasesLost:        r.family(mn.ConsumerLeasesLost),
	}
}

func (c *Consumer) RecordsProcessed(shardID string, records, bytes int, took time.Duration) {
	c.processed.add(float64(records), c.stream, shardID)
	c.processedBytes.add(float64(bytes), c.stream, shardID)
	c.processTime.observe(took.Seconds(), c.stream)
}

func (c *Consumer) MillisBehindLatest(shardID string, millis int64) {
	c.behindLatest.set(float64(millis)/1000, c.stream, shardID)
}

func (c *Consumer) ProcessorError(shardID string)  { c.processorErrors.add(1, c.stream, shardID) }
func (c *Consumer) Throttled(shardID string)       { c.throttles.add(1, c.stream, shardID) }
func (c *Consumer) IteratorExpired(shardID string) { c.expiredIters.add(1, c.stream, shardID) }
func (c *Consumer) RetentionRestart(shardID string) {
	c.retentionRestarts.add(1, c.stream, shardID)
}
func (c *Consumer) OutOfRangeRecords(shardID string, n int) {
	c.outOfRange.add(float64(n), c.stream, shardID)
}
func (c *Consumer) LeasesHeld(n int)  { c.leasesHeld.set(float64(n), c.stream) }
func (c *Consumer) LeaseTaken(string) { c.leasesTaken.add(1, c.stream) }

// LeaseLost also removes the shard's lag series, as prommetrics does:
// another worker reports it now.
func (c *Consumer) LeaseLost(shardID string) {
	c.leasesLost.add(1, c.stream)
	c.behindLatest.remove(c.stream, shardID)
}

// ShardReleased removes the shard's lag series when its pipeline stops
// here without a loss (handed over, ended, shut down), as LeaseLost does on
// a loss: only the shard's current owner reports its lag.
func (c *Consumer) ShardReleased(shardID string) {
	c.behindLatest.remove(c.stream, shardID)
}
