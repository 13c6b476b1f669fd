package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/shardflow/shardflow/clock"
	"github.com/shardflow/shardflow/lease"
)

// InitialPosition says where a shard with no checkpoint starts.
type InitialPosition struct {
	// Type is Latest (the default), TrimHorizon or AtTimestamp.
	Type InitialPositionType
	// Timestamp is the start for AtTimestamp.
	Timestamp time.Time
}

// InitialPositionType names a start position in a shard.
type InitialPositionType int

// Initial position types.
const (
	// Latest starts after the most recent record (KCL's default).
	Latest InitialPositionType = iota
	// TrimHorizon starts at the oldest record still retained.
	TrimHorizon
	// AtTimestamp starts at the first record at or after a timestamp.
	AtTimestamp
)

func (t InitialPositionType) String() string {
	switch t {
	case Latest:
		return "LATEST"
	case TrimHorizon:
		return "TRIM_HORIZON"
	case AtTimestamp:
		return "AT_TIMESTAMP"
	}
	return "InitialPositionType(" + strconv.Itoa(int(t)) + ")"
}

func (p InitialPosition) validate() error {
	switch p.Type {
	case Latest, TrimHorizon:
	case AtTimestamp:
		if p.Timestamp.IsZero() {
			return errors.New("AT_TIMESTAMP needs a Timestamp")
		}
	default:
		return fmt.Errorf("unknown type %d", p.Type)
	}
	return nil
}

// StreamConfig is one stream of a multi-stream consumer (KCL's
// StreamConfig).
type StreamConfig struct {
	// Name or ARN names the stream; one is required.
	Name string
	ARN  string
	// ID is the stream identifier its leases are keyed by. Zero: the
	// account from the stream's ARN and its creation time (epoch seconds,
	// DescribeStreamSummary's StreamCreationTimestamp). Set it to take
	// over a table KCL wrote with an application-chosen epoch.
	ID lease.StreamIdentifier
	// InitialPosition is where this stream's shards with no checkpoint
	// start; nil takes Config.InitialPosition.
	InitialPosition *InitialPosition
	// ConsumerName is this stream's enhanced fan-out consumer name
	// (default Config.ConsumerName); ConsumerARN names a consumer already
	// registered on the stream, used as is (KCL's StreamConfig.consumerArn).
	// Both apply only with EnhancedFanOut.
	ConsumerName string
	ConsumerARN  string
}

// Backoff is an exponential backoff: Initial, doubled after each failure up
// to Max, with full jitter (a random wait up to that delay, as the
// producer and the AWS SDK retry).
type Backoff struct {
	Initial time.Duration
	Max     time.Duration
}

// Defaults (KCL 2.x's where KCL has the setting).
const (
	DefaultMaxRecords           = 10000
	DefaultIdleTimeBetweenReads = 1500 * time.Millisecond
	MinIdleTimeBetweenReads     = 200 * time.Millisecond
	DefaultShardSyncInterval    = 60 * time.Second
	DefaultFailoverTime         = 10 * time.Second
	// defaultThrottleBackoffMax is ThrottleBackoff.Max's default.
	defaultThrottleBackoffMax      = 10 * time.Second
	DefaultParentShardPollInterval = 10 * time.Second
	DefaultMaxPrefetchBatches      = 3
	DefaultMaxPrefetchBytes        = 8 << 20
	// DefaultShutdownTimeout is the bound we recommend for the context
	// passed to Shutdown (KCL waits as long for a graceful shutdown).
	// Shutdown itself takes no default: its ctx is the only bound, as for
	// every blocking call; the examples use this constant.
	DefaultShutdownTimeout = 30 * time.Second
	// DefaultStreamSyncInterval is how often the stream set of a
	// multi-stream consumer is re-evaluated (KCL's
	// NEW_STREAM_CHECK_INTERVAL_MILLIS).
	DefaultStreamSyncInterval = 60 * time.Second
)

