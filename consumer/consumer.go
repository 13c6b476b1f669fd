package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/shardflow/shardflow/checkpoint"
	"github.com/shardflow/shardflow/clock"
	"github.com/shardflow/shardflow/internal/streamref"
	"github.com/shardflow/shardflow/lease"
)

// Consumer is one worker of a consumer application: it holds shard leases
// in the application's lease table (balanced with the other workers) and
// runs one processor per held shard. Create it with New, start it with Run
// and stop it with Shutdown (graceful) or by cancelling Run's context
// (abrupt, like a crash).
type Consumer struct {
	cfg     Config
	kc      Kinesis
	store   lease.Store
	factory ProcessorFactory
	log     *slog.Logger
	coord   *lease.Coordinator
	met     *metricHooks // cfg.Metrics's hooks, resolved once

	// storeHealth and streamHealth follow the lease store's and Kinesis's
	// calls for Status (store and kc report to them).
	storeHealth, streamHealth *failureTracker

	// streams are the streams read, by stream id ("" in single-stream
	// mode, where it is the only one); under mu. A stream's consumerARN
	// changes (under mu) when a deregistered fan-out consumer is
	// registered again.
	streams map[string]*stream
	// goneSince is when this worker first saw a stream id (of its
	// streams, or with FormerStreamsDeleteAfter of the lease table)
	// missing from its set; under mu.
	goneSince map[string]time.Time

	syncNow chan struct{} // asks the shard sync loop to run now

	mu          sync.Mutex
	started     bool
	ready       bool                    // start-up done (Status.Ready)
	stopping    bool                    // graceful shutdown in progress
	shards      map[string]*shardHandle // running shard pipelines
	pipelines   sync.WaitGroup          // every pipeline goroutine
	ended       chan struct{}           // closed and replaced when a shard ends here
	graceful    chan struct{}           // closed by Shutdown
	shutdownCtx context.Context         // Shutdown's context, set with graceful
	done        chan struct{}           // closed when Run has returned
	runErr      error
}

