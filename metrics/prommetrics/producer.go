package prommetrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	mn "github.com/shardflow/shardflow/internal/metricnames"
	"github.com/shardflow/shardflow/producer"
)

// Producer implements producer.Metrics on Prometheus collectors.
type Producer struct {
	codes mn.Codes
	// Children resolved once: these are called per user record.
	received, receivedBytes          prometheus.Counter
	pending, pendingBytes            prometheus.Gauge
	userPerKinesis, bufferingTime    prometheus.Observer
	retries, requestTime, perRequest prometheus.Observer
	// Per-shard vectors curried with the stream.
	userPut, userPutBytes, kinesisPut, kinesisPutBytes *prometheus.CounterVec
	failed, expired, errorsByCode                      *prometheus.CounterVec
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

// NewProducer registers the producer's collectors on reg (reusing those a
// previous call registered) and returns the metrics of the producer
// writing to stream.
func NewProducer(reg prometheus.Registerer, stream string) (*Producer, error) {
	v := newProducerVecs()
	if err := v.register(reg); err != nil {
		return nil, err
	}
	s := prometheus.Labels{lStream: stream}
	return &Producer{
		received:        v.received.With(s),
		receivedBytes:   v.receivedBytes.With(s),
		pending:         v.pending.With(s),
		pendingBytes:    v.pendingBytes.With(s),
		userPerKinesis:  v.userPerKinesis.With(s),
		bufferingTime:   v.bufferingTime.With(s),
		retries:         v.retries.With(s),
		requestTime:     v.requestTime.With(s),
		perRequest:      v.kinesisPerRequest.With(s),
		userPut:         v.userPut.MustCurryWith(s),
		userPutBytes:    v.userPutBytes.MustCurryWith(s),
		kinesisPut:      v.kinesisPut.MustCurryWith(s),
		kinesisPutBytes: v.kinesisPutBytes.MustCurryWith(s),
		failed:          v.failed.MustCurryWith(s),
		expired:         v.expired.MustCurryWith(s),
		errorsByCode:    v.errorsByCode.MustCurryWith(s),
	}, nil
}

// UserRecordReceived implements producer.Metrics.
func (p *Producer) UserRecordReceived(dataSize int) {
	p.received.Inc()
	p.receivedBytes.Add(float64(dataSize))
}

// UserRecordsPending implements producer.Metrics.
func (p *Producer) UserRecordsPending(records, bytes int) {
	p.pending.Set(float64(records))
	p.pendingBytes.Set(float64(bytes))
}

// KinesisRecordPut implements producer.Metrics.
func (p *Producer) KinesisRecordPut(shardID string, userRecords, userDataSize, kinesisSize int) {
	p.userPut.WithLabelValues(shardID).Add(float64(userRecords))
	p.userPutBytes.WithLabelValues(shardID).Add(float64(userDataSize))
	p.kinesisPut.WithLabelValues(shardID).Inc()
	p.kinesisPutBytes.WithLabelValues(shardID).Add(float64(kinesisSize))
	p.userPerKinesis.Observe(float64(userRecords))
}

// UserRecordsFailed implements producer.Metrics.
func (p *Producer) UserRecordsFailed(shardID string, n int, err error) {
	p.failed.WithLabelValues(shardID, mn.FailureReason(err)).Add(float64(n))
}

// UserRecordsExpired implements producer.Metrics.
func (p *Producer) UserRecordsExpired(shardID string, n int) {
	p.expired.WithLabelValues(shardID).Add(float64(n))
}

// BufferingTime implements producer.Metrics.
func (p *Producer) BufferingTime(_ string, d time.Duration) {
	p.bufferingTime.Observe(d.Seconds())
}

// RetriesPerRecord implements producer.Metrics.
func (p *Producer) RetriesPerRecord(_ string, retries int) {
	p.retries.Observe(float64(retries))
}

// RequestTime implements producer.Metrics. A failed call is counted by
// ErrorsByCode, which the producer calls with the request error's code.
func (p *Producer) RequestTime(d time.Duration, kinesisRecords int, _ error) {
	p.requestTime.Observe(d.Seconds())
	p.perRequest.Observe(float64(kinesisRecords))
}

// ErrorsByCode implements producer.Metrics.
func (p *Producer) ErrorsByCode(shardID, code string, n int) {
	p.errorsByCode.WithLabelValues(shardID, p.codes.Label(code)).Add(float64(n))
}