// Config configures a Consumer. Zero fields take the documented defaults.
type Config struct {
	// ApplicationName names the application; it is the default lease
	// table name (as in KCL) and the default enhanced fan-out consumer
	// name. Required.
	ApplicationName string
	// TableName is the lease table's name (KCL's tableName), default
	// ApplicationName. NewWithDynamoDB opens this table; New checks it
	// against a store that knows its table (lease.DynamoStore does, through
	// Table()) and fails on a mismatch, so two services cannot share one
	// table by mistake. Stores that do not know a table (lease.MemoryStore)
	// are not checked.
	TableName string
	// StreamName or StreamARN names the stream; one is required, unless
	// Streams is set.
	StreamName string
	StreamARN  string
	// Streams turns on multi-stream mode (KCL's MultiStreamTracker): one
	// consumer processes every stream it returns, with one lease table in
	// KCL's multi-stream layout (lease keys
	// "account:stream:creationEpoch:shardId", attributes streamName and
	// shardId). It is called at start and every StreamSyncInterval; an
	// error keeps the previous set. Streams that appear get leases at once;
	// for streams that disappear see FormerStreamsDeleteAfter. Mutually
	// exclusive with StreamName and StreamARN. A table is either
	// single-stream or multi-stream, as in KCL.
	Streams func(ctx context.Context) ([]StreamConfig, error)
	// StreamSyncInterval is how often Streams is called (default 60 s).
	StreamSyncInterval time.Duration
	// FormerStreamsDeleteAfter is what happens to the leases of a stream
	// Streams no longer returns. Zero (the default) keeps them, and they
	// keep being processed (KCL's NO_STREAMS_LEASES_DELETION). Positive:
	// once the stream has been missing from this worker's set for that
	// long (on Clock), its leases are deleted, ending its processing on
	// every worker; a stream that comes back before is kept (KCL's
	// FORMER_STREAMS_AUTO_DETECTION_DEFERRED_DELETION). Every stream of
	// the lease table counts, not only those this process once listed (as
	// KCL seeds its stream map from the lease table): a stream removed
	// while the fleet was down is deleted too; this costs one lease table
	// scan per stream sync. A stream recreated under the same name is a
	// new stream (new creation epoch), the old one a former stream.
	// Choose it well above every worker's StreamSyncInterval: a worker
	// whose set is older could still be adding the stream. Leases are
	// never deleted because one worker failed to describe their stream.
	FormerStreamsDeleteAfter time.Duration
	// OrphanInitialPosition is the initial position for leases of streams
	// this worker's set does not list (another worker's newer set, or a
	// former stream whose leases are kept); default Latest, as KCL's
	// orphanedStreamInitialPositionInStream.
	OrphanInitialPosition InitialPosition
	// WorkerID identifies this worker in the lease table. Default:
	// "<hostname>:<pid>:<random hex>", unique per process and stable for its
	// life (a restarted process is a new worker and takes leases over after
	// FailoverTime or at once when the old one released them).
	WorkerID string
	// InitialPosition is where shards with no checkpoint start (default
	// Latest).
	InitialPosition InitialPosition

	// MaxRecords is GetRecords' Limit (default and maximum 10000).
	MaxRecords int32
	// IdleTimeBetweenReads is the pause between two GetRecords calls on one
	// shard (default 1.5 s, minimum 200 ms: Kinesis allows 5 reads/s/shard).
	IdleTimeBetweenReads time.Duration
	// MaxPrefetchBatches bounds the batches fetched ahead of the processor
	// per shard (default 3); MaxPrefetchBytes bounds their data (default
	// 8 MiB; a single batch larger than that is still fetched).
	MaxPrefetchBatches int
	MaxPrefetchBytes   int
	// CallProcessRecordsEvenForEmptyList delivers empty batches too (KCL's
	// callProcessRecordsEvenForEmptyRecordList), e.g. to observe
	// MillisBehindLatest.
	CallProcessRecordsEvenForEmptyList bool

	// ShardSyncInterval is how often the worker lists shards and creates
	// leases for new ones (default 60 s).
	ShardSyncInterval time.Duration
	// ParentShardPollInterval is how often a child shard re-checks its
	// parents' leases while waiting for them to reach SHARD_END (default
	// 10 s). Parents finished on this worker wake the child at once.
	ParentShardPollInterval time.Duration

	// FailoverTime, MaxLeasesForWorker and MaxLeasesToStealAtOneTime are
	// passed to the lease coordinator (defaults 10 s as in KCL, unlimited,
	// and "as many as reach the fair share" -- see lease.Config).
	FailoverTime              time.Duration
	MaxLeasesForWorker        int
	MaxLeasesToStealAtOneTime int
	// LeaseTakeInterval and LeaseExpiryScanInterval are passed to the lease
	// coordinator as TakeInterval and ExpiryScanInterval (defaults
	// (FailoverTime+25ms)*2 and FailoverTime+25ms); a short expiry scan
	// makes released leases move sooner.
	LeaseTakeInterval       time.Duration
	LeaseExpiryScanInterval time.Duration
	// LeaseInitialTakeDelay is lease.Config.InitialTakeDelay (default the
	// renew interval, FailoverTime/3 - 25ms): workers starting together on
	// unowned leases each take one, then their share after this delay, so
	// none steals from another at start-up (stolen leases redeliver
	// records). A lone worker waits too: it cannot know it is alone (see
	// lease.Config.InitialTakeDelay). Negative disables it: a service that
	// runs a single worker, or a test, sets -1 to start every shard in the
	// first pass.
	LeaseInitialTakeDelay time.Duration
	// Lease is the lease coordinator's configuration, whole: besides the
	// settings above it has RenewInterval, HandoffTimeout (graceful
	// handoff, default 30 s as KCL 3.x; negative steals outright as KCL
	// 2.x), HandoffPollInterval, Balance (by load, the default, or by
	// count), LoadHysteresis and the lease Metrics. WorkerID and Clock
	// are this Config's; Logger defaults to this Config's. The fields above
	// are shorthands for the same settings (FailoverTime,
	// MaxLeasesForWorker, MaxLeasesToStealAtOneTime, and LeaseTakeInterval,
	// LeaseExpiryScanInterval, LeaseInitialTakeDelay for TakeInterval,
	// ExpiryScanInterval, InitialTakeDelay): set either; setting both to
	// different values is an error naming the field.
	Lease lease.Config

	// KeepFinishedLeases keeps the leases of ended shards in the table. By
	// default (as KCL's cleanupLeasesUponShardCompletion) the shard sync
	// deletes a SHARD_END lease once every child shard's lease has a
	// checkpoint past its starting position (KCL's rule), so the table does
	// not grow with each reshard.
	KeepFinishedLeases bool

	// EnhancedFanOut reads with SubscribeToShard through a registered stream
	// consumer instead of polling GetRecords. The Kinesis client must then
	// implement FanOutKinesis. Each shard's subscription is renewed from
	// its last continuation sequence number after 4m30s on Clock, before
	// the service ends it at 5 minutes (and at once if the service ends it
	// sooner).
	EnhancedFanOut bool
	// ConsumerName is the enhanced fan-out consumer name (default
	// ApplicationName).
	ConsumerName string

	// ProcessorRetryBackoff paces retries of a failing processor call
	// (default 1 s doubling to 30 s).
	ProcessorRetryBackoff Backoff
	// ThrottleBackoff paces retries of throttled or failed Kinesis calls
	// (default 200 ms doubling to 10 s). In both, a zero Initial or Max
	// takes its default, clamped to the other bound when that one is set.
	ThrottleBackoff Backoff

	// UnhealthyAfter is how long the lease store or the stream may fail
	// without a success in between before Status reports the consumer
	// unhealthy (Status.Healthy), which is also logged once at Error when
	// it happens (and at Info when calls succeed again). KCL has no such
	// setting. Default DefaultUnhealthyAfter (1 minute: six failover times
	// at the default FailoverTime, so a store outage has by then cost
	// every lease); negative: never unhealthy for failing calls (Status
	// still reports since when they fail).
	//
	// The rule: a kind of call (a lease store call such as Renew; a
	// Kinesis call on one stream, such as GetRecords on stream s) fails
	// from its first failure until its next success, however far apart
	// its attempts are (a retry 10 s after the last, a ListShards once a
	// ShardSyncInterval), so UnhealthyAfter may be shorter than the retry
	// periods. A failure is an error that is not an answer: a timeout of
	// the call's own deadline counts, and so does a throttled call (a
	// minute of nothing but throttles is a minute without progress); a
	// call cancelled because the consumer or the shard stops does not. A
	// call still in flight for longer than UnhealthyAfter (a hung
	// endpoint, a call without a deadline) counts as failing since it
	// started. A kind no longer attempted for twice the longest of
	// UnhealthyAfter, ThrottleBackoff.Max, ShardSyncInterval, FailoverTime
	// and IdleTimeBetweenReads stops counting, and a kind counts only once
	// it has failed twice: a call made once that failed once (recording
	// child shards at a shard's end) is not an outage.
	UnhealthyAfter time.Duration

	// Clock, Logger and Metrics default to the real clock, slog.Default()
	// and no metrics. Metrics receives whichever Hook interfaces it
	// implements (see Metrics).
	Clock   clock.Clock
	Logger  *slog.Logger
	Metrics Metrics
}