// New returns a consumer that reads the stream through kc, keeps its leases
// in store and gets a processor per shard from factory. For a lease table
// in DynamoDB pass lease.NewDynamoStore's store (NewWithDynamoDB does that).
func New(kc Kinesis, store lease.Store, factory ProcessorFactory, cfg Config) (*Consumer, error) {
	if kc == nil || store == nil || factory == nil {
		return nil, fmt.Errorf("%w: Kinesis client, lease store and processor factory are required", ErrInvalidConfig)
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if t, ok := store.(tableStore); ok && t.Table() != cfg.TableName {
		return nil, fmt.Errorf("%w: TableName %q (default ApplicationName) does not match the lease store's table %q",
			ErrInvalidConfig, cfg.TableName, t.Table())
	}
	if cfg.EnhancedFanOut {
		if _, ok := kc.(FanOutKinesis); !ok {
			return nil, ErrFanOutUnsupported
		}
	}
	// In multi-stream mode each stream's logger adds its name; the lease
	// coordinator's logs name leases by key, which holds the stream.
	log := cfg.Logger.With("worker", cfg.WorkerID)
	lcfg := cfg.Lease
	if cfg.Streams == nil {
		log = log.With("stream", streamLabel(cfg))
		if lcfg.Logger == nil {
			lcfg.Logger = cfg.Logger.With("stream", streamLabel(cfg))
		}
	} else if lcfg.Logger == nil {
		lcfg.Logger = cfg.Logger
	}
	// Every store and Kinesis call reports its outcome for Status.
	storeHealth := newFailureTracker("lease store", cfg, log)
	streamHealth := newFailureTracker("stream", cfg, log)
	store = &healthStore{Store: store, t: storeHealth}
	kc = &healthKinesis{Kinesis: kc, t: streamHealth}
	coord, err := lease.NewCoordinator(store, lcfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return &Consumer{
		cfg:     cfg,
		kc:      kc,
		store:   store,
		factory: factory,
		log:     log,
		coord:   coord,
		met:     newMetricHooks(cfg.Metrics, log),

		storeHealth:  storeHealth,
		streamHealth: streamHealth,
		syncNow:      make(chan struct{}, 1),
		streams:      make(map[string]*stream),
		goneSince:    make(map[string]time.Time),
		shards:       make(map[string]*shardHandle),
		ended:        make(chan struct{}),
		graceful:     make(chan struct{}),
		done:         make(chan struct{}),
	}, nil
}

func streamLabel(cfg Config) string {
	return streamref.Ref{Name: cfg.StreamName, ARN: cfg.StreamARN}.Label()
}

// tableStore is a lease store that knows its table's name
// (lease.DynamoStore), checked against Config.TableName.
type tableStore interface{ Table() string }

// NewWithDynamoDB is New with the lease table in DynamoDB: the table is
// named cfg.TableName (default cfg.ApplicationName) and created (on-demand
// billing) when missing. A ddb that also implements lease.DynamoDBQueryAPI
// (as *dynamodb.Client does) lets the store query the lease-owner index.
func NewWithDynamoDB(ctx context.Context, kc Kinesis, ddb lease.DynamoDBAPI, factory ProcessorFactory, cfg Config) (*Consumer, error) {
	if cfg.ApplicationName == "" {
		return nil, fmt.Errorf("%w: ApplicationName is required", ErrInvalidConfig)
	}
	table := cfg.TableName
	if table == "" {
		table = cfg.ApplicationName
	}
	store, err := lease.NewDynamoStore(ctx, ddb, table)
	if err != nil {
		return nil, fmt.Errorf("consumer: lease table %s: %w", table, err)
	}
	return New(kc, store, factory, cfg)
}

// Shards returns the lease keys of the shards this worker is processing
// (or waiting to process, for children whose parents have not ended): the
// shard ids, or in multi-stream mode "account:stream:creationEpoch:shardId".
func (c *Consumer) Shards() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	ids := make([]string, 0, len(c.shards))
	for id := range c.shards {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// WorkerID returns the worker id this consumer holds leases under.
func (c *Consumer) WorkerID() string { return c.cfg.WorkerID }

// Run processes the stream until ctx ends, Shutdown completes, or a fatal
// error (the stream or lease table cannot be used). After Shutdown it
// returns nil; when ctx ends it stops every shard at once without calling
// the processors or releasing leases (other workers take them after
// FailoverTime, exactly as after a crash) and returns ctx.Err().
// Run may be called once.
func (c *Consumer) Run(ctx context.Context) error {
	c.mu.Lock()
	if c.started {
		c.mu.Unlock()
		return ErrStopped
	}
	c.started = true
	c.mu.Unlock()
	c.storeHealth.runStarted(ctx)
	c.streamHealth.runStarted(ctx)
	err := c.run(ctx)
	c.mu.Lock()
	c.runErr = err
	c.mu.Unlock()
	close(c.done)
	return err
}

func (c *Consumer) run(ctx context.Context) error {
	// Shutdown during start-up abandons it.
	pctx, cancelPrepare := context.WithCancel(ctx)
	stopWatch, watchDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watchDone)
		select {
		case <-c.graceful:
			cancelPrepare()
		case <-stopWatch:
		}
	}()
	err := c.prepare(pctx)
	close(stopWatch)
	<-watchDone
	cancelPrepare()
	if err != nil {
		select {
		case <-c.graceful:
			return nil
		default:
			return err
		}
	}
	c.mu.Lock()
	c.ready = true
	c.mu.Unlock()

	// The coordinator and the loops that follow its decisions live until
	// every shard pipeline has stopped (and, on Shutdown, leases are
	// released), so renewals continue while processors checkpoint.
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBG()
	g, gctx := errgroup.WithContext(bg)
	g.Go(func() error { return c.coord.Run(gctx) })
	g.Go(func() error { c.followLeases(gctx); return nil })
	g.Go(func() error { c.syncLoop(gctx); return nil })

	var result error
	select {
	case <-ctx.Done():
		c.log.Info("context ended: stopping without releasing leases")
		c.stopShards()
		result = ctx.Err()
	case <-c.graceful:
		c.drain(ctx)
	case <-gctx.Done():
		// A fatal error from the coordinator.
		c.stopShards()
		result = context.Cause(gctx)
	}
	stopBG()
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) && result == nil {
		result = err
	}
	c.waitShards()
	// Each pipeline leaves the map just before its goroutine ends: wait
	// for the goroutines too, so nothing of this consumer is left running.
	c.pipelines.Wait()
	return result
}

