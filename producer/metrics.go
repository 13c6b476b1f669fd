package producer

import "time"

// Metrics receives the KPL's metrics. Methods are called from the
// producer's goroutines, must be safe for concurrent use and must not
// block. shardID is the shard the record was predicted for (or, for puts,
// where Kinesis stored it); it is empty while no shard map is loaded.
// Embed NopMetrics to implement only some methods.
type Metrics interface {
	// UserRecordReceived: one record accepted by Put (KPL
	// UserRecordsReceived, UserRecordsDataPut on receipt).
	UserRecordReceived(dataSize int)
	// UserRecordsPending: records with no outcome yet (or a callback
	// that has not returned) and the bytes they are charged against
	// MaxBufferedBytes, after each PutRecords call (KPL
	// UserRecordsPending).
	UserRecordsPending(records, bytes int)
	// KinesisRecordPut: one Kinesis record carrying userRecords user
	// records (userDataSize bytes of data) stored on shardID, kinesisSize
	// bytes on the wire (KPL UserRecordsPut, UserRecordsDataPut,
	// KinesisRecordsPut, KinesisRecordsDataPut,
	// UserRecordsPerKinesisRecord).
	KinesisRecordPut(shardID string, userRecords, userDataSize, kinesisSize int)
	// UserRecordsFailed: n user records failed for good with err (KPL
	// AllErrors on user records). Expired records are also reported to
	// UserRecordsExpired.
	UserRecordsFailed(shardID string, n int, err error)
	// UserRecordsExpired: n user records passed RecordTTL (KPL
	// UserRecordExpired).
	UserRecordsExpired(shardID string, n int)
	// BufferingTime: time from Put to the first send of one user record
	// (KPL BufferingTime).
	BufferingTime(shardID string, d time.Duration)
	// RetriesPerRecord: attempts minus one of a user record at its outcome
	// (KPL RetriesPerRecord).
	RetriesPerRecord(shardID string, retries int)
	// RequestTime: one PutRecords call of kinesisRecords entries (KPL
	// Request Time, KinesisRecordsPerPutRecordsRequest); err is its
	// request-level error.
	RequestTime(d time.Duration, kinesisRecords int, err error)
	// ErrorsByCode: n Kinesis records failed an attempt with code (a
	// per-record ErrorCode or the request error's code) (KPL ErrorsByCode).
	ErrorsByCode(shardID, code string, n int)
}

// NopMetrics discards all metrics.
type NopMetrics struct{}

// UserRecordReceived implements Metrics.
func (NopMetrics) UserRecordReceived(int) {}

// UserRecordsPending implements Metrics.
func (NopMetrics) UserRecordsPending(int, int) {}

// KinesisRecordPut implements Metrics.
func (NopMetrics) KinesisRecordPut(string, int, int, int) {}

// UserRecordsFailed implements Metrics.
func (NopMetrics) UserRecordsFailed(string, int, error) {}

// UserRecordsExpired implements Metrics.
func (NopMetrics) UserRecordsExpired(string, int) {}

// BufferingTime implements Metrics.
func (NopMetrics) BufferingTime(string, time.Duration) {}

// RetriesPerRecord implements Metrics.
func (NopMetrics) RetriesPerRecord(string, int) {}

// RequestTime implements Metrics.
func (NopMetrics) RequestTime(time.Duration, int, error) {}

// ErrorsByCode implements Metrics.
func (NopMetrics) ErrorsByCode(string, string, int) {}
