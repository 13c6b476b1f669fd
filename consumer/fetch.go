package consumer

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardflow/shardflow/clock"
)

// startPos is where a fetcher starts reading a shard.
type startPos struct {
	typ       types.ShardIteratorType
	seq       string
	timestamp time.Time
}

// fetcher reads one shard and sends batches on out until the shard ends
// (the last batch has shardEnd set) or ctx ends. Every batch it sends has
// acquired its bytes from the budget; the receiver releases them.
type fetcher interface {
	run(ctx context.Context, out chan<- *batch) error
}

// byteBudget bounds the data fetched ahead of a shard's processor.
type byteBudget struct {
	mu    sync.Mutex
	used  int
	max   int
	freed chan struct{}
}

func newByteBudget(max int) *byteBudget { return &byteBudget{max: max, freed: make(chan struct{})} }

// acquire waits until n bytes fit. A batch larger than max is let through
// when nothing else is outstanding, so progress never stalls.
func (b *byteBudget) acquire(ctx context.Context, n int) error {
	for {
		b.mu.Lock()
		if b.used == 0 || b.used+n <= b.max {
			b.used += n
			b.mu.Unlock()
			return nil
		}
		ch := b.freed
		b.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

func (b *byteBudget) release(n int) {
	b.mu.Lock()
	b.used -= n
	close(b.freed)
	b.freed = make(chan struct{})
	b.mu.Unlock()
}

// shardReader holds what both fetchers share.
type shardReader struct {
	shardID string // the bare shard id, for Kinesis calls
	// metricsKey identifies the shard to Metrics: the lease key (the
	// shard id in single-stream mode, account:stream:epoch:shardId in
	// multi-stream mode).
	metricsKey string
	streamName string
	streamARN  string
	conv       *converter
	budget     *byteBudget
	cfg        *Config
	met        *metricHooks
	stat       *shardStatus // the shard's Status, told of each fetch
	log        *slog.Logger
	// emptyToo sends batches without records (CallProcessRecordsEvenForEmptyList).
	emptyToo    bool
	warnedRange bool
	// listShards lists the stream's shards, to confirm a shard is closed.
	listShards func(ctx context.Context) ([]types.Shard, error)
	// lostAfter is the checkpoint a retention restart left behind, until
	// the first record read after it bounds the lost range; "" otherwise.
	lostAfter string
}

// notFound handles a ResourceNotFoundException for the shard. It means the
// shard ended only when ListShards confirms it: the shard is closed, or
// gone (a closed shard aged out of retention). Ending an open shard would
// checkpoint SHARD_END and drop every later record of it for good, so
// otherwise (open, or the listing failed) the caller retries with backoff.
func (r *shardReader) notFound(ctx context.Context, call string, err error) (ended bool) {
	shards, lerr := r.listShards(ctx)
	if lerr != nil {
		if ctx.Err() == nil {
			r.log.Error(call+" reported the shard not found and ListShards failed; retrying", "err", err, "list_err", lerr)
		}
		return false
	}
	for i := range shards {
		if aws.ToString(shards[i].ShardId) != r.shardID {
			continue
		}
		if rg := shards[i].SequenceNumberRange; rg != nil && rg.EndingSequenceNumber != nil {
			r.log.Warn(call+" reported the shard not found; it is closed, so it has ended", "err", err)
			return true
		}
		r.log.Error(call+" reported an open shard not found; retrying", "err", err)
		return false
	}
	r.log.Warn(call+" reported the shard not found and ListShards no longer lists it; it has ended", "err", err)
	return true
}

// trimmed reports whether err from an iterator call at pos means the
// position can no longer be read (a checkpoint older than the stream's
// retention: the service refuses it as an invalid argument). Retrying
// would fail forever, so, as KCL does, reading restarts at TRIM_HORIZON:
// the records between the checkpoint and the trim horizon are lost, which
// is logged at Error (with the range once the first record is read) and
// counted in Metrics.RetentionRestart.
func (r *shardReader) trimmed(ctx context.Context, pos startPos, err error) (startPos, bool) {
	switch pos.typ {
	case types.ShardIteratorTypeAtSequenceNumber, types.ShardIteratorTypeAfterSequenceNumber:
	default:
		return pos, false
	}
	if !isInvalidArgument(err) {
		return pos, false
	}
	r.met.RetentionRestart(r.metricsKey)
	r.lostAfter = pos.seq
	r.log.Error("position refused, older than the stream's retention; restarting at TRIM_HORIZON (the lost range is logged with the first record read)",
		"position", pos.seq, "err", err)
	return startPos{typ: types.ShardIteratorTypeTrimHorizon}, true
}

// deliver converts raw records into a batch and sends it; it reports false
// when ctx ended first.
func (r *shardReader) deliver(ctx context.Context, out chan<- *batch, raw []types.Record, millisBehind *int64, shardEnd bool, children []types.ChildShard) error {
	b := &batch{shardEnd: shardEnd, childShards: children}
	r.stat.fetched(r.cfg.Clock.Now(), millisBehind)
	if millisBehind != nil {
		b.millisBehind = *millisBehind
		r.met.MillisBehindLatest(r.metricsKey, b.millisBehind)
	}
	if r.lostAfter != "" && len(raw) > 0 {
		if first := aws.ToString(raw[0].SequenceNumber); seqLess(r.lostAfter, first) {
			r.log.Error("records lost to the stream's retention", "lost_after", r.lostAfter, "lost_before", first)
		} else {
			// Refused for another reason: what follows the position is
			// still there (the records up to it are skipped as before).
			r.log.Warn("position refused but still retained: nothing lost", "position", r.lostAfter, "first", first)
		}
		r.lostAfter = ""
	}
	var oor int
	b.records, b.bytes, oor = r.conv.convert(make([]Record, 0, len(raw)), raw)
	if oor > 0 {
		r.met.OutOfRangeRecords(r.metricsKey, oor)
		level := slog.LevelDebug
		if !r.warnedRange {
			r.warnedRange, level = true, slog.LevelWarn // once per shard; the metric counts them all
		}
		r.log.Log(ctx, level, "sub-records outside the shard's hash range delivered (aggregated with a stale shard map)", "count", oor)
	}
	if len(b.records) == 0 && !shardEnd && !r.emptyToo {
		return nil
	}
	if err := r.budget.acquire(ctx, b.bytes); err != nil {
		return err
	}
	select {
	case out <- b:
		return nil
	case <-ctx.Done():
		r.budget.release(b.bytes)
		return ctx.Err()
	}
}

// poller is the GetRecords fetcher.
type poller struct {
	shardReader
	kc    Kinesis
	start startPos
}

func (p *poller) streamRef() (name, arn *string) {
	if p.streamARN != "" {
		return nil, aws.String(p.streamARN)
	}
	return aws.String(p.streamName), nil
}

// iterator gets a shard iterator at pos, retrying throttling and transient
// errors; used is pos, or TRIM_HORIZON after a retention restart. ok is
// false when the shard has ended (ListShards confirms it is closed or gone).
func (p *poller) iterator(ctx context.Context, pos startPos) (iter string, used startPos, ok bool, err error) {
	name, arn := p.streamRef()
	rt := retrier{b: p.cfg.ThrottleBackoff}
	for {
		in := &kinesis.GetShardIteratorInput{
			StreamName:        name,
			StreamARN:         arn,
			ShardId:           aws.String(p.shardID),
			ShardIteratorType: pos.typ,
		}
		switch pos.typ {
		case types.ShardIteratorTypeAtSequenceNumber, types.ShardIteratorTypeAfterSequenceNumber:
			in.StartingSequenceNumber = aws.String(pos.seq)
		case types.ShardIteratorTypeAtTimestamp:
			in.Timestamp = aws.Time(pos.timestamp)
		}
		out, err := p.kc.GetShardIterator(ctx, in)
		if err == nil {
			if out.ShardIterator == nil {
				return "", pos, false, nil
			}
			return *out.ShardIterator, pos, true, nil
		}
		if ctx.Err() != nil {
			return "", pos, false, ctx.Err()
		}
		if next, ok := p.trimmed(ctx, pos, err); ok {
			pos = next
			continue
		}
		switch {
		case isResourceNotFound(err):
			if p.notFound(ctx, "GetShardIterator", err) {
				return "", pos, false, nil
			}
		case isThrottle(err):
			p.met.Throttled(p.metricsKey)
		default:
			p.log.Warn("GetShardIterator failed; retrying", "err", err)
		}
		if err := clock.Sleep(ctx, p.cfg.Clock, rt.next()); err != nil {
			return "", pos, false, err
		}
	}
}

func (p *poller) run(ctx context.Context, out chan<- *batch) error {
	clk := p.cfg.Clock
	pos := p.start
	if pos.typ == types.ShardIteratorTypeLatest {
		// An iterator that expires before any record arrived is renewed at
		// the time of the first one, so records arriving in between are
		// not skipped (a fresh LATEST would skip them). The margin covers
		// clock skew; it can only add records, never lose them.
		pos = startPos{typ: types.ShardIteratorTypeAtTimestamp, timestamp: clk.Now().Add(-5 * time.Second)}
	}
	iter, used, ok, err := p.iterator(ctx, p.start)
	if err != nil {
		return err
	}
	if !ok {
		return p.deliver(ctx, out, nil, nil, true, nil)
	}
	if used != p.start {
		pos = used // a retention restart: renewals start there too
	}
	rt := retrier{b: p.cfg.ThrottleBackoff}
	_, arn := p.streamRef()
	for {
		callStart := clk.Now()
		res, err := p.kc.GetRecords(ctx, &kinesis.GetRecordsInput{
			ShardIterator: aws.String(iter),
			Limit:         aws.Int32(p.cfg.MaxRecords),
			StreamARN:     arn,
		})
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			switch {
			case isExpiredIterator(err):
				p.met.IteratorExpired(p.metricsKey)
				p.log.Info("shard iterator expired; renewing after the last record read", "from", pos.typ, "seq", pos.seq)
				iter, pos, ok, err = p.iterator(ctx, pos)
				if err != nil {
					return err
				}
				if !ok {
					return p.deliver(ctx, out, nil, nil, true, nil)
				}
				continue
			case isResourceNotFound(err):
				if p.notFound(ctx, "GetRecords", err) {
					return p.deliver(ctx, out, nil, nil, true, nil)
				}
				// Open: after the backoff, read on from a fresh iterator
				// at the last position read.
				if err := clock.Sleep(ctx, clk, rt.next()); err != nil {
					return err
				}
				iter, pos, ok, err = p.iterator(ctx, pos)
				if err != nil {
					return err
				}
				if !ok {
					return p.deliver(ctx, out, nil, nil, true, nil)
				}
				continue
			case isThrottle(err):
				p.met.Throttled(p.metricsKey)
			default:
				p.log.Warn("GetRecords failed; retrying", "err", err)
			}
			if err := clock.Sleep(ctx, clk, rt.next()); err != nil {
				return err
			}
			continue
		}
		rt.reset()
		if n := len(res.Records); n > 0 && res.Records[n-1].SequenceNumber != nil {
			pos = startPos{typ: types.ShardIteratorTypeAfterSequenceNumber, seq: *res.Records[n-1].SequenceNumber}
		}
		end := res.NextShardIterator == nil
		if err := p.deliver(ctx, out, res.Records, res.MillisBehindLatest, end, res.ChildShards); err != nil {
			return err
		}
		if end {
			return nil
		}
		iter = *res.NextShardIterator
		// At most one read per IdleTimeBetweenReads, counted from the start
		// of the previous call (time spent blocked on a full prefetch
		// buffer counts).
		if wait := p.cfg.IdleTimeBetweenReads - clk.Now().Sub(callStart); wait > 0 {
			if err := clock.Sleep(ctx, clk, wait); err != nil {
				return err
			}
		}
	}
}
