package producer

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/shardflow/shardflow/aggregation"
)

// kRecord is one Kinesis record: an aggregate of user records, or one user
// record sent as is.
//
// It holds its records in the least a Put must write: a Future pointer
// each, and their keys and data in the aggregator (which needs them
// anyway) or, for the lone record of a Kinesis record built without
// aggregation, in its wire form (pk, ehk, data). What some records carry
// beyond that (a context, a callback, a history, an enqueue time other
// than the aggregate's) is in x, one entry per record once any record
// needs one. A record leaving kr is rebuilt as a rec (loose).
type kRecord struct {
	lane *lane
	futs []*Future               // its records' Futures, in order
	fut1 [1]*Future              // futs' first backing: a lone record costs no allocation
	x    []recExtra              // one per record while xOn
	xOn  bool                    // x holds an entry per record
	agg  *aggregation.Aggregator // its records' keys and data; nil without aggregation
	blob []byte

	pk0                 int // length of the first record's partition key: the carrier's
	spare               int // while kept for reuse: its capacity, counted in Producer.spareBytes
	dataBytes, keyBytes int // over its records

	// attempts is the history of every record of kr while shared holds:
	// one Attempt per call for all its records, handed to each record
	// (capped, so an append copies) when it leaves kr, or to the one
	// Result its records share when they succeed together. Without
	// shared (records that came with histories of their own), each
	// record's history is its own, in x.
	attempts []Attempt
	shared   bool

	// sid and seq are where Kinesis stored kr, while its records are
	// checked against that shard (outVerify).
	sid, seq string

	// set by build, outside the lock, once (without aggregation, by join):
	// by the Put that sealed kr, or by the worker that sends it, each
	// holding buildMu, which putKR takes too before it resets kr
	buildMu sync.Mutex
	built   bool
	data    []byte
	pk      string
	ehk     string

	size      int           // bytes counted against PutRecords limits: data + key
	openedOff time.Duration // its records' enqueue time (from Producer.epoch), unless x says otherwise
	deadline  time.Time     // when it must be sent (first record's buffering deadline)
	expire    time.Time     // earliest TTL of its records
	hasCtx    bool          // some record carries a cancelable context
}

// recExtra is what a record of a kRecord carries beyond its Future, keys
// and data.
type recExtra struct {
	ctx      context.Context
	callback func(*Result)
	hist     *[]Attempt // its own history, when kr's records do not share one
	enq      time.Duration
	size     int // data + key
}

func (kr *kRecord) reset() {
	if kr.agg != nil {
		kr.agg.Reset()
	}
	kr.releaseRecords()
	kr.lane = nil
	kr.pk0, kr.dataBytes, kr.keyBytes = 0, 0, 0
	kr.built = false
	kr.data, kr.pk, kr.ehk = nil, "", ""
	kr.sid, kr.seq = "", ""
	kr.size = 0
	kr.openedOff = 0
	kr.hasCtx = false
}

// releaseRecords drops kr's references to its records' Futures (and
// through them their Results), contexts and callbacks, keeping the
// slices' room; the aggregator still refers to their keys and data.
func (kr *kRecord) releaseRecords() {
	clear(kr.futs)
	kr.futs = kr.futs[:0]
	clear(kr.x)
	kr.x, kr.xOn = kr.x[:0], false
	kr.attempts, kr.shared = nil, false // handed out to Results: never reused
}

// capacity estimates the memory an empty aggregate keeps for reuse: its
// blob, its records' slots and, per slot, about what the aggregator and
// its key table keep (a pending record and a table entry).
func (kr *kRecord) capacity() int {
	return cap(kr.blob) + cap(kr.futs)*(8+aggSlotBytes) + cap(kr.x)*int(unsafe.Sizeof(recExtra{}))
}

// aggSlotBytes is about what an aggregator keeps per record it held: its
// pending record (40 bytes) and a key table entry with its index slot.
const aggSlotBytes = 80

// n is the number of kr's records.
func (kr *kRecord) n() int { return len(kr.futs) }

// record returns the keys and data of kr's record i.
func (kr *kRecord) record(i int) (pk, ehk string, data []byte) {
	if kr.agg != nil && kr.agg.Len() > 0 {
		return kr.agg.Record(i)
	}
	return kr.pk, kr.ehk, kr.data // without aggregation: the record as is
}

// needX gives every record of kr an entry in x.
func (kr *kRecord) needX() {
	if kr.xOn {
		return
	}
	kr.xOn = true
	for i := range kr.futs {
		pk, _, data := kr.record(i)
		kr.x = append(kr.x, recExtra{enq: kr.openedOff, size: len(pk) + len(data)})
	}
}

