package consumer

import (
	"context"
	"errors"
	"log/slog"
	"runtime/debug"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardflow/shardflow/checkpoint"
	"github.com/shardflow/shardflow/lease"
)

// errNoShardEndCheckpoint is what a ShardEnded that returned nil without
// checkpointing is treated as.
var errNoShardEndCheckpoint = errors.New("consumer: ShardEnded returned without checkpointing SHARD_END")

// pipeline is the state of one shard being processed.
type pipeline struct {
	c   *Consumer
	s   *stream
	h   *shardHandle
	l   lease.Lease
	log *slog.Logger
	p   RecordProcessor
	cp  *checkpoint.Checkpointer
}

// outcome of a pipeline's main loop.
type outcome int

const (
	outAbrupt       outcome = iota // Run's context ended, or Shutdown timed out
	outLost                        // the lease was lost
	outShutdown                    // graceful shutdown requested
	outShardEnd                    // the shard ended and was checkpointed
	outHandoff                     // another worker asked for the lease
	outHandoffQuiet                // as outHandoff, without ShutdownRequested (not initialised, or ShardEnded called)
)

func (c *Consumer) runShard(ctx context.Context, h *shardHandle, l lease.Lease, w checkpoint.Writer) {
	s, err := c.streamOf(ctx, l)
	if err != nil {
		c.noStream(ctx, l, err)
		return
	}
	log := s.log.With("shard", l.Shard())
	if l.Finished() {
		// A shard finished earlier (possibly by a worker that died before
		// releasing it): make sure its children get leases, hand it back.
		log.Info("lease of a finished shard acquired; releasing it")
		c.requestSync()
		c.release(ctx, l.Key, log)
		return
	}
	switch c.waitForParents(ctx, h, l, log) {
	case parentsEnded:
	case parentUnreadable:
		// It cannot start, and waiting would hold a slot of this worker's
		// share for good; the coordinator does not take it again while
		// the parent cannot be read.
		c.release(ctx, l.Key, log)
		return
	default:
		if h.handoffRequested() && ctx.Err() == nil {
			c.release(ctx, l.Key, log) // nothing processed yet: hand over at once
		}
		return
	}
	select {
	case <-h.lost:
		// Lost before it started (e.g. while the previous pipeline of a
		// re-acquired lease was stopping): no processor to tell.
		return
	default:
	}
	if ctx.Err() != nil {
		return
	}
	pl := &pipeline{c: c, s: s, h: h, l: l, log: log}
	pl.p = c.factory.NewProcessor(l.Key)
	pl.cp = checkpoint.NewCheckpointer(l.Key, w, l.Checkpoint)
	defer pl.cp.Close()
	h.st.setCheckpointer(pl.cp)
	log.Info("processing shard", "from", l.Checkpoint.String())

	out := pl.run(ctx)
	switch out {
	case outLost:
		pl.cp.LeaseLost()
		log.Info("lease lost; processing stopped")
		_ = safeCall(func() error {
			pl.p.LeaseLost(context.WithoutCancel(ctx), LeaseLostInput{ShardID: l.Shard(), Stream: pl.ref()})
			return nil
		})
	case outShutdown, outHandoff:
		// A handoff is KCL 3.x's graceful lease handoff: the batch in
		// flight has finished, the processor checkpoints what it finished
		// (ShutdownRequested), and the lease then goes to the worker that
		// asked for it, which starts from that checkpoint. On shutdown the
		// release happens in drain, for every lease at once.
		err := safeCall(func() error {
			return pl.p.ShutdownRequested(ctx, ShutdownRequestedInput{ShardID: l.Shard(), Stream: pl.ref(), Checkpointer: pl.cp})
		})
		if err != nil {
			log.Error("ShutdownRequested failed; handing the lease over anyway", "err", err)
		}
		if out == outHandoff {
			pl.cp.Close() // no checkpoint after the handover
			log.Info("handing the lease over", "checkpoint", pl.cp.Last().String())
			c.release(ctx, l.Key, log)
		}
	case outHandoffQuiet:
		pl.cp.Close()
		c.release(ctx, l.Key, log)
	case outShardEnd:
		c.signalEnded()
		c.release(ctx, l.Key, log)
		// The children's leases exist now and their parent is finished:
		// take them (up to this worker's share) without waiting for the
		// next scheduled take pass.
		c.coord.TakeNow()
	}
}

