package emfmetrics

import (
	"fmt"
	"time"

	"github.com/shardflow/shardflow/producer"
)

// Producer implements producer.Metrics, in KPL's names and dimensions.
type Producer struct {
	e      *Emitter
	stream groupKey // namespace and stream
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

// Producer returns the metrics of the producer writing to stream, in the
// ProducerNamespace.
func (e *Emitter) Producer(stream string) (*Producer, error) {
	if stream == "" || len(stream) > 1024 {
		return nil, fmt.Errorf("%w: stream name %q must have 1 to 1024 characters", ErrInvalidOptions, stream)
	}
	return &Producer{e: e, stream: groupKey{namespace: e.producerNS, stream: stream}}, nil
}

func (p *Producer) shard(shardID string) groupKey {
	k := p.stream
	k.shard = shardID
	return k
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// UserRecordReceived implements producer.Metrics.
func (p *Producer) UserRecordReceived(dataSize int) {
	p.e.add(p.stream, kplUserRecordsReceived, 1)
	p.e.add(p.stream, kplUserRecordsDataReceived, float64(dataSize))
}

// UserRecordsPending implements producer.Metrics.
func (p *Producer) UserRecordsPending(records, bytes int) {
	p.e.add(p.stream, kplUserRecordsPending, float64(records))
	p.e.add(p.stream, kplUserRecordsDataPending, float64(bytes))
}

// KinesisRecordPut implements producer.Metrics.
func (p *Producer) KinesisRecordPut(shardID string, userRecords, userDataSize, kinesisSize int) {
	k := p.shard(shardID)
	p.e.add(k, kplUserRecordsPut, float64(userRecords))
	p.e.add(k, kplUserRecordsDataPut, float64(userDataSize))
	p.e.add(k, kplKinesisRecordsPut, 1)
	p.e.add(k, kplKinesisRecordsDataPut, float64(kinesisSize))
	p.e.add(k, kplUserPerKinesisRecord, float64(userRecords))
}

// UserRecordsFailed implements producer.Metrics.
func (p *Producer) UserRecordsFailed(shardID string, n int, _ error) {
	p.e.add(p.shard(shardID), kplUserRecordsFailed, float64(n))
}

// UserRecordsExpired implements producer.Metrics.
func (p *Producer) UserRecordsExpired(shardID string, n int) {
	p.e.add(p.shard(shardID), kplUserRecordExpired, float64(n))
}

// BufferingTime implements producer.Metrics.
func (p *Producer) BufferingTime(shardID string, d time.Duration) {
	p.e.add(p.shard(shardID), kplBufferingTime, ms(d))
}

// RetriesPerRecord implements producer.Metrics.
func (p *Producer) RetriesPerRecord(shardID string, retries int) {
	p.e.add(p.shard(shardID), kplRetriesPerRecord, float64(retries))
}

// RequestTime implements producer.Metrics. A failed call is counted by
// ErrorsByCode, which the producer calls with the request error's code.
func (p *Producer) RequestTime(d time.Duration, kinesisRecords int, _ error) {
	p.e.add(p.stream, kplRequestTime, ms(d))
	p.e.add(p.stream, kplKinesisPerRequest, float64(kinesisRecords))
}

// ErrorsByCode implements producer.Metrics: ErrorsByCode with the
// ErrorCode dimension, and AllErrors without it.
func (p *Producer) ErrorsByCode(shardID, code string, n int) {
	k := p.shard(shardID)
	p.e.add(k, kplAllErrors, float64(n))
	if code == "" {
		code = overflowCode
	}
	k.code = code
	p.e.add(k, kplErrorsByCode, float64(n))
}
