package producer

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/shardflow/shardflow/clock"
)

// Kinesis service limits the producer enforces.
const (
	// MaxRecordSize is the largest record Kinesis accepts: data plus
	// partition key.
	MaxRecordSize = 1 << 20
	// MaxPartitionKeyLength is the longest partition key, in characters as
	// Kinesis counts them (UTF-16 code units: an emoji counts twice).
	MaxPartitionKeyLength = 256
	// MaxPutRecordsCount is the most entries in one PutRecords call.
	MaxPutRecordsCount = 500
	// MaxPutRecordsSize is the most bytes (data plus partition keys) in one
	// PutRecords call.
	MaxPutRecordsSize = 5 << 20

	shardRecordsPerSecond = 1000
	shardBytesPerSecond   = 1 << 20
)

// Defaults, equal to the KPL's where the KPL has the setting.
const (
	DefaultAggregationMaxCount     = math.MaxUint32
	DefaultAggregationMaxSize      = 51200
	DefaultCollectionMaxCount      = MaxPutRecordsCount
	DefaultCollectionMaxSize       = MaxPutRecordsSize
	DefaultRecordMaxBufferedTime   = 100 * time.Millisecond
	DefaultRecordTTL               = 30 * time.Second
	DefaultRequestTimeout          = 6 * time.Second
	DefaultRateLimit               = 150
	DefaultMaxConnections          = 24
	DefaultMaxBufferedRecords      = 1_000_000
	DefaultMaxBufferedBytes        = 256 << 20
	DefaultRetryBackoffBase        = 100 * time.Millisecond
	DefaultRetryBackoffMax         = 5 * time.Second
	DefaultShardMapRefreshInterval = 60 * time.Second
)

// Config configures a Producer. The zero value of every field means its
// default; New validates the result and fails with ErrInvalidConfig.
type Config struct {
	// DisableAggregation sends every user record as its own Kinesis record.
	// Aggregation (the KPL format) is on by default (KPL AggregationEnabled).
	DisableAggregation bool
	// AggregationMaxCount is the most user records in one aggregate.
	// Default 4,294,967,295 (KPL).
	AggregationMaxCount int64
	// AggregationMaxSize is the largest aggregate blob in bytes; a user
	// record larger than this is sent on its own. Default 51,200 (KPL),
	// at most 1 MiB.
	AggregationMaxSize int
	// CollectionMaxCount is the most Kinesis records in one PutRecords
	// call. Default and maximum 500 (KPL).
	CollectionMaxCount int
	// CollectionMaxSize is the most bytes (data plus partition keys) in one
	// PutRecords call. Default and maximum 5 MiB (KPL).
	CollectionMaxSize int
	// RecordMaxBufferedTime is the longest a record waits in the buffer
	// before its batch is sent, unless rate limits or MaxConnections hold
	// it back. Default 100 ms (KPL).
	RecordMaxBufferedTime time.Duration
	// RecordTTL is how long a record may remain unsent or be retried
	// before it fails with ErrRecordExpired, counted from the start of its
	// batch (at most RecordMaxBufferedTime before Put). A call in flight
	// ends when its records' TTL has passed. Default 30 s (KPL RecordTtl).
	// Values of 100 years or more (such as math.MaxInt64, the KPL's
	// "never") mean records never expire.
	RecordTTL time.Duration
	// RequestTimeout bounds one PutRecords (or ListShards) call. Default
	// 6 s (KPL).
	RequestTimeout time.Duration
	// RateLimit caps the traffic sent to each shard at this percentage of
	// the shard's limits (1,000 records/s and 1 MiB/s), with token buckets.
	// Default 150 (KPL); above 100 lets the backend's own throttling share
	// the work, as in the KPL.
	RateLimit int
	// FailIfThrottled fails a record the first time Kinesis throttles it
	// (ProvisionedThroughputExceededException) instead of retrying (KPL).
	FailIfThrottled bool
	// MaxConnections is the most PutRecords calls in flight. Default 24
	// (KPL).
	MaxConnections int
	// MaxBufferedRecords and MaxBufferedBytes bound the records accepted
	// by Put that have no outcome yet (or whose callback has not
	// returned), including those in flight and being retried, and the
	// memory they hold: each record is charged its data and key, their
	// copy in its aggregate and a fixed bookkeeping overhead (see the
	// package documentation for the formula). Defaults 1,000,000 records
	// and 256 MiB; MaxBufferedBytes must be at least MaxRecordSize. The
	// KPL has no such bound.
	MaxBufferedRecords int
	MaxBufferedBytes   int
	// FailWhenBufferFull makes Put return ErrBufferFull instead of
	// blocking when the buffer is full.
	FailWhenBufferFull bool
	// OrderedByPartitionKey keeps records with the same partition key (and
	// explicit hash key) in Put order on the shard, even across retries,
	// by allowing at most one PutRecords call in flight per shard. See the
	// package documentation for the exact guarantee.
	OrderedByPartitionKey bool
	// AcceptMisroutedAggregates treats an aggregate that Kinesis stored on
	// another shard than predicted (a split the producer had not seen yet)
	// as stored for all its records. By default, as in the KPL, the
	// records whose hash key lies outside that shard's range are sent
	// again to their own shard, because the KCL drops such records; set
	// this only when every consumer delivers them (shardflow's consumer
	// does), to avoid those duplicates.
	AcceptMisroutedAggregates bool
	// RetryBackoffBase and RetryBackoffMax shape the exponential backoff
	// with full jitter applied to a shard after throttling or a transient
	// error. Defaults 100 ms and 5 s; longer than 100 years counts as 100
	// years.
	RetryBackoffBase time.Duration
	RetryBackoffMax  time.Duration
	// ShardMapRefreshInterval is how often the shard map is re-read even
	// when nothing suggests it changed. Default 60 s.
	ShardMapRefreshInterval time.Duration
	// Clock is the time source; default the wall clock.
	Clock clock.Clock
	// Logger receives operational logs; default slog.Default().
	Logger *slog.Logger
	// Metrics receives KPL-style metrics through whichever Hook
	// interfaces it implements (see Metrics); default none.
	Metrics Metrics
}