// noStream handles a lease whose stream cannot be resolved: the lease is
// handed back, for another try later. Its leases are never deleted from
// here: one worker's failed lookup (another account's stream, a role that
// may not describe it, a throttled call) says nothing about the stream;
// the leases of a stream that is gone are the stream sync's to delete
// (FormerStreamsDeleteAfter).
func (c *Consumer) noStream(ctx context.Context, l lease.Lease, err error) {
	log := c.log.With("lease", l.Key)
	if ctx.Err() != nil {
		return
	}
	log.Error("stream of the lease cannot be resolved; handing the lease back", "stream_id", l.StreamID, "err", err)
	c.release(ctx, l.Key, log)
}

func (c *Consumer) release(ctx context.Context, key string, log *slog.Logger) {
	err := c.coord.Release(context.WithoutCancel(ctx), key)
	switch {
	case errors.Is(err, lease.ErrNotHeld):
		// Taken by another worker meanwhile: nothing left to release.
		log.Info("lease no longer held; nothing to release")
	case err != nil:
		log.Warn("releasing lease failed", "err", err)
	}
}

func (c *Consumer) signalEnded() {
	c.mu.Lock()
	close(c.ended)
	c.ended = make(chan struct{})
	c.mu.Unlock()
}

// parentsWait is how waitForParents ended.
type parentsWait int

const (
	parentsEnded     parentsWait = iota // every parent ended: start the shard
	parentsStopped                      // the pipeline must stop
	parentUnreadable                    // a parent's lease item cannot be read
)

// waitForParents blocks until every parent shard has checkpointed SHARD_END
// or has no lease. A parent lease item that cannot be read (not a transient
// error: the item must be fixed) is reported at Error and ends the wait.
func (c *Consumer) waitForParents(ctx context.Context, h *shardHandle, l lease.Lease, log *slog.Logger) parentsWait {
	for {
		c.mu.Lock()
		ended := c.ended
		c.mu.Unlock()
		pending := ""
		for _, pid := range l.ParentKeys() {
			pl, err := c.store.Get(ctx, pid)
			if errors.Is(err, lease.ErrNotFound) {
				continue
			}
			if err != nil {
				if ctx.Err() != nil {
					return parentsStopped
				}
				if errors.Is(err, lease.ErrUnreadable) {
					log.Error("parent lease unreadable: releasing the shard's lease until the item is fixed", "parent", pid, "err", err)
					return parentUnreadable
				}
				log.Warn("reading parent lease failed", "parent", pid, "err", err)
				pending = pid
				break
			}
			if !pl.Finished() {
				pending = pid
				break
			}
		}
		if pending == "" {
			h.st.setState(ShardInitializing)
			return parentsEnded
		}
		h.st.setState(ShardWaitingForParents)
		log.Debug("waiting for parent shard to end", "parent", pending)
		t := c.cfg.Clock.NewTimer(c.cfg.ParentShardPollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return parentsStopped
		case <-c.graceful:
			t.Stop()
			return parentsStopped
		case <-h.handoff:
			t.Stop()
			return parentsStopped
		case <-ended:
			t.Stop()
		case <-t.C():
		}
	}
}

func (pl *pipeline) start() startPos {
	pos := pl.l.Checkpoint
	switch pos.Sentinel {
	case checkpoint.SentinelTrimHorizon:
		return startPos{typ: types.ShardIteratorTypeTrimHorizon}
	case checkpoint.SentinelLatest:
		return startPos{typ: types.ShardIteratorTypeLatest}
	case checkpoint.SentinelAtTimestamp:
		if ts := pl.s.initial.Timestamp; !ts.IsZero() {
			return startPos{typ: types.ShardIteratorTypeAtTimestamp, timestamp: ts}
		}
		// No timestamp configured here: reading more is safer than less.
		return startPos{typ: types.ShardIteratorTypeTrimHorizon}
	}
	return startPos{typ: types.ShardIteratorTypeAtSequenceNumber, seq: pos.SequenceNumber}
}

