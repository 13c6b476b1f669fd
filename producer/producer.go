package producer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"golang.org/x/sync/errgroup"

	"github.com/shardflow/shardflow/aggregation"
	"github.com/shardflow/shardflow/clock"
	"github.com/shardflow/shardflow/internal/backoff"
	"github.com/shardflow/shardflow/internal/streamref"
)

// Client is the part of *kinesis.Client the producer uses.
type Client interface {
	PutRecords(ctx context.Context, params *kinesis.PutRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error)
	ListShards(ctx context.Context, params *kinesis.ListShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
}

var _ Client = (*kinesis.Client)(nil)

// Producer buffers, aggregates and sends records to one stream. It is safe
// for concurrent use.
type Producer struct {
	client     Client
	streamName *string
	streamARN  *string
	cfg        Config
	aggregate  bool
	clk        clock.Clock
	log        *slog.Logger
	met        *metricHooks // Config.Metrics's hooks, resolved once
	metricsOn  bool         // a per-record hook is set: per-record metric work is worth doing
	keys       *keyCache
	epoch      time.Time // Futures keep their enqueue time as an offset from it

	kick      chan struct{}
	refreshCh chan struct{}
	reqCh     chan *request
	g         *errgroup.Group
	runCancel context.CancelFunc
	reqBase   context.Context
	reqAbort  context.CancelCauseFunc
	closedCh  chan struct{}
	krPool    sync.Pool
	krMu      sync.Mutex
	krFree    []*kRecord // reset aggregates kept for reuse (see spareBytes)

	// Callbacks run on their own goroutine, so that a callback blocked in
	// Put (waiting for room) never holds up the dispatcher or a worker,
	// whose progress is what frees the room.
	cbMu    sync.Mutex
	cbQueue []callbackCall
	cbSpare []callbackCall
	cbKick  chan struct{}
	// cbGoroutine is the id of the goroutine running callbacks (see
	// fromCallback).
	cbGoroutine atomic.Uint64

	// Room in the buffer, taken by Put without a lock (see reserve):
	// the records accepted whose room is held (no outcome yet, or a
	// callback not returned) and their charge. Kept off the cache line of
	// the fields around them.
	_         [64]byte
	heldRecs  atomic.Int64
	heldBytes atomic.Int64
	// spareBytes is the memory of the aggregates kept for reuse
	// (krFree, changed under krMu), which counts against
	// MaxBufferedBytes like the records' charges (see putKR).
	spareBytes atomic.Int64
	_          [48]byte
	closed     atomic.Bool // Close was called: Put refuses
	// aggHint is the record count of the last aggregate sealed full, up
	// to maxAggHint: what a fresh aggregate makes room for (see getKR).
	aggHint atomic.Int32
	table   atomic.Pointer[routeTable]
	ready   readyTotals // what the lanes' queues hold
	// nextWake is when the dispatcher will next look, as an offset from
	// epoch; 0 while a pass runs or when it has nothing to wait for, so a
	// Put that starts a batch wakes it.
	nextWake atomic.Int64

	// completing counts the records whose outcome is published and whose
	// callback has not returned (their room is still in heldRecs);
	// settlingBatches the batches of outcomes being published, whose room
	// is freed before their Futures are done (Flush waits for them too);
	// roomWait is set while a Put waits for room or Flush or Close for the
	// drain (room or drained is set): only then does freeing room take
	// p.mu.
	completing      atomic.Int64
	completingBytes atomic.Int64
	settlingBatches atomic.Int64
	roomWait        atomic.Bool

	mu         sync.Mutex
	aborting   bool // Close's context ended: fail instead of retry
	flushing   int
	waiting    int // Puts blocked for room
	room       chan struct{}
	drained    chan struct{}
	shards     []shardRange
	lanes      []*lane // parallel to shards
	laneByID   map[string]*lane
	unmapped   *lane
	gen        uint64
	inflight   []*request
	allRanges  map[string]shardRange // every listed shard, open or closed
	unverified []unverifiedKR
	resent     []resentNote // logged once p.mu is released (logResent)
	rr         int
	keysSeen   map[string]struct{}
}

// New returns a Producer for the stream (a name or an ARN). It starts
// loading the shard map in the background; records put before it is
// loaded wait for it (within their TTL).
func New(client Client, stream string, cfg Config) (*Producer, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: nil client", ErrInvalidConfig)
	}
	if stream == "" {
		return nil, fmt.Errorf("%w: empty stream", ErrInvalidConfig)
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	hooks := newMetricHooks(cfg.Metrics, cfg.Logger.With("stream", stream))
	p := &Producer{
		client:    client,
		cfg:       cfg,
		aggregate: !cfg.DisableAggregation,
		clk:       cfg.Clock,
		log:       cfg.Logger.With("stream", stream),
		met:       hooks,
		metricsOn: hooks.on,
		keys:      newKeyCache(),
		epoch:     cfg.Clock.Now(),
		kick:      make(chan struct{}, 1),
		refreshCh: make(chan struct{}, 1),
		cbKick:    make(chan struct{}, 1),
		reqCh:     make(chan *request),
		closedCh:  make(chan struct{}),
		laneByID:  map[string]*lane{},
		keysSeen:  map[string]struct{}{},
	}
	p.unmapped = &lane{tot: &p.ready}
	p.streamName, p.streamARN = streamref.Parse(stream).Input()
	p.krPool.New = func() any { return new(kRecord) }
	runCtx, cancel := context.WithCancel(context.Background())
	p.runCancel = cancel
	p.reqBase, p.reqAbort = context.WithCancelCause(context.Background())
	g, gctx := errgroup.WithContext(runCtx)
	p.g = g
	g.Go(func() error { return p.dispatchLoop(gctx) })
	g.Go(func() error { return p.callbackLoop(gctx) })
	g.Go(func() error { return p.refreshLoop(gctx) })
	for i := 0; i < cfg.MaxConnections; i++ {
		g.Go(func() error { return p.worker(gctx) })
	}
	return p, nil
}

// Put enqueues data under partitionKey. It returns once the record is
// buffered; the Future reports its outcome. Put blocks while the buffer is
// full until there is room or ctx ends (or fails with ErrBufferFull, see
// Config.FailWhenBufferFull). If ctx can be canceled, canceling it also
// withdraws the record while it has not been sent yet or waits for a retry
// (its outcome is then ErrCanceled; see there for what an earlier attempt
// may have done). Bad input fails with an error matching ErrInvalidRecord
// and enqueues nothing.
func (p *Producer) Put(ctx context.Context, partitionKey string, data []byte) (*Future, error) {
	return p.PutRecord(ctx, Record{PartitionKey: partitionKey, Data: data}, nil)
}

// PutRecord is Put for a full Record, with an optional callback run once
// with the outcome, after the Future is done. Callbacks run one at a time,
// in the order outcomes are known, on a producer goroutine that does
// nothing else: a slow callback delays later callbacks (and Flush and
// Close, which wait for callbacks to return) but not sending. A record
// keeps its room in the buffer until its callback has returned, so slow
// callbacks make Put wait rather than let the backlog grow. A callback may
// Put: it waits for room like any Put, except when only callbacks
// returning could free room (it would wait for itself), when it is let in
// beyond the limits. It must not call Flush or Close.
func (p *Producer) PutRecord(ctx context.Context, record Record, callback func(*Result)) (*Future, error) {
	hi, lo, err := p.keys.check(record.PartitionKey, record.ExplicitHashKey, len(record.Data))
	if err != nil {
		return nil, err
	}
	var f *Future
	if !p.aggregate {
		// Without aggregation a record is a Kinesis record of its own,
		// whose Result nobody shares: it comes in the Future's allocation.
		// With aggregation the lane hands out the Future (newFuture).
		fr := new(futureResult)
		fr.f.res = &fr.res
		f = &fr.f
	}
	r := rec{f: f, pk: record.PartitionKey, ehk: record.ExplicitHashKey, data: record.Data, hashed: true, hi: hi, lo: lo, callback: callback}
	if ctx.Done() != nil {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		r.ctx = ctx
	}
	size := p.charge(&r)
	if !p.reserve(size) {
		if err := p.waitRoom(ctx, size); err != nil {
			return nil, err
		}
	}
	// Close sets closed before it waits for the held records to drain:
	// either it sees this reservation and waits for the record, or this
	// sees closed.
	if p.closed.Load() {
		p.release(1, size)
		return nil, ErrClosed
	}
	if p.enqueue(&r) || p.closed.Load() {
		p.wake()
	}
	if p.metricsOn {
		p.met.UserRecordReceived(len(record.Data))
	}
	return r.f, nil
}

// reserve takes room for one record of the given charge, if the buffer
// has it, without a lock. An empty buffer takes any record, however large
// its charge. Concurrent Puts may each pass the record limit by one (they
// check the count and take it in two steps), never the byte limit except
// through the empty-buffer rule.
func (p *Producer) reserve(size int) bool {
	sz := int64(size)
	for {
		b, n := p.heldBytes.Load(), p.heldRecs.Load()
		if n != 0 && (n >= int64(p.cfg.MaxBufferedRecords) || b+p.spareBytes.Load()+sz > int64(p.cfg.MaxBufferedBytes)) {
			return false
		}
		if p.heldBytes.CompareAndSwap(b, b+sz) {
			p.heldRecs.Add(1)
			return true
		}
	}
}

// waitRoom is reserve for a Put that found the buffer full: it waits for
// room under p.mu (or fails, with FailWhenBufferFull).
func (p *Producer) waitRoom(ctx context.Context, size int) error {
	waited := false
	p.mu.Lock()
	defer func() {
		if waited {
			p.waiting--
		}
		p.mu.Unlock()
	}()
	for {
		if p.closed.Load() {
			return ErrClosed
		}
		// The room channel exists before reserve looks again: whoever
		// frees room after this look closes it (release, finish and
		// completed free room first, then close it under p.mu).
		if p.room == nil {
			p.room = make(chan struct{})
		}
		p.roomWait.Store(true)
		room := p.room
		if p.reserve(size) || (p.dropSpares() && p.reserve(size)) {
			return nil
		}
		if c := p.completing.Load(); p.heldRecs.Load() == c && c > 0 && p.fromCallback() {
			// Only callbacks returning can free room, and this Put is
			// made by one: it would wait for itself.
			p.heldRecs.Add(1)
			p.heldBytes.Add(int64(size))
			return nil
		}
		if p.cfg.FailWhenBufferFull {
			return ErrBufferFull
		}
		if !waited {
			waited = true
			p.waiting++
		}
		p.mu.Unlock()
		p.wake() // send what is buffered now rather than at its deadline
		var cerr error
		select {
		case <-room:
		case <-ctx.Done():
			cerr = ctx.Err()
		}
		p.mu.Lock()
		if cerr != nil {
			return cerr
		}
	}
}

// release gives back the room of n records that were never enqueued.
func (p *Producer) release(n, bytes int) {
	p.heldRecs.Add(int64(-n))
	p.heldBytes.Add(int64(-bytes))
	p.mu.Lock()
	p.freedLocked()
	p.mu.Unlock()
}

// freedLocked wakes the Puts waiting for room and, once nothing is held
// or settling, Flush and Close (p.mu held, after the room was freed).
func (p *Producer) freedLocked() {
	if p.room != nil {
		close(p.room)
		p.room = nil
	}
	if p.drained != nil && p.heldRecs.Load() == 0 && p.settlingBatches.Load() == 0 {
		close(p.drained)
		p.drained = nil
	}
	p.roomWait.Store(p.drained != nil)
}

// freeRoom gives back the room of n records of the given charge whose
// outcome is settled. It takes p.mu only when someone waits: a waiter sets
// roomWait before it looks at the room, and this frees the room before it
// looks at roomWait, so one of them sees the other.
func (p *Producer) freeRoom(n, bytes int) {
	p.heldBytes.Add(int64(-bytes))
	p.heldRecs.Add(int64(-n))
	if p.roomWait.Load() {
		p.mu.Lock()
		p.freedLocked()
		p.mu.Unlock()
	}
}

// enqueue puts r in the lane the shard map predicts and reports whether
// the dispatcher should be woken. The fast path reads the map's snapshot
// and takes only the lane's lock; records without a lane (no map yet, a
// hash key in no known shard, a lane retired by a new map) go the slow
// way, under p.mu.
func (p *Producer) enqueue(r *rec) bool {
	if t := p.table.Load(); t != nil {
		if i := lookup(t.shards, r.hi, r.lo); i >= 0 {
			l := t.lanes[i]
			l.mu.Lock()
			if !l.retired {
				kick, sealed := p.addToLane(l, r, true)
				if sealed == nil {
					l.mu.Unlock()
					return kick
				}
				// The Put that fills an aggregate builds its blob, on the
				// core whose caches hold the records it just added (the
				// floor's way), outside the lane's lock: whoever takes
				// the aggregate meanwhile waits for buildMu (see build).
				sealed.buildMu.Lock()
				l.mu.Unlock()
				sealed.build(true)
				sealed.buildMu.Unlock()
				if kick && p.readyFull() {
					// A PutRecords call's worth is ready: let the
					// dispatcher and a connection send it before this
					// goroutine fills more (with one P they would
					// otherwise wait for its time slice to end, while
					// the backlog, and the memory it keeps cold, grows).
					p.wake()
					runtime.Gosched()
				}
				return kick
			}
			l.mu.Unlock()
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addLocked(r, true)
}

// fromCallback reports whether the calling goroutine is the one running
// callbacks. Only a Put that would otherwise wait for room asks, so the
// cost of reading the goroutine's id (from its stack header: Go offers no
// other way) is paid only when the buffer is full and callbacks hold it.
//
// Why goroutine identity, after looking for a design without it: records
// keep their room until their callback returns (so slow callbacks push
// back on Put instead of growing a backlog), and callbacks run one at a
// time; a callback blocked in Put while everything held is waiting for a
// callback would wait for itself. The alternatives each give up something
// the package promises:
//   - Freeing a record's room before its callback runs, or bounding the
//     callback queue on its own, moves the wait without removing it: the
//     callback's Put still waits for records that can only be settled,
//     or their callbacks run, after it returns.
//   - Letting in any Put while only callbacks hold room (no identity
//     needed) makes the bound leak: under a slow callback, one more
//     record per PutRecords round trip, without limit.
//   - An explicit API for Puts from callbacks (a context or a method)
//     changes what a callback may simply do with the Producer it has.
//
// So the exception applies to exactly the goroutine that would deadlock.
// The stack header "goroutine N [" has been stable since Go 1; were it to
// change, goroutineID returns 0, the exception never applies, and
// TestCallbackPutsWhileBufferFull deadlocks (checked: it then hangs
// until go test's -timeout, which names the waiting Put).
func (p *Producer) fromCallback() bool {
	id := p.cbGoroutine.Load()
	return id != 0 && id == goroutineID()
}

// goroutineID parses the current goroutine's id from "goroutine N [".
func goroutineID() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b, _ = bytes.CutPrefix(b, []byte("goroutine "))
	var id uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			break
		}
		id = id*10 + uint64(c-'0')
	}
	return id
}