// addAttempt records one call that carried kr.
func (kr *kRecord) addAttempt(a Attempt) {
	if kr.shared {
		kr.attempts = append(kr.attempts, a)
		return
	}
	kr.needX()
	for i := range kr.x {
		e := &kr.x[i]
		var h []Attempt
		if e.hist != nil {
			h = *e.hist
		}
		h = append(h, a)
		e.hist = &h
	}
}

// history is the history kr's records share (shared held).
func (kr *kRecord) history() []Attempt {
	n := len(kr.attempts)
	return kr.attempts[:n:n]
}

// attemptsOf is the history of kr's record i.
func (kr *kRecord) attemptsOf(i int) []Attempt {
	if kr.shared {
		return kr.history()
	}
	if kr.xOn && kr.x[i].hist != nil {
		return *kr.x[i].hist
	}
	return nil
}

// detach gives every record of kr its history, before the records leave
// kr (to their own outcomes or another Kinesis record).
func (kr *kRecord) detach() {
	if !kr.shared {
		return
	}
	kr.shared = false
	if len(kr.attempts) > 0 {
		kr.needX()
		h := kr.history()
		for i := range kr.x {
			kr.x[i].hist = &h
		}
	}
}

// stored decides the outcome of kr's records: stored at shardID and seq.
// Records that share their history share one Result.
func (kr *kRecord) stored(shardID, seq string) {
	if kr.shared {
		res := &Result{ShardID: shardID, SequenceNumber: seq, Attempts: kr.history()}
		for _, f := range kr.futs {
			f.res = res
		}
		return
	}
	for i, f := range kr.futs {
		f.res = &Result{ShardID: shardID, SequenceNumber: seq, Attempts: kr.attemptsOf(i)}
	}
}

// join adds r to kr's records, keeping the history shared only while
// every record has the same one (none, for records not sent yet). When
// aggregating, the caller has added r's keys and data to kr.agg.
func (kr *kRecord) join(r *rec) {
	if kr.shared && (r.hist != nil || len(kr.attempts) > 0) {
		kr.detach()
	}
	if !kr.xOn && (r.ctx != nil || r.callback != nil || r.hist != nil || r.enq != kr.openedOff) {
		kr.needX()
	}
	if len(kr.futs) == 0 {
		kr.pk0 = len(r.pk)
		if kr.agg == nil || kr.agg.Len() == 0 {
			kr.pk, kr.ehk, kr.data = r.pk, r.ehk, r.data
		}
	}
	kr.futs = append(kr.futs, r.f)
	if kr.xOn {
		kr.x = append(kr.x, recExtra{ctx: r.ctx, callback: r.callback, hist: r.hist, enq: r.enq, size: r.size()})
	}
	kr.dataBytes += len(r.data)
	kr.keyBytes += len(r.pk)
}

// appendLoose detaches kr's records and appends them to out as recs, for
// records leaving kr. They get their hash keys again only if routed.
func (kr *kRecord) appendLoose(out []rec) []rec {
	kr.detach()
	for i, f := range kr.futs {
		r := rec{f: f, enq: kr.openedOff}
		r.pk, r.ehk, r.data = kr.record(i)
		if kr.xOn {
			e := &kr.x[i]
			r.ctx, r.callback, r.hist, r.enq = e.ctx, e.callback, e.hist, e.enq
		}
		out = append(out, r)
	}
	return out
}

// enqOf is when kr's record i was enqueued (from Producer.epoch).
func (kr *kRecord) enqOf(i int) time.Duration {
	if kr.xOn {
		return kr.x[i].enq
	}
	return kr.openedOff
}

// build fixes the wire form of kr, with kr.buildMu held and no other
// lock: in the Put that sealed kr, or in the worker whose request owns kr.
func (kr *kRecord) build(aggregate bool) {
	if kr.built {
		return
	}
	kr.built = true
	if !aggregate || kr.n() == 1 {
		// A lone record goes as itself, as in the KPL: no aggregation
		// overhead and any consumer can read it.
		kr.pk, kr.ehk, kr.data = kr.record(0)
		return
	}
	kr.blob = kr.agg.AppendBlob(kr.blob[:0])
	kr.data = kr.blob
	kr.pk, _, _ = kr.record(0)
	// The carrier's explicit hash key is the predicted shard's starting
	// hash key, so the aggregate lands on the shard all its records were
	// predicted for.
	kr.ehk = kr.lane.shard.startKey
}

func (kr *kRecord) userBytes() int { return kr.dataBytes }