func (pl *pipeline) newFetcher(budget *byteBudget) fetcher {
	c := pl.c
	name, arn := pl.s.ref()
	s := pl.s
	rd := shardReader{
		shardID:    pl.l.Shard(),
		metricsKey: pl.l.Key,
		streamName: aws.ToString(name),
		streamARN:  aws.ToString(arn),
		conv:       newConverter(pl.l.Key, pl.l.StartingHashKey, pl.l.EndingHashKey, pl.l.Checkpoint),
		budget:     budget,
		cfg:        &c.cfg,
		met:        c.met,
		stat:       pl.h.st,
		log:        pl.log,
		emptyToo:   c.cfg.CallProcessRecordsEvenForEmptyList,
		listShards: func(ctx context.Context) ([]types.Shard, error) { return c.listShards(ctx, s) },
	}
	if c.cfg.EnhancedFanOut {
		return &subscriber{shardReader: rd, kc: c.kc.(FanOutKinesis), consumerARN: c.fanOutConsumerARN(s), start: pl.start(),
			reregister: func(ctx context.Context) (string, error) { return c.reregisterConsumer(ctx, s) }}
	}
	return &poller{shardReader: rd, kc: c.kc, start: pl.start()}
}

// stopReason reports why the pipeline must stop, or -1 to go on.
func (pl *pipeline) stopReason(ctx context.Context) outcome {
	select {
	case <-pl.h.lost:
		return outLost
	default:
	}
	if ctx.Err() != nil {
		return outAbrupt
	}
	select {
	case <-pl.c.graceful:
		return outShutdown
	default:
	}
	if pl.h.handoffRequested() {
		return outHandoff
	}
	return -1
}

func (pl *pipeline) run(ctx context.Context) outcome {
	c := pl.c
	in := InitializeInput{
		ShardID:                pl.l.Shard(),
		Stream:                 pl.ref(),
		StartingPosition:       pl.l.Checkpoint,
		PendingCheckpoint:      pl.l.PendingCheckpoint,
		PendingCheckpointState: pl.l.PendingCheckpointState,
	}
	if out := pl.retry(ctx, "Initialize", func(ctx context.Context) error { return pl.p.Initialize(ctx, in) }); out >= 0 {
		switch out {
		case outShutdown:
			return outAbrupt // not initialised: nothing to shut down
		case outHandoff:
			return outHandoffQuiet
		}
		return out
	}

	pl.h.st.setState(ShardProcessing)
	fctx, fcancel := context.WithCancel(ctx)
	budget := newByteBudget(c.cfg.MaxPrefetchBytes)
	batches := make(chan *batch, c.cfg.MaxPrefetchBatches)
	fetchDone := make(chan struct{})
	f := pl.newFetcher(budget)
	go func() {
		defer close(fetchDone)
		if err := f.run(fctx, batches); err != nil && fctx.Err() == nil {
			pl.log.Error("fetcher stopped", "err", err)
		}
	}()
	defer func() {
		fcancel()
		<-fetchDone
	}()

	for {
		if out := pl.stopReason(ctx); out >= 0 {
			return out
		}
		var b *batch
		select {
		case <-ctx.Done():
			continue
		case <-pl.h.lost:
			continue
		case <-c.graceful:
			continue
		case <-pl.h.handoff:
			continue
		case b = <-batches:
		}
		out := pl.process(ctx, b)
		budget.release(b.bytes)
		if out >= 0 {
			return out
		}
		if b.shardEnd {
			return pl.shardEnd(ctx, b.childShards)
		}
	}
}

// process delivers one batch, retrying the processor until it succeeds.
func (pl *pipeline) process(ctx context.Context, b *batch) outcome {
	c := pl.c
	recs := b.records
	if len(recs) == 0 && !c.cfg.CallProcessRecordsEvenForEmptyList {
		return -1
	}
	called := false
	return pl.retry(ctx, "ProcessRecords", func(ctx context.Context) error {
		if called {
			// Records the processor already checkpointed are not redelivered.
			last := pl.cp.Last()
			for len(recs) > 0 && recs[0].Position().Compare(last) <= 0 {
				recs = recs[1:]
			}
			if len(recs) == 0 {
				return nil
			}
		}
		called = true
		start := c.cfg.Clock.Now()
		// The checkpointer knows which batch the processor works on and
		// whether it finished it, so that Checkpoint() after a failure
		// (in ShutdownRequested, say) never covers the failed batch.
		if n := len(recs); n > 0 {
			pl.cp.Delivered(recs[n-1].Position())
		}
		err := safeCall(func() error {
			return pl.p.ProcessRecords(ctx, ProcessRecordsInput{
				ShardID:            pl.l.Shard(),
				Stream:             pl.ref(),
				Records:            recs,
				MillisBehindLatest: b.millisBehind,
				Checkpointer:       pl.cp,
			})
		})
		pl.cp.Returned(err)
		if err == nil {
			size := 0
			for i := range recs {
				size += len(recs[i].Data)
			}
			end := c.cfg.Clock.Now()
			pl.h.st.processed(end)
			c.met.RecordsProcessed(pl.l.Key, len(recs), size, end.Sub(start))
			c.coord.RecordProcessed(pl.l.Key, size) // the lease's throughput, for balancing by load
		}
		return err
	})
}