// ErrInvalidConfig is wrapped by every configuration error from New.
var ErrInvalidConfig = errors.New("producer: invalid config")

// setDefault sets *v to d when it is zero (unset).
func setDefault[T int | int64 | time.Duration](v *T, d T) {
	if *v == 0 {
		*v = d
	}
}

// neverDuration is the longest duration the producer computes with (100
// years): longer configured durations are capped to it, which is "never"
// for a process.
const neverDuration = 100 * 365 * 24 * time.Hour

func (c Config) withDefaults() (Config, error) {
	setDefault(&c.AggregationMaxCount, DefaultAggregationMaxCount)
	setDefault(&c.AggregationMaxSize, DefaultAggregationMaxSize)
	setDefault(&c.CollectionMaxCount, DefaultCollectionMaxCount)
	setDefault(&c.CollectionMaxSize, DefaultCollectionMaxSize)
	setDefault(&c.RateLimit, DefaultRateLimit)
	setDefault(&c.MaxConnections, DefaultMaxConnections)
	setDefault(&c.MaxBufferedRecords, DefaultMaxBufferedRecords)
	setDefault(&c.MaxBufferedBytes, DefaultMaxBufferedBytes)
	setDefault(&c.RecordMaxBufferedTime, DefaultRecordMaxBufferedTime)
	setDefault(&c.RecordTTL, DefaultRecordTTL)
	setDefault(&c.RequestTimeout, DefaultRequestTimeout)
	setDefault(&c.RetryBackoffBase, DefaultRetryBackoffBase)
	setDefault(&c.RetryBackoffMax, DefaultRetryBackoffMax)
	setDefault(&c.ShardMapRefreshInterval, DefaultShardMapRefreshInterval)
	// Durations beyond a lifetime mean "never": capping them keeps the
	// instants computed from them (an enqueue offset plus the TTL, a
	// doubled backoff) from overflowing.
	for _, d := range []*time.Duration{&c.RecordMaxBufferedTime, &c.RecordTTL, &c.RetryBackoffBase, &c.RetryBackoffMax} {
		*d = min(*d, neverDuration)
	}
	c.Clock = clock.OrReal(c.Clock)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Metrics == nil {
		c.Metrics = NopMetrics{}
	}
	bad := func(format string, args ...any) (Config, error) {
		return c, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	switch {
	case c.AggregationMaxCount < 1 || c.AggregationMaxCount > math.MaxUint32:
		return bad("AggregationMaxCount %d not in [1, 4294967295]", c.AggregationMaxCount)
	case c.AggregationMaxSize < 64 || c.AggregationMaxSize > MaxRecordSize:
		return bad("AggregationMaxSize %d not in [64, %d]", c.AggregationMaxSize, MaxRecordSize)
	case c.CollectionMaxCount < 1 || c.CollectionMaxCount > MaxPutRecordsCount:
		return bad("CollectionMaxCount %d not in [1, %d]", c.CollectionMaxCount, MaxPutRecordsCount)
	case c.CollectionMaxSize < MaxRecordSize || c.CollectionMaxSize > MaxPutRecordsSize:
		return bad("CollectionMaxSize %d not in [%d, %d]", c.CollectionMaxSize, MaxRecordSize, MaxPutRecordsSize)
	case c.RecordMaxBufferedTime < 0:
		return bad("RecordMaxBufferedTime %v is negative", c.RecordMaxBufferedTime)
	case c.RecordTTL < 0 || c.RecordTTL < c.RecordMaxBufferedTime:
		return bad("RecordTTL %v must be at least RecordMaxBufferedTime %v", c.RecordTTL, c.RecordMaxBufferedTime)
	case c.RequestTimeout < 0:
		return bad("RequestTimeout %v is negative", c.RequestTimeout)
	case c.RateLimit < 1:
		return bad("RateLimit %d must be at least 1", c.RateLimit)
	case c.MaxConnections < 1 || c.MaxConnections > 256:
		return bad("MaxConnections %d not in [1, 256]", c.MaxConnections)
	case c.MaxBufferedRecords < 1:
		return bad("MaxBufferedRecords %d must be at least 1", c.MaxBufferedRecords)
	case c.MaxBufferedBytes < MaxRecordSize:
		return bad("MaxBufferedBytes %d must be at least %d", c.MaxBufferedBytes, MaxRecordSize)
	case c.RetryBackoffBase < 0 || c.RetryBackoffMax < c.RetryBackoffBase:
		return bad("RetryBackoffBase %v / RetryBackoffMax %v invalid", c.RetryBackoffBase, c.RetryBackoffMax)
	case c.ShardMapRefreshInterval < 0:
		return bad("ShardMapRefreshInterval %v is negative", c.ShardMapRefreshInterval)
	}
	return c, nil
}