// prepare resolves the stream, registers the fan-out consumer and creates
// the first leases.
func (c *Consumer) prepare(ctx context.Context) error {
	rt := retrier{b: c.cfg.ThrottleBackoff}
	if c.multi() {
		for {
			n, err := c.syncStreams(ctx)
			if err == nil {
				c.log.Info("stream sync done", "streams", len(c.trackedStreams()), "created", n)
				return nil
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			c.log.Warn("initial stream sync failed; retrying", "err", err)
			if err := clock.Sleep(ctx, c.cfg.Clock, rt.next()); err != nil {
				return err
			}
		}
	}
	s := &stream{name: c.cfg.StreamName, initial: c.cfg.InitialPosition, consumerName: c.cfg.ConsumerName, configured: true, tracked: true}
	if err := c.resolve(ctx, s, StreamConfig{Name: c.cfg.StreamName, ARN: c.cfg.StreamARN}); err != nil {
		return err
	}
	c.mu.Lock()
	c.streams[""] = s
	c.mu.Unlock()
	for {
		n, err := c.syncShards(ctx, s)
		if err == nil {
			c.log.Info("shard sync done", "created", n)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.log.Warn("initial shard sync failed; retrying", "err", err)
		if err := clock.Sleep(ctx, c.cfg.Clock, rt.next()); err != nil {
			return err
		}
	}
}

// syncLoop runs the periodic shard sync, and an immediate one when a shard
// ended without reporting its children.
func (c *Consumer) syncLoop(ctx context.Context) {
	t := c.cfg.Clock.NewTicker(c.cfg.ShardSyncInterval)
	defer t.Stop()
	// Multi-stream mode re-evaluates the stream set on its own interval.
	var streamTick <-chan time.Time
	if c.multi() {
		st := c.cfg.Clock.NewTicker(c.cfg.StreamSyncInterval)
		defer st.Stop()
		streamTick = st.C()
	}
	for {
		periodic := false
		select {
		case <-ctx.Done():
			return
		case <-streamTick:
			if n, err := c.syncStreams(ctx); err != nil {
				if ctx.Err() == nil {
					c.log.Warn("stream sync failed; keeping the stream set", "err", err)
				}
			} else if n > 0 {
				c.coord.TakeNow()
			}
			continue
		case <-t.C():
			periodic = true
		case <-c.syncNow:
		}
		for _, s := range c.trackedStreams() {
			if n, err := c.syncShardsRecent(ctx, s, periodic); err != nil {
				if ctx.Err() == nil {
					s.log.Warn("shard sync failed", "err", err)
				}
			} else if n > 0 {
				s.log.Info("shard sync created leases", "created", n)
				c.coord.TakeNow()
			}
		}
	}
}

func (c *Consumer) requestSync() {
	select {
	case c.syncNow <- struct{}{}:
	default:
	}
}

// followLeases starts a pipeline for each lease the coordinator acquires
// and stops it when the lease is lost.
func (c *Consumer) followLeases(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-c.coord.Events():
			if !ok {
				return
			}
			switch ev.Type {
			case lease.Acquired:
				c.met.LeaseTaken(ev.Lease.Key)
				c.startShard(ctx, ev)
			case lease.Lost:
				// Stopped first, so that Status no longer counts the
				// lease once the hook has seen it go.
				c.stopShard(ev)
				if !errors.Is(ev.Err, lease.ErrReleased) {
					// Handed back (shard end, shutdown, handoff): not a loss.
					c.met.LeaseLost(ev.Lease.Key)
				}
			case lease.HandoffRequested:
				c.handOffShard(ev.Lease.Key)
			}
		}
	}
}

// shardHandle is one running shard pipeline.
type shardHandle struct {
	key    string
	cancel context.CancelFunc
	lost   chan struct{} // closed when the lease was lost
	done   chan struct{} // closed when the pipeline has stopped
	once   sync.Once
	// handoff is closed when another worker asked for the lease: the
	// pipeline finishes its batch, checkpoints and hands the lease over.
	handoff     chan struct{}
	handoffOnce sync.Once
	// timedOut is the lease as last held when it was given up at the
	// handoff deadline (ErrHandoffTimedOut): once the pipeline has
	// stopped, it is handed over (Coordinator.HandOverTimedOut).
	timedOut atomic.Pointer[lease.Lease]
	st       *shardStatus // what Status reports of the shard
}

func (h *shardHandle) markLost() { h.once.Do(func() { close(h.lost) }) }

func (h *shardHandle) markHandoff() { h.handoffOnce.Do(func() { close(h.handoff) }) }

func (h *shardHandle) handoffRequested() bool {
	select {
	case <-h.handoff:
		return true
	default:
		return false
	}
}