// retry calls f until it succeeds (-1) or the pipeline must stop.
func (pl *pipeline) retry(ctx context.Context, what string, f func(context.Context) error) outcome {
	return pl.retryCall(ctx, what, true, f)
}

// retryCall is retry; processor says whether failures count as processor
// errors in the metrics.
func (pl *pipeline) retryCall(ctx context.Context, what string, processor bool, f func(context.Context) error) outcome {
	rt := retrier{b: pl.c.cfg.ProcessorRetryBackoff}
	for {
		err := safeCall(func() error { return f(ctx) })
		if err == nil {
			return -1
		}
		if errors.Is(err, checkpoint.ErrLeaseLost) {
			pl.h.markLost()
		}
		if out := pl.stopReason(ctx); out >= 0 {
			return out
		}
		d := rt.next()
		if processor {
			pl.c.met.ProcessorError(pl.l.Key)
			pl.log.Error("processor failed; retrying", "call", what, "err", err, "retry_in", d)
		} else {
			pl.log.Warn("retrying", "call", what, "err", err, "retry_in", d)
		}
		t := pl.c.cfg.Clock.NewTimer(d)
		select {
		case <-ctx.Done():
		case <-pl.h.lost:
		case <-pl.c.graceful:
		case <-pl.h.handoff:
		case <-t.C():
		}
		t.Stop()
		if out := pl.stopReason(ctx); out >= 0 {
			return out
		}
	}
}

// shardEnd finishes a closed shard: child leases first (so a crash after
// SHARD_END cannot strand the children), then the processor's SHARD_END
// checkpoint, then the parent lease records its children.
func (pl *pipeline) shardEnd(ctx context.Context, children []types.ChildShard) outcome {
	c := pl.c
	pl.h.st.setState(ShardEnding)
	if len(children) > 0 {
		if out := pl.retryCall(ctx, "create child leases", false, func(ctx context.Context) error {
			return c.createChildLeases(ctx, pl.s, pl.l.Shard(), children)
		}); out >= 0 {
			return out
		}
	} else {
		c.requestSync() // e.g. kinesalite reports no ChildShards
	}
	pl.cp.ShardEnded()
	pl.log.Info("shard ended", "children", len(children))
	out := pl.retry(ctx, "ShardEnded", func(ctx context.Context) error {
		if err := pl.p.ShardEnded(ctx, ShardEndedInput{ShardID: pl.l.Shard(), Stream: pl.ref(), Checkpointer: pl.cp}); err != nil {
			return err
		}
		if pl.cp.Last() != checkpoint.ShardEnd {
			return errNoShardEndCheckpoint
		}
		return nil
	})
	switch out {
	case outShutdown:
		return outAbrupt // ShardEnded was already called: no ShutdownRequested
	case outHandoff:
		return outHandoffQuiet
	}
	if out >= 0 {
		return out
	}
	if len(children) > 0 {
		ids := make([]string, 0, len(children))
		for _, ch := range children {
			ids = append(ids, aws.ToString(ch.ShardId))
		}
		if err := c.coord.UpdateChildShards(ctx, pl.l.Key, ids); err != nil {
			pl.log.Warn("recording child shards on the lease failed", "err", err)
		}
	}
	return outShardEnd
}

// safeCall runs f, turning a panic into a *PanicError.
func safeCall(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	return f()
}

// ref is the stream the pipeline's shard belongs to, for the processor.
func (pl *pipeline) ref() StreamRef {
	return StreamRef{Name: pl.s.name, ARN: pl.s.arn, ID: pl.s.id, LeaseKey: pl.l.Key}
}