// ErrInvalidConfig is wrapped by every configuration error.
var ErrInvalidConfig = errors.New("consumer: invalid config")

// orDefault sets *v to def when it is zero (unset) and reports whether the
// result is at least min.
func orDefault[T int | int32 | time.Duration](v *T, def, min T) bool {
	if *v == 0 {
		*v = def
	}
	return *v >= min
}

func (c Config) withDefaults() (Config, error) {
	bad := func(format string, a ...any) (Config, error) {
		return c, fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, a...))
	}
	if c.ApplicationName == "" {
		return bad("ApplicationName is required")
	}
	if c.TableName == "" {
		c.TableName = c.ApplicationName
	}
	if c.Streams != nil {
		if c.StreamName != "" || c.StreamARN != "" {
			return bad("Streams and StreamName/StreamARN are mutually exclusive")
		}
	} else if c.StreamName == "" && c.StreamARN == "" {
		return bad("StreamName or StreamARN (or Streams) is required")
	}
	if !orDefault(&c.StreamSyncInterval, DefaultStreamSyncInterval, 0) {
		return bad("StreamSyncInterval %v < 0", c.StreamSyncInterval)
	}
	if c.FormerStreamsDeleteAfter < 0 {
		return bad("FormerStreamsDeleteAfter %v < 0", c.FormerStreamsDeleteAfter)
	}
	if err := c.OrphanInitialPosition.validate(); err != nil {
		return bad("OrphanInitialPosition: %v", err)
	}
	if c.WorkerID == "" {
		c.WorkerID = DefaultWorkerID()
	}
	if err := c.InitialPosition.validate(); err != nil {
		return bad("InitialPosition: %v", err)
	}
	if c.MaxRecords == 0 {
		c.MaxRecords = DefaultMaxRecords
	}
	if c.MaxRecords < 1 || c.MaxRecords > 10000 {
		return bad("MaxRecords %d not in [1, 10000]", c.MaxRecords)
	}
	if !orDefault(&c.IdleTimeBetweenReads, DefaultIdleTimeBetweenReads, MinIdleTimeBetweenReads) {
		return bad("IdleTimeBetweenReads %v is under the %v minimum", c.IdleTimeBetweenReads, MinIdleTimeBetweenReads)
	}
	if !orDefault(&c.MaxPrefetchBatches, DefaultMaxPrefetchBatches, 1) {
		return bad("MaxPrefetchBatches %d < 1", c.MaxPrefetchBatches)
	}
	if !orDefault(&c.MaxPrefetchBytes, DefaultMaxPrefetchBytes, 1) {
		return bad("MaxPrefetchBytes %d < 1", c.MaxPrefetchBytes)
	}
	if !orDefault(&c.ShardSyncInterval, DefaultShardSyncInterval, 0) {
		return bad("ShardSyncInterval %v < 0", c.ShardSyncInterval)
	}
	if !orDefault(&c.ParentShardPollInterval, DefaultParentShardPollInterval, 0) {
		return bad("ParentShardPollInterval %v < 0", c.ParentShardPollInterval)
	}
	if err := c.mergeLease(); err != nil {
		return bad("%v", err)
	}
	if !orDefault(&c.FailoverTime, DefaultFailoverTime, 0) {
		return bad("FailoverTime %v < 0", c.FailoverTime)
	}
	if c.MaxLeasesForWorker < 0 || c.MaxLeasesToStealAtOneTime < 0 {
		return bad("MaxLeasesForWorker and MaxLeasesToStealAtOneTime must not be negative")
	}
	if c.ConsumerName == "" {
		c.ConsumerName = c.ApplicationName
	}
	var err error
	if c.ProcessorRetryBackoff, err = c.ProcessorRetryBackoff.withDefaults(time.Second, 30*time.Second); err != nil {
		return bad("ProcessorRetryBackoff: %v", err)
	}
	if c.ThrottleBackoff, err = c.ThrottleBackoff.withDefaults(200*time.Millisecond, defaultThrottleBackoffMax); err != nil {
		return bad("ThrottleBackoff: %v", err)
	}
	if c.UnhealthyAfter == 0 {
		c.UnhealthyAfter = DefaultUnhealthyAfter
	}
	c.Clock = clock.OrReal(c.Clock)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Lease.FailoverTime = c.FailoverTime
	c.Lease.WorkerID, c.Lease.Clock = c.WorkerID, c.Clock
	if c.Metrics == nil {
		c.Metrics = NopMetrics{}
	}
	return c, nil
}