// krQueue is a FIFO of Kinesis records that also accepts retries at the
// front.
type krQueue struct {
	buf     []*kRecord
	head, n int
}

func (q *krQueue) len() int { return q.n }

func (q *krQueue) grow() {
	nb := make([]*kRecord, max(8, 2*len(q.buf)))
	for i := 0; i < q.n; i++ {
		nb[i] = q.buf[(q.head+i)%len(q.buf)]
	}
	q.buf, q.head = nb, 0
}

func (q *krQueue) pushBack(kr *kRecord) {
	if q.n == len(q.buf) {
		q.grow()
	}
	q.buf[(q.head+q.n)%len(q.buf)] = kr
	q.n++
}

func (q *krQueue) pushFront(kr *kRecord) {
	if q.n == len(q.buf) {
		q.grow()
	}
	q.head = (q.head - 1 + len(q.buf)) % len(q.buf)
	q.buf[q.head] = kr
	q.n++
}

func (q *krQueue) front() *kRecord { return q.buf[q.head] }

func (q *krQueue) popFront() *kRecord {
	kr := q.buf[q.head]
	q.buf[q.head] = nil
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	return kr
}

// readyTotals counts what the lanes' queues (ready and sealed) hold, for
// the collection thresholds. Atomic: Puts add to it under their lane's
// lock only.
type readyTotals struct{ n, bytes atomic.Int64 }

func (t *readyTotals) add(n, bytes int) {
	t.n.Add(int64(n))
	t.bytes.Add(int64(bytes))
}

// lane holds the records predicted for one open shard. It has two sides,
// so that Puts to different shards (and Puts and the dispatcher) do not
// contend on one lock:
//   - the Put side, under the lane's own mu: the open aggregate, the
//     Kinesis records sealed by Puts and not yet collected by the
//     dispatcher, the batch stamp and retired. A Put takes only this lock
//     (the key cache and the buffer's room take none); it never takes
//     Producer.mu on its fast path.
//   - the send side, under Producer.mu (only the dispatcher and result
//     handling touch it): the ready queue (retries at the front), rate
//     limiters, backoff, in-flight count.
//
// The dispatcher moves sealed records to the ready queue at each pass,
// taking mu with Producer.mu held (the lock order is Producer.mu, then
// lane.mu; nothing holding a lane's mu takes Producer.mu).
type lane struct {
	tot *readyTotals // the producer's totals, kept by the queue methods

	shard shardRange // zero for the unmapped lane
	stale bool       // an aggregate landed on a shard unknown to the map: hold until refreshed

	// The Put side's fields get cache lines of their own: the dispatcher
	// and result handling write the send side's for every Kinesis record,
	// and a Put's lock must not wait for those lines.
	_  [64]byte
	mu sync.Mutex
	// retired: its shard left the map; a Put finding it set re-routes
	// under Producer.mu, and in-flight records re-route on retry. Set
	// with both locks held.
	retired bool
	open    *kRecord   // aggregate being filled
	sealed  []*kRecord // sealed by Puts, counted in tot, not yet in ready
	// stamp is the buffering start of records put since the dispatcher's
	// last pass (without aggregation; an aggregate has its own), so a Put
	// need not read the clock.
	stamp time.Time
	// futs is what is left of the block the lane hands Futures out of
	// (see newFuture).
	futs []Future
	_    [64]byte

	ready     krQueue // sealed, waiting to be sent
	pending   []rec   // records waiting for a shard map (the unmapped lane)
	inflight  int     // Kinesis records in flight
	failures  int     // consecutive failed attempts, for backoff
	notBefore time.Time

	recTok, byteTok tokenBucket
}

// futureBlock is how many Futures a lane allocates at once.
const futureBlock = 64

// newFuture returns a fresh Future for a record put into l (l.mu held).
// Futures come in blocks of futureBlock, one allocation per block rather
// than per record, and the Futures of one aggregate sit side by side, so
// completing them touches few cache lines. A Future the caller keeps
// after its outcome keeps its block (1 KiB) alive; the producer holds
// only the Futures of records it has not finished with, each counted in
// its record's charge.
func (l *lane) newFuture() *Future {
	if len(l.futs) == 0 {
		l.futs = make([]Future, futureBlock)
	}
	f := &l.futs[0]
	l.futs = l.futs[1:]
	return f
}

// sealedSize fixes kr's size against the PutRecords limits.
func (kr *kRecord) sealedSize() {
	if kr.n() == 1 {
		kr.size = kr.dataBytes + kr.keyBytes
	} else {
		kr.size = kr.agg.Size() + kr.pk0
	}
}