func (c *Consumer) startShard(ctx context.Context, ev lease.Event) {
	l := ev.Lease
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopping {
		// Acquired during shutdown (a take in flight when it began): hand
		// it back at once.
		c.mu.Unlock()
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.coord.Config().RenewInterval)
		_ = c.coord.Release(rctx, l.Key)
		cancel()
		c.mu.Lock()
		return
	}
	prev := c.shards[l.Key]
	ctx, cancel := context.WithCancel(context.Background())
	h := &shardHandle{key: l.Key, cancel: cancel, lost: make(chan struct{}), done: make(chan struct{}), handoff: make(chan struct{}), st: newShardStatus(l)}
	c.shards[l.Key] = h
	c.met.LeasesHeld(len(c.shards))
	c.pipelines.Add(1)
	go func() {
		defer c.pipelines.Done()
		defer close(h.done)
		defer cancel()
		if prev != nil {
			<-prev.done // a re-acquired lease waits for its old pipeline
		}
		var w checkpoint.Writer = c.coord
		if ev.Writer != nil {
			w = ev.Writer
		}
		c.runShard(ctx, h, l, w)
		if tl := h.timedOut.Load(); tl != nil {
			// Processing has stopped: the worker that asked for the
			// lease may start now rather than a failover time later.
			// The shard's ctx may be ending (a shutdown); the hand-over
			// is one bounded write, so it runs regardless.
			hctx, hcancel := context.WithTimeout(context.WithoutCancel(ctx), c.coord.Config().RenewInterval)
			if err := c.coord.HandOverTimedOut(hctx, *tl); err != nil {
				c.log.Warn("handing over a lease after the handoff deadline failed", "lease", l.Key, "err", err)
			}
			hcancel()
		}
		if !h.st.isLost() {
			c.met.ShardReleased(l.Key) // a loss has had LeaseLost
		}
		c.mu.Lock()
		if c.shards[l.Key] == h {
			delete(c.shards, l.Key)
			c.met.LeasesHeld(len(c.shards))
		}
		c.mu.Unlock()
	}()
}

func (c *Consumer) stopShard(ev lease.Event) {
	c.mu.Lock()
	h := c.shards[ev.Lease.Key]
	c.mu.Unlock()
	if h != nil {
		if errors.Is(ev.Err, lease.ErrHandoffTimedOut) {
			l := ev.Lease.Clone()
			h.timedOut.Store(&l)
		}
		if !errors.Is(ev.Err, lease.ErrReleased) {
			h.st.setLost()
		}
		h.markLost()
		h.cancel()
	}
}

// handOffShard asks the shard's pipeline to hand its lease over: events
// come in order, so the pipeline of key is the acquisition the request is
// for (a Lost cancels a request not yet delivered).
func (c *Consumer) handOffShard(key string) {
	c.mu.Lock()
	h := c.shards[key]
	c.mu.Unlock()
	if h != nil {
		h.markHandoff()
	}
}

// stopShards cancels every pipeline (abrupt stop).
func (c *Consumer) stopShards() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopping = true
	for _, h := range c.shards {
		h.cancel()
	}
}

func (c *Consumer) waitShards() {
	for {
		c.mu.Lock()
		var h *shardHandle
		for _, x := range c.shards {
			h = x
			break
		}
		c.mu.Unlock()
		if h == nil {
			return
		}
		<-h.done
	}
}

// Shutdown stops the consumer gracefully: each processor finishes its
// current batch and gets ShutdownRequested (to checkpoint), then every lease
// is released so other workers take the shards at once, without waiting for
// FailoverTime. It returns after all processing stopped and Run returned.
// From its start the worker takes no more leases. If ctx ends first, the
// remaining pipelines are stopped abruptly (and still waited for), the
// leases are still released (a short write with its own bound, the lease
// renew interval) and ctx's error is returned. Shutdown is idempotent; on a
// consumer that never ran it just prevents Run.
func (c *Consumer) Shutdown(ctx context.Context) error {
	c.mu.Lock()
	if !c.started {
		c.started = true
		c.stopping = true
		close(c.done)
		c.mu.Unlock()
		return nil
	}
	if c.shutdownCtx == nil {
		c.shutdownCtx = ctx
		close(c.graceful)
	}
	c.mu.Unlock()
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		c.stopShards()
		<-c.done
		return ctx.Err()
	}
}

// drain is Run's side of Shutdown: wait for every pipeline to finish its
// ShutdownRequested, then release all leases.
func (c *Consumer) drain(runCtx context.Context) {
	c.mu.Lock()
	c.stopping = true
	sctx := c.shutdownCtx
	c.mu.Unlock()
	// A worker shutting down takes no more leases: each would only be
	// handed back, after another worker could have started it.
	c.coord.StopTaking()
	stop := context.AfterFunc(runCtx, c.stopShards)
	defer stop()
	c.waitShards()
	// Leases of pipelines that stopped abruptly are released too: their
	// checkpoints are what the next owner resumes from. The release is a
	// short write bounded on its own, not by Shutdown's context: a context
	// already done (Shutdown's deadline passed while processors finished)
	// would otherwise leave every lease to expire, a failover time with
	// nobody processing the shards.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(sctx), c.coord.Config().RenewInterval)
	defer cancel()
	if err := c.coord.ReleaseAll(rctx); err != nil {
		c.log.Warn("releasing leases on shutdown failed; others take them after the failover time", "err", err)
	}
	c.log.Info("shut down")
}