// mergeLease reconciles the shorthand lease fields with Lease: each setting
// ends up the same in both.
func (c *Config) mergeLease() error {
	l := &c.Lease
	if l.WorkerID != "" && l.WorkerID != c.WorkerID {
		return fmt.Errorf("Lease.WorkerID %q differs from WorkerID %q (leave it empty)", l.WorkerID, c.WorkerID)
	}
	if l.Clock != nil && c.Clock != nil && l.Clock != c.Clock {
		return errors.New("Lease.Clock differs from Clock (leave it nil)")
	}
	if c.Clock == nil {
		c.Clock = l.Clock
	}
	return errors.Join(
		merge("FailoverTime", &c.FailoverTime, &l.FailoverTime),
		merge("MaxLeasesForWorker", &c.MaxLeasesForWorker, &l.MaxLeasesForWorker),
		merge("MaxLeasesToStealAtOneTime", &c.MaxLeasesToStealAtOneTime, &l.MaxLeasesToStealAtOneTime),
		merge("LeaseTakeInterval", &c.LeaseTakeInterval, &l.TakeInterval),
		merge("LeaseExpiryScanInterval", &c.LeaseExpiryScanInterval, &l.ExpiryScanInterval),
		merge("LeaseInitialTakeDelay", &c.LeaseInitialTakeDelay, &l.InitialTakeDelay),
	)
}