// seal moves the open aggregate to the Put side's sealed list (l.mu held).
func (l *lane) seal() {
	kr := l.open
	l.open = nil
	kr.sealedSize()
	l.putSealed(kr)
}

// putSealed queues kr behind everything (l.mu held).
func (l *lane) putSealed(kr *kRecord) {
	l.sealed = append(l.sealed, kr)
	l.tot.add(1, kr.size)
}

// collect moves what Puts sealed to the back of the ready queue, seals
// the open aggregate if force or due (else returns its deadline), and
// starts a new batch stamp. Producer.mu is held; collect takes l.mu.
func (l *lane) collect(now time.Time, force bool) (openDeadline time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, kr := range l.sealed {
		l.ready.pushBack(kr) // already counted in tot
		l.sealed[i] = nil
	}
	l.sealed = l.sealed[:0]
	l.stamp = time.Time{} // records put from now on start a new batch
	if l.open != nil {
		if force || !now.Before(l.open.deadline) {
			kr := l.open
			l.open = nil
			kr.sealedSize()
			l.pushBack(kr)
		} else {
			return l.open.deadline
		}
	}
	return time.Time{}
}

func (l *lane) pushBack(kr *kRecord) {
	l.ready.pushBack(kr)
	l.tot.add(1, kr.size)
}

// pushFront queues kr ahead of everything: a retry, or a batch put back.
func (l *lane) pushFront(kr *kRecord) {
	l.ready.pushFront(kr)
	l.tot.add(1, kr.size)
}

func (l *lane) popFront() *kRecord {
	kr := l.ready.popFront()
	l.tot.add(-1, -kr.size)
	return kr
}

// drain removes every record queued in l, in order, and gives its
// Kinesis records to release. Producer.mu is held; drain takes l.mu, and
// retires l if retire.
func (l *lane) drain(release func(*kRecord), retire bool) []rec {
	var out []rec
	for l.ready.len() > 0 {
		kr := l.popFront()
		out = kr.appendLoose(out)
		release(kr)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if retire {
		l.retired = true
	}
	for i, kr := range l.sealed {
		l.tot.add(-1, -kr.size)
		out = kr.appendLoose(out)
		release(kr)
		l.sealed[i] = nil
	}
	l.sealed = l.sealed[:0]
	if l.open != nil {
		out = l.open.appendLoose(out)
		release(l.open)
		l.open = nil
	}
	out = append(out, l.pending...)
	l.pending = nil
	return out
}

// sendable reports whether l has Kinesis records that may go now: not
// held for a shard map, not backing off, and (ordered) none in flight.
func (l *lane) sendable(now time.Time, ordered bool) bool {
	return l.ready.len() > 0 && !l.stale && !now.Before(l.notBefore) && !(ordered && l.inflight > 0)
}

// takeTokens takes kr's share of the shard's rate limits, if both buckets
// have it now.
func (l *lane) takeTokens(kr *kRecord, now time.Time) bool {
	sz := float64(kr.size)
	if l.recTok.wait(1, now) > 0 || l.byteTok.wait(sz, now) > 0 {
		return false
	}
	l.recTok.take(1)
	l.byteTok.take(sz)
	return true
}

// refundTokens gives back what takeTokens took for kr (a batch put back).
func (l *lane) refundTokens(kr *kRecord) {
	l.recTok.refund(1)
	l.byteTok.refund(float64(kr.size))
}

// failed backs the shard off after a failed attempt: one step per round
// of failures, not per Kinesis record of one call.
func (l *lane) failed(now time.Time, backoff func(failures int) time.Duration) {
	if l.failures == 0 || !now.Before(l.notBefore) {
		l.failures++
		l.notBefore = now.Add(backoff(l.failures))
	}
}

// nextDue is when l's first Kinesis record may go: its buffering deadline
// (now when flushing), pushed back by the shard's backoff and rate limits.
func (l *lane) nextDue(now time.Time, force bool) time.Time {
	kr := l.ready.front()
	t := kr.deadline
	if force && t.After(now) {
		t = now // flushing: due as soon as the backoff and tokens allow
	}
	if now.Before(l.notBefore) && l.notBefore.After(t) {
		t = l.notBefore
	}
	if w := max(l.recTok.wait(1, now), l.byteTok.wait(float64(kr.size), now)); w > 0 && now.Add(w).After(t) {
		t = now.Add(w)
	}
	if !t.After(now) {
		// Due but held back by a partial batch decision: re-check soon.
		t = now.Add(time.Millisecond)
	}
	return t
}