// PutSync puts one record and waits for its outcome.
func (p *Producer) PutSync(ctx context.Context, record Record) (*Result, error) {
	f, err := p.PutRecord(ctx, record, nil)
	if err != nil {
		return nil, err
	}
	return f.Wait(ctx)
}

// Outstanding returns the records that have been accepted and have no
// outcome yet (or whose callback has not returned), and the bytes they
// are charged against MaxBufferedBytes (see the package documentation).
func (p *Producer) Outstanding() (records, bytes int) {
	return int(p.heldRecs.Load()), int(p.heldBytes.Load())
}

// Flush sends everything buffered without waiting for buffering deadlines
// and waits until every accepted record has its outcome (including records
// put by other goroutines meanwhile), or ctx ends.
func (p *Producer) Flush(ctx context.Context) error {
	p.mu.Lock()
	p.flushing++
	p.mu.Unlock()
	p.wake()
	err := p.waitDrained(ctx)
	p.mu.Lock()
	p.flushing--
	p.mu.Unlock()
	return err
}

// Close stops accepting records, flushes, waits for every outstanding
// record's outcome and stops all goroutines. If ctx ends first, records
// not yet put fail with ErrClosed (records in flight may or may not have
// been stored: their outcome says ErrClosed with the request's error) and
// Close returns ctx's error after all goroutines stopped. Close is
// idempotent; later calls wait for the first to finish.
func (p *Producer) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.closed.Load() {
		p.mu.Unlock()
		select {
		case <-p.closedCh:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	p.closed.Store(true)
	if p.room != nil {
		close(p.room)
		p.room = nil
	}
	p.mu.Unlock()
	p.wake()
	err := p.waitDrained(ctx)
	if err != nil {
		p.abort()
		_ = p.waitDrained(context.Background())
	}
	p.runCancel()
	_ = p.g.Wait()
	p.reqAbort(ErrClosed)
	close(p.closedCh)
	return err
}

func (p *Producer) abort() {
	p.mu.Lock()
	p.aborting = true
	var failed []rec
	collect := func(l *lane) {
		failed = append(failed, l.drain(p.putKR, false)...)
	}
	for _, l := range p.lanes {
		collect(l)
	}
	collect(p.unmapped)
	for _, r := range p.inflight {
		r.cancel(ErrClosed)
	}
	// Aggregates awaiting a shard check were stored: report them as such.
	var stored []rec
	for _, u := range p.unverified {
		n := len(stored)
		stored = u.kr.appendLoose(stored)
		for i := n; i < len(stored); i++ {
			stored[i].stored(u.kr.sid, u.kr.seq)
		}
	}
	p.unverified = nil
	p.mu.Unlock()
	p.finish(stored)
	for i := range failed {
		failed[i].fail(&RecordError{Reason: ErrClosed})
	}
	p.finish(failed)
}

func (p *Producer) waitDrained(ctx context.Context) error {
	for {
		p.mu.Lock()
		if p.drained == nil {
			p.drained = make(chan struct{})
		}
		p.roomWait.Store(true)
		if p.heldRecs.Load() == 0 && p.settlingBatches.Load() == 0 {
			p.freedLocked()
			p.mu.Unlock()
			return nil
		}
		ch := p.drained
		p.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (p *Producer) wake() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

func (p *Producer) requestRefresh() {
	select {
	case p.refreshCh <- struct{}{}:
	default:
	}
}

// finish publishes the outcomes of records whose outcome is decided,
// after freeing their room.
func (p *Producer) finish(rs []rec) {
	var st settling
	for i := range rs {
		p.publish(&rs[i], &st)
	}
	p.settled(&st)
}

// settling gathers records whose outcomes are decided: their room is
// freed (freeSettled) before their Futures are completed, so whoever has
// an outcome finds its room free, and their callbacks are queued in
// settled. While a batch settles it counts in settlingBatches, so that Flush
// does not return between freeing the room and completing the Futures.
type settling struct {
	begun                  bool
	n, bytes, ncb, cbBytes int       // decided, room not freed yet
	futs                   []*Future // decided, not completed yet (each with its f.res)
	calls                  []callbackCall
}

// publish publishes the outcome decided for r (r.f.res).
func (p *Producer) publish(r *rec, st *settling) {
	p.publishOne(r.f, r.size(), r.callback, st)
}

// publishOne decides the outcome of the Future f (f.res) of a record of
// the given size (data + key) and callback; freeSettled publishes it.
func (p *Producer) publishOne(f *Future, size int, callback func(*Result), st *settling) {
	res := f.res
	if p.metricsOn {
		p.met.RetriesPerRecord(res.ShardID, max(len(res.Attempts)-1, 0))
		if res.Err != nil {
			p.met.UserRecordsFailed(res.ShardID, 1, res.Err)
			if errors.Is(res.Err, ErrRecordExpired) {
				p.met.UserRecordsExpired(res.ShardID, 1)
			}
		}
	}
	sz := p.chargeSize(size)
	st.n++
	st.bytes += sz
	st.futs = append(st.futs, f)
	if callback != nil {
		st.calls = append(st.calls, callbackCall{res, callback, sz})
		st.ncb++
		st.cbBytes += sz
	}
}

// freeSettled frees the room of the records decided in st without a
// callback (those with one become "completing" and keep it until it
// returns), then completes their Futures.
func (p *Producer) freeSettled(st *settling) {
	if st.n == 0 {
		return
	}
	if !st.begun {
		st.begun = true
		p.settlingBatches.Add(1)
	}
	if st.ncb > 0 {
		p.completing.Add(int64(st.ncb))
		p.completingBytes.Add(int64(st.cbBytes))
	}
	p.freeRoom(st.n-st.ncb, st.bytes-st.cbBytes)
	st.n, st.bytes, st.ncb, st.cbBytes = 0, 0, 0, 0
	for _, f := range st.futs {
		f.complete(f.res)
	}
	clear(st.futs)
	st.futs = st.futs[:0]
}

// publishStored publishes the outcome of kr's records, stored at
// shardID and seq, in one pass: records that share their history share
// one Result, handed to each Future as it completes, so each record's
// Future is touched once.
func (p *Producer) publishStored(kr *kRecord, shardID, seq string, st *settling) {
	p.freeSettled(st) // what was decided before goes first
	if !kr.shared || p.metricsOn {
		kr.stored(shardID, seq)
		for i, f := range kr.futs {
			var cb func(*Result)
			size := 0
			if kr.xOn {
				cb, size = kr.x[i].callback, kr.x[i].size
			} else {
				pk, _, data := kr.record(i)
				size = len(pk) + len(data)
			}
			p.publishOne(f, size, cb, st)
		}
		p.freeSettled(st)
		return
	}
	var res *Result
	if f := kr.futs[0]; !p.aggregate && f.res != nil {
		res = f.res // its own, from Put (futureResult)
		*res = Result{ShardID: shardID, SequenceNumber: seq, Attempts: kr.history()}
	} else {
		res = &Result{ShardID: shardID, SequenceNumber: seq, Attempts: kr.history()}
	}
	st.n += kr.n()
	st.bytes += kr.charged(p)
	if kr.xOn {
		for i := range kr.x {
			if cb := kr.x[i].callback; cb != nil {
				sz := p.chargeSize(kr.x[i].size)
				st.calls = append(st.calls, callbackCall{res, cb, sz})
				st.ncb++
				st.cbBytes += sz
			}
		}
	}
	p.freeSettled(st) // st.futs is empty: only the room
	for _, f := range kr.futs {
		f.complete(res)
	}
}

// settled publishes what st still holds and queues the callbacks of the
// published records, in the order of their outcomes.
func (p *Producer) settled(st *settling) {
	p.freeSettled(st)
	if len(st.calls) > 0 {
		p.cbMu.Lock()
		p.cbQueue = append(p.cbQueue, st.calls...)
		p.cbMu.Unlock()
		select {
		case p.cbKick <- struct{}{}:
		default:
		}
	}
	if !st.begun {
		return
	}
	if p.settlingBatches.Add(-1) == 0 && p.roomWait.Load() {
		p.mu.Lock()
		p.freedLocked()
		p.mu.Unlock()
	}
	p.met.UserRecordsPending(int(p.heldRecs.Load()-p.completing.Load()), int(p.heldBytes.Load()-p.completingBytes.Load()))
}

// callbackCall is one callback waiting to run.
type callbackCall struct {
	res  *Result
	cb   func(*Result)
	size int
}

// callbackLoop runs callbacks in the order their outcomes were published.
// Close cancels ctx only once every outcome, callbacks included, is
// delivered, so nothing is left in the queue.
func (p *Producer) callbackLoop(ctx context.Context) error {
	p.cbGoroutine.Store(goroutineID())
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-p.cbKick:
		}
		for {
			p.cbMu.Lock()
			batch := p.cbQueue
			if len(batch) == 0 {
				p.cbMu.Unlock()
				break
			}
			// Double buffering: the finishers fill one slice while this
			// loop runs the other.
			p.cbQueue = p.cbSpare[:0]
			p.cbMu.Unlock()
			for i := range batch {
				c := &batch[i]
				c.cb(c.res)
				// Its room goes as soon as it has returned, not with the
				// batch's.
				p.completing.Add(-1)
				p.completingBytes.Add(int64(-c.size))
				p.freeRoom(1, c.size)
			}
			clear(batch)
			p.cbSpare = batch[:0]
		}
	}
}

// ---- routing and buffering (all with p.mu held) ----

// getKR returns an empty Kinesis record for l. Aggregates come from a
// small free list rather than the sync.Pool, which every GC empties: a
// fresh aggregate grows its key table, records and blob again, about 80
// bytes per user record of garbage. grow says kr replaces an aggregate
// that l sealed full (see below).
func (p *Producer) getKR(l *lane, grow bool) *kRecord {
	var kr *kRecord
	if p.aggregate && grow {
		// Only a filling lane reuses a kept aggregate: one reused for a
		// record on a quiet lane would hold a full aggregate's room for
		// that record, no longer charged as spare bytes.
		p.krMu.Lock()
		if n := len(p.krFree); n > 0 {
			kr = p.krFree[n-1]
			p.krFree[n-1] = nil
			p.krFree = p.krFree[:n-1]
			p.spareBytes.Add(-int64(kr.spare))
		}
		p.krMu.Unlock()
		if kr != nil {
			kr.reset() // here, so that its memory comes into this core's caches
		}
	}
	if kr == nil {
		kr = p.krPool.Get().(*kRecord)
	}
	if p.aggregate && kr.agg == nil {
		kr.agg = new(aggregation.Aggregator)
		if n := int(p.aggHint.Load()); grow && n > 1 {
			// A fresh aggregate that replaces one sealed full (its lane
			// is filling) takes the size of the last full one at once,
			// rather than growing to it, which would leave about as
			// much garbage again. Only then: its room, up to maxAggHint
			// records' slots, is not charged until records fill it, so
			// an aggregate opened for a record on a quiet lane stays
			// small (at most one aggregate per shard has room that is
			// not filled, see Cost in doc.go).
			if p.keys.bypass.Load() {
				kr.agg.GrowUnindexed(n) // AddWithinUnindexed needs no key index
			} else {
				kr.agg.Grow(n)
			}
			kr.futs = make([]*Future, 0, n)
		}
	}
	if cap(kr.futs) == 0 {
		kr.futs = kr.fut1[:0]
	}
	kr.lane = l
	kr.shared = true
	return kr
}

// putKR takes back a Kinesis record that is done with. A grown aggregate
// is kept for reuse while its memory fits the buffer's room (it is
// counted in spareBytes, against MaxBufferedBytes, until reused or
// dropped): the aggregates of one PutRecords call come back together,
// about 100 at the defaults, and growing fresh ones costs about 300 bytes
// of garbage per record. It never goes to the sync.Pool, which would keep
// any number of them alive outside the bound until two GCs have passed.
func (p *Producer) putKR(kr *kRecord) {
	// A Put may still be building kr's blob (see enqueue).
	kr.buildMu.Lock()
	kr.buildMu.Unlock() //nolint:staticcheck // waits for the builder
	if p.aggregate && cap(kr.futs) > 1 {
		// Kept for reuse, it is reset by getKR, on the core of the Put
		// that fills it next, rather than here: until then its
		// aggregator holds on to its last records' data and keys,
		// which its spare bytes count too.
		kr.spare = kr.capacity() + kr.dataBytes + kr.keyBytes
		// Its records' Futures, contexts and callbacks are the user's:
		// they must not outlive the delivery of their outcomes (nor
		// what they refer to, which no charge could count).
		kr.releaseRecords()
		p.krMu.Lock()
		if p.heldBytes.Load()+p.spareBytes.Load()+int64(kr.spare) <= int64(p.cfg.MaxBufferedBytes) {
			p.krFree = append(p.krFree, kr)
			p.spareBytes.Add(int64(kr.spare))
		}
		p.krMu.Unlock()
		return
	}
	kr.reset()
	p.krPool.Put(kr)
}

// dropSpares gives up the aggregates kept for reuse, making their room
// available to Puts, and reports whether there were any.
func (p *Producer) dropSpares() bool {
	p.krMu.Lock()
	defer p.krMu.Unlock()
	if len(p.krFree) == 0 {
		return false
	}
	clear(p.krFree)
	p.krFree = p.krFree[:0]
	p.spareBytes.Store(0)
	return true
}

// addLocked appends r to the lane the current map routes it to (p.mu
// held) and reports whether the dispatcher should be woken. A fresh
// record is one from Put; a re-routed one keeps its enqueue time.
func (p *Producer) addLocked(r *rec, fresh bool) bool {
	l := p.route(r)
	if l == p.unmapped {
		now := p.clk.Now()
		if fresh {
			r.enq = now.Sub(p.epoch)
		}
		if r.f == nil {
			r.f = new(Future) // rare: no slab of a shard's to take it from
		}
		// The dispatcher expires these records (and notices canceled
		// contexts) on its own schedule: make sure it looks in time.
		l.pending = append(l.pending, *r)
		return p.earlier(p.unmappedCheck(r, now))
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	kick, _ := p.addToLane(l, r, fresh) // a sealed aggregate is built by its worker
	return kick
}

// addToLane appends r to the mapped lane l (l.mu held) and reports
// whether the dispatcher should be woken, and the aggregate r sealed
// because it did not fit, if any. A fresh record takes its
// batch's start as its enqueue time, so that Put reads no clock: the
// aggregate's, or the lane's stamp, at most RecordMaxBufferedTime old.
func (p *Producer) addToLane(l *lane, r *rec, fresh bool) (kick bool, sealed *kRecord) {
	if !p.aggregate {
		if fresh {
			if l.stamp.IsZero() {
				l.stamp = p.clk.Now()
			}
			r.enq = l.stamp.Sub(p.epoch)
		}
		kr := p.getKR(l, false)
		kr.openedOff = r.enq
		kr.join(r)
		deadline := p.epoch.Add(r.enq + p.cfg.RecordMaxBufferedTime)
		kr.deadline, kr.expire, kr.hasCtx = deadline, p.epoch.Add(r.enq+p.cfg.RecordTTL), r.ctx != nil
		kr.size = r.size()
		l.putSealed(kr)
		return p.readyFull() || p.earlier(deadline), nil
	}
	if r.f == nil {
		r.f = l.newFuture()
	}
	kr := l.open
	full := false
	if kr != nil && !p.addToAggregate(kr, r) {
		full = true
		l.seal()
		if n := int32(min(kr.n(), maxAggHint)); n != p.aggHint.Load() {
			p.aggHint.Store(n)
		}
		kick = p.readyFull()
		if kr.n() > 1 {
			sealed = kr
		}
		kr = nil
	}
	if kr == nil {
		// A record always fits an empty aggregate (a larger one goes
		// alone, as itself).
		kr = p.getKR(l, full)
		kr.agg.Add(r.pk, r.ehk, r.data)
		opened := p.clk.Now()
		kr.openedOff = opened.Sub(p.epoch)
		kr.deadline, kr.expire = opened.Add(p.cfg.RecordMaxBufferedTime), opened.Add(p.cfg.RecordTTL)
		l.open = kr
		kick = p.earlier(kr.deadline) || kick
	}
	if fresh {
		r.enq = kr.openedOff
	} else {
		// A re-routed record may be older than the aggregate.
		if d := p.epoch.Add(r.enq + p.cfg.RecordMaxBufferedTime); d.Before(kr.deadline) {
			kr.deadline = d
			kick = p.earlier(d) || kick
		}
		if e := p.epoch.Add(r.enq + p.cfg.RecordTTL); e.Before(kr.expire) {
			kr.expire = e
		}
	}
	kr.join(r)
	if r.ctx != nil {
		kr.hasCtx = true
	}
	return kick, sealed
}

// charge is what a record counts against MaxBufferedBytes: its data and
// partition key, the producer's bookkeeping for it (recordOverhead) and,
// when aggregating, the copy of both in its aggregate's blob.
func (p *Producer) charge(r *rec) int { return p.chargeSize(r.size()) }

// chargeSize is the charge of a record of size bytes of data and key.
func (p *Producer) chargeSize(size int) int {
	if p.aggregate {
		return 2*size + recordOverhead
	}
	return size + recordOverhead
}

// charged is the sum of the charges of kr's records.
func (kr *kRecord) charged(p *Producer) int {
	size := kr.dataBytes + kr.keyBytes
	if p.aggregate {
		return 2*size + kr.n()*recordOverhead
	}
	return size + kr.n()*recordOverhead
}

// addToAggregate adds r to the aggregate of the non-empty kr if it fits
// within AggregationMaxCount, AggregationMaxSize and, with the carrier's
// partition key, the 1 MiB record limit, and reports whether it did. The
// caller joins r to kr.
func (p *Producer) addToAggregate(kr *kRecord, r *rec) bool {
	if int64(kr.agg.Len()) >= p.cfg.AggregationMaxCount {
		return false
	}
	limit := min(p.cfg.AggregationMaxSize, MaxRecordSize-kr.pk0)
	if p.keys.bypass.Load() {
		// Keys rarely repeat (the key cache finds few): indexing them
		// to share table entries would cost a map look-up and insert
		// per record for little; a key repeated back to back still
		// shares its entry.
		return kr.agg.AddWithinUnindexed(r.pk, r.ehk, r.data, limit)
	}
	return kr.agg.AddWithin(r.pk, r.ehk, r.data, limit)
}

// unmappedCheck is when the dispatcher must next look at f while it waits
// for a shard map: at its TTL or, if its context can end, soon, since
// nothing else notices the cancellation.
func (p *Producer) unmappedCheck(r *rec, now time.Time) time.Time {
	t := p.epoch.Add(r.enq + p.cfg.RecordTTL)
	if r.ctx != nil {
		if poll := now.Add(max(p.cfg.RecordMaxBufferedTime, minCancelPoll)); poll.Before(t) {
			return poll
		}
	}
	return t
}

// maxAggHint bounds the room a fresh aggregate makes for records (see
// aggHint): about 400 KB of slots.
const maxAggHint = 4096

// minCancelPoll bounds how often the dispatcher polls the contexts of
// records waiting for a shard map.
const minCancelPoll = 10 * time.Millisecond

// earlier reports whether t is before the dispatcher's next look (or a
// pass is running, or it has nothing to wait for): then whoever has
// something due at t must wake it.
func (p *Producer) earlier(t time.Time) bool {
	w := p.nextWake.Load()
	return w == 0 || t.Sub(p.epoch) < time.Duration(w)
}

// setNextWake publishes the dispatcher's next look (zero: none, or a pass
// is running).
func (p *Producer) setNextWake(t time.Time) {
	var w int64
	if !t.IsZero() {
		w = max(int64(t.Sub(p.epoch)), 1)
	}
	p.nextWake.Store(w)
}

// readyFull reports whether the lanes' ready queues hold a full
// PutRecords call, which is worth waking the dispatcher for.
func (p *Producer) readyFull() bool {
	return p.ready.n.Load() >= int64(p.cfg.CollectionMaxCount) || p.ready.bytes.Load() >= int64(p.cfg.CollectionMaxSize)
}

// requeueFrontLocked puts records (in their original order) back at the
// front of the lanes the current map routes them to, re-aggregated. It
// fails the expired and canceled ones into *done.
func (p *Producer) requeueFrontLocked(rs []rec, now time.Time, done *[]rec) {
	byLane := map[*lane][]rec{}
	var order []*lane
	for i := range rs {
		r := &rs[i]
		if err := p.deadErr(r, now); err != nil {
			r.fail(err)
			*done = append(*done, *r)
			continue
		}
		l := p.route(r)
		if _, ok := byLane[l]; !ok {
			order = append(order, l)
		}
		byLane[l] = append(byLane[l], *r)
	}
	for _, l := range order {
		list := byLane[l]
		if l == p.unmapped {
			l.pending = append(list, l.pending...)
			continue
		}
		var krs []*kRecord
		var kr *kRecord
		for i := range list {
			r := &list[i]
			if kr != nil && (!p.aggregate || !p.addToAggregate(kr, r)) {
				krs = append(krs, kr)
				kr = nil
			}
			if kr == nil {
				kr = p.getKR(l, false)
				kr.deadline = now
				kr.openedOff = r.enq
				kr.expire = p.epoch.Add(r.enq + p.cfg.RecordTTL)
				if p.aggregate {
					kr.agg.Add(r.pk, r.ehk, r.data)
				}
			}
			kr.join(r)
			kr.hasCtx = kr.hasCtx || r.ctx != nil
			if e := p.epoch.Add(r.enq + p.cfg.RecordTTL); e.Before(kr.expire) {
				kr.expire = e
			}
		}
		krs = append(krs, kr)
		for i := len(krs) - 1; i >= 0; i-- {
			k := krs[i]
			k.sealedSize()
			l.pushFront(k)
		}
	}
}

// deadErr returns the error a record fails with if it must not be sent any
// more: expired, canceled or closed. r has its own history (it left its
// Kinesis record).
func (p *Producer) deadErr(r *rec, now time.Time) error {
	code, msg := r.lastAttempt()
	if p.aborting {
		return &RecordError{Reason: ErrClosed, Code: code, Message: msg}
	}
	if !now.Before(p.epoch.Add(r.enq + p.cfg.RecordTTL)) {
		return &RecordError{Reason: ErrRecordExpired, Code: code, Message: msg}
	}
	if r.ctx != nil && r.ctx.Err() != nil {
		return &RecordError{Reason: ErrCanceled, Code: code, Message: msg, Cause: context.Cause(r.ctx)}
	}
	return nil
}

func (p *Producer) backoff(failures int) time.Duration {
	return backoff.Delay(p.cfg.RetryBackoffBase, p.cfg.RetryBackoffMax, failures)
}

// recordOverhead is the memory the producer holds per buffered record
// besides its data and key and their copy in an aggregate: the Future,
// its slot in its Kinesis record, its entries in the aggregator and key
// table, its request entry and queues, any context or callback it carries
// and, once it failed, its Result and callback slot. Measured by
// BenchmarkBookkeeping as the live heap after GC per record buffered
// against a stalled endpoint (200,000 100-byte records with 16-byte keys,
// less data): about 180 bytes with aggregation (300 with the blob copy),
// 470 without (a Kinesis record each, whose struct is most of it). The
// margin covers records whose outcome is known while their callback has
// not run, and what the producer keeps outside the bound (see the package
// documentation). BenchmarkStalledEndpoint checks the whole: the live
// heap stays within MaxBufferedBytes + 16 MiB.
const recordOverhead = 544
