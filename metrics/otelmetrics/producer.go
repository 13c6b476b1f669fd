package otelmetrics

import (
	"context"
	"time"

	"github.com/shardflow/shardflow/internal/metricnames"
	"github.com/shardflow/shardflow/producer"
	"go.opentelemetry.io/otel/metric"
)

// Producer implements producer.Metrics on OpenTelemetry instruments.
type Producer struct {
	stream *attrs
	shards shardAttrs
	codes  codeSet

	received, receivedSize, userPut, userPutSize        metric.Int64Counter
	kinesisPut, kinesisPutSize, failed, expired, errors metric.Int64Counter
	pending, pendingSize                                metric.Int64Gauge
	userPerKinesis, retries, perRequest                 metric.Int64Histogram
	bufferingTime, requestTime                          metric.Float64Histogram
}

// Every producer hook is implemented (the compiler checks it: a hook
// missed or mistyped here would silently never be called).
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

// NewProducer creates the producer's instruments from mp and returns the
// metrics of the producer writing to stream.
func NewProducer(mp metric.MeterProvider, stream string) (*Producer, error) {
	if mp == nil {
		return nil, errNilProvider
	}
	b := newBuilder(mp)
	s := keyStream.String(stream)
	p := &Producer{
		stream:         newAttrs(s),
		shards:         shardAttrs{base: s},
		received:       b.counter(pReceived),
		receivedSize:   b.counter(pReceivedSize),
		pending:        b.gauge(pPending),
		pendingSize:    b.gauge(pPendingSize),
		userPut:        b.counter(pUserPut),
		userPutSize:    b.counter(pUserPutSize),
		kinesisPut:     b.counter(pKinesisPut),
		kinesisPutSize: b.counter(pKinesisPutSize),
		userPerKinesis: b.histogram(pUserPerKinesis, perRecordBuckets),
		failed:         b.counter(pFailed),
		expired:        b.counter(pExpired),
		bufferingTime:  b.seconds(pBufferingTime),
		retries:        b.histogram(pRetries, retryBuckets),
		requestTime:    b.seconds(pRequestTime),
		perRequest:     b.histogram(pKinesisPerRequest, perRequestBucket),
		errors:         b.counter(pErrorsByCode),
	}
	if err := b.done(); err != nil {
		return nil, err
	}
	return p, nil
}

// The interface's methods take no context; measurements need none.
var bg = context.Background()

// UserRecordReceived implements producer.Metrics.
func (p *Producer) UserRecordReceived(dataSize int) {
	p.received.Add(bg, 1, p.stream.add...)
	p.receivedSize.Add(bg, int64(dataSize), p.stream.add...)
}

// UserRecordsPending implements producer.Metrics.
func (p *Producer) UserRecordsPending(records, bytes int) {
	p.pending.Record(bg, int64(records), p.stream.rec...)
	p.pendingSize.Record(bg, int64(bytes), p.stream.rec...)
}

// KinesisRecordPut implements producer.Metrics.
func (p *Producer) KinesisRecordPut(shardID string, userRecords, userDataSize, kinesisSize int) {
	at := p.shards.of(shardID)
	p.userPut.Add(bg, int64(userRecords), at.add...)
	p.userPutSize.Add(bg, int64(userDataSize), at.add...)
	p.kinesisPut.Add(bg, 1, at.add...)
	p.kinesisPutSize.Add(bg, int64(kinesisSize), at.add...)
	p.userPerKinesis.Record(bg, int64(userRecords), p.stream.rec...)
}

// UserRecordsFailed implements producer.Metrics.
func (p *Producer) UserRecordsFailed(shardID string, n int, err error) {
	p.failed.Add(bg, int64(n), p.shards.with(shardID, keyReason.String(metricnames.FailureReason(err))).add...)
}

// UserRecordsExpired implements producer.Metrics.
func (p *Producer) UserRecordsExpired(shardID string, n int) {
	p.expired.Add(bg, int64(n), p.shards.of(shardID).add...)
}

// BufferingTime implements producer.Metrics.
func (p *Producer) BufferingTime(_ string, d time.Duration) {
	p.bufferingTime.Record(bg, d.Seconds(), p.stream.rec...)
}

// RetriesPerRecord implements producer.Metrics.
func (p *Producer) RetriesPerRecord(_ string, retries int) {
	p.retries.Record(bg, int64(retries), p.stream.rec...)
}

// RequestTime implements producer.Metrics. A failed call is counted by
// ErrorsByCode, which the producer calls with the request error's code.
func (p *Producer) RequestTime(d time.Duration, kinesisRecords int, _ error) {
	p.requestTime.Record(bg, d.Seconds(), p.stream.rec...)
	p.perRequest.Record(bg, int64(kinesisRecords), p.stream.rec...)
}

// ErrorsByCode implements producer.Metrics.
func (p *Producer) ErrorsByCode(shardID, code string, n int) {
	p.errors.Add(bg, int64(n), p.shards.with(shardID, keyCode.String(p.codes.label(code))).add...)
}