// merge makes a shorthand field and its Lease field equal: whichever is set
// wins; both set differently is an error.
func merge[T int | time.Duration](name string, short, long *T) error {
	switch {
	case *short == 0:
		*short = *long
	case *long == 0:
		*long = *short
	case *short != *long:
		return fmt.Errorf("%s %v differs from its Lease setting %v (set one)", name, *short, *long)
	}
	return nil
}

func (b Backoff) withDefaults(initial, maxDelay time.Duration) (Backoff, error) {
	// One bound set: the other's default is adjusted to keep the pair valid.
	switch {
	case b.Initial == 0 && b.Max == 0:
		b.Initial, b.Max = initial, maxDelay
	case b.Initial == 0:
		b.Initial = min(initial, b.Max)
	case b.Max == 0:
		b.Max = max(maxDelay, b.Initial)
	}
	if b.Initial < 0 || b.Max < b.Initial {
		return b, fmt.Errorf("need 0 < Initial (%v) <= Max (%v)", b.Initial, b.Max)
	}
	return b, nil
}

// DefaultWorkerID returns "<hostname>:<pid>:<8 random hex digits>". The
// random part keeps two processes with the same host name and pid (e.g. pid 1
// in containers) apart.
func DefaultWorkerID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	return fmt.Sprintf("%s:%d:%08x", host, os.Getpid(), randUint32())
}
