package producer

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardflow/shardflow/clock"
)

// request is one PutRecords call.
type request struct {
	krs      []*kRecord
	entries  []types.PutRecordsRequestEntry
	in       kinesis.PutRecordsInput
	ctx      context.Context
	cancel   context.CancelCauseFunc
	deadline time.Time
	timedOut bool
	gen      uint64
	bytes    int
}

// dispatchLoop seals aggregates at their deadlines, expires records, times
// out requests and hands PutRecords calls to the workers.
func (p *Producer) dispatchLoop(ctx context.Context) error {
	t := p.clk.NewTimer(time.Hour)
	defer t.Stop()
	for {
		reqs, done, wake, notes := p.plan()
		p.logResent(notes)
		p.finish(done)
		for _, r := range reqs {
			select {
			case p.reqCh <- r:
			case <-ctx.Done():
				return nil
			}
		}
		stopTimer(t)
		if !wake.IsZero() {
			t.Reset(max(wake.Sub(p.clk.Now()), 0))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-p.kick:
		case <-t.C():
		}
	}
}

// stopTimer stops t and discards a tick it delivered that nobody read, so
// that a later Reset is not followed by a spurious early wake-up. (Timers
// of the runtime since Go 1.23 never hold a stale tick; a fake one can.)
func stopTimer(t clock.Timer) {
	if !t.Stop() {
		select {
		case <-t.C():
		default:
		}
	}
}

// plan does one pass of the dispatcher under the lock.
// notes are what it re-sent of aggregates held for a shard check, to log.
func (p *Producer) plan() (reqs []*request, done []rec, wake time.Time, notes []resentNote) {
	now := p.clk.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	// A Put that starts a batch while this pass runs wakes the
	// dispatcher again (see earlier): this pass may miss it.
	p.setNextWake(time.Time{})
	force := p.flushing > 0 || p.waiting > 0 || p.closed.Load()
	soonest := func(t time.Time) {
		if !t.IsZero() && (wake.IsZero() || t.Before(wake)) {
			wake = t
		}
	}
	// Time out requests.
	oldGen := false
	for _, r := range p.inflight {
		if r.gen < p.gen {
			oldGen = true
		}
		if r.timedOut {
			continue
		}
		if !now.Before(r.deadline) {
			r.timedOut = true
			r.cancel(ErrRequestTimeout)
		}
	}
	if p.aborting {
		// Close gave up: a Put that took its room just before Close began
		// may have enqueued after abort drained the lanes.
		fail := func(l *lane) {
			for _, r := range l.drain(p.putKR, false) {
				r.fail(&RecordError{Reason: ErrClosed})
				done = append(done, r)
			}
		}
		for _, l := range p.lanes {
			fail(l)
		}
		fail(p.unmapped)
	}
	// Expire records waiting for a shard map.
	if u := p.unmapped; len(u.pending) > 0 {
		keep := u.pending[:0]
		for i := range u.pending {
			r := &u.pending[i]
			if err := p.deadErr(r, now); err != nil {
				r.fail(err)
				done = append(done, *r)
			} else {
				soonest(p.unmappedCheck(r, now))
				keep = append(keep, *r)
			}
		}
		clear(u.pending[len(keep):])
		u.pending = keep
	}
	// Aggregates held for a shard check get their outcome by their TTL
	// even if the map is slow to come: past it, they are re-sent (their
	// expired records fail), as when listing shards fails.
	if len(p.unverified) > 0 {
		keep := p.unverified[:0]
		expired := false
		for _, u := range p.unverified {
			if now.Before(u.kr.expire) {
				soonest(u.kr.expire)
				keep = append(keep, u)
				continue
			}
			expired = true
			done = p.verifyLocked(u.kr, shardRange{}, false, now, done)
			p.putKR(u.kr)
		}
		clear(p.unverified[len(keep):])
		p.unverified = keep
		if expired {
			for _, l := range p.lanes {
				l.stale = false
			}
			for _, u := range p.unverified {
				u.kr.lane.stale = true
			}
		}
	}
	for _, u := range p.unverified {
		if u.gen < p.gen {
			oldGen = true
		}
	}
	for _, l := range p.lanes {
		soonest(l.collect(now, force))
		for l.ready.len() > 0 && !now.Before(l.ready.front().expire) {
			p.pruneFrontLocked(l, now, &done)
		}
	}
	// Build requests. In ordered mode nothing is sent while a request
	// built with an older shard map is in flight, or one of its aggregates
	// is held for a shard check: its retries (re-sends) must go before
	// newer records of the same keys, which the new map may queue on
	// lanes other than the one the old map retired.
	held := p.aborting || (p.cfg.OrderedByPartitionKey && oldGen)
	if !held {
		for len(p.inflight) < p.cfg.MaxConnections {
			r := p.buildLocked(now, force, &done)
			if r == nil {
				break
			}
			reqs = append(reqs, r)
		}
	}
	// When to look again.
	for _, r := range p.inflight {
		if !r.timedOut {
			soonest(r.deadline)
		}
	}
	for _, l := range p.lanes {
		if l.ready.len() == 0 {
			continue
		}
		kr := l.ready.front()
		soonest(kr.expire)
		if held || l.stale || len(p.inflight) >= p.cfg.MaxConnections || (p.cfg.OrderedByPartitionKey && l.inflight > 0) {
			continue // woken by a completion
		}
		soonest(l.nextDue(now, force))
	}
	p.setNextWake(wake)
	return reqs, done, wake, p.takeResentLocked()
}

// pruneFrontLocked removes the head of l's queue, fails its dead records
// and puts the rest back at the front.
func (p *Producer) pruneFrontLocked(l *lane, now time.Time, done *[]rec) {
	kr := l.popFront()
	recs := kr.appendLoose(nil)
	p.putKR(kr)
	p.requeueFrontLocked(recs, now, done)
}

func (kr *kRecord) anyCanceled() bool {
	if !kr.hasCtx {
		return false
	}
	for i := range kr.x {
		if c := kr.x[i].ctx; c != nil && c.Err() != nil {
			return true
		}
	}
	return false
}

// buildLocked takes Kinesis records from the lanes into one request, within
// the PutRecords limits, the shards' token buckets and backoffs, and (in
// ordered mode) one request in flight per shard. It returns nil if there is
// nothing worth sending now: a partial request goes only when one of its
// records is due, or when flushing.
func (p *Producer) buildLocked(now time.Time, force bool, done *[]rec) *request {
	n := len(p.lanes)
	if n == 0 || p.ready.n.Load() == 0 {
		return nil
	}
	r := &request{gen: p.gen}
	full, due := false, false
	start := p.rr % n
	p.rr++
lanes:
	for i := 0; i < n; i++ {
		l := p.lanes[(start+i)%n]
		if !l.sendable(now, p.cfg.OrderedByPartitionKey) {
			continue
		}
		if p.cfg.OrderedByPartitionKey {
			clear(p.keysSeen)
		}
		for l.ready.len() > 0 {
			kr := l.ready.front()
			if !now.Before(kr.expire) || kr.anyCanceled() {
				p.pruneFrontLocked(l, now, done)
				continue
			}
			if len(r.krs) >= p.cfg.CollectionMaxCount || r.bytes+kr.size > p.cfg.CollectionMaxSize {
				full = true
				break lanes
			}
			if p.cfg.OrderedByPartitionKey && !p.aggregate {
				// Records with the same key must not share a request: one
				// could fail while a later one succeeds.
				if _, dup := p.keysSeen[kr.pk]; dup {
					break
				}
				p.keysSeen[kr.pk] = struct{}{}
			}
			if !l.takeTokens(kr, now) {
				break
			}
			l.popFront()
			r.krs = append(r.krs, kr)
			r.bytes += kr.size
			if !now.Before(kr.deadline) {
				due = true
			}
			if p.cfg.OrderedByPartitionKey && p.aggregate {
				break // one aggregate per shard per request
			}
		}
	}
	if len(r.krs) == 0 {
		return nil
	}
	if !full && !due && !force && len(r.krs) < p.cfg.CollectionMaxCount {
		// Not worth a call yet: put everything back in order.
		for i := len(r.krs) - 1; i >= 0; i-- {
			kr := r.krs[i]
			kr.lane.refundTokens(kr)
			kr.lane.pushFront(kr)
		}
		return nil
	}
	for _, kr := range r.krs {
		kr.lane.inflight++
	}
	r.ctx, r.cancel = context.WithCancelCause(p.reqBase)
	// A call outlives its records' TTL only to no purpose: it ends by then,
	// so every record has its outcome by its TTL (plus a dispatcher pass).
	r.deadline = now.Add(p.cfg.RequestTimeout)
	var last time.Time
	for _, kr := range r.krs {
		if kr.expire.After(last) {
			last = kr.expire
		}
	}
	if last.Before(r.deadline) {
		r.deadline = last
	}
	p.inflight = append(p.inflight, r)
	return r
}

func (p *Producer) worker(ctx context.Context) error {
	// done is the worker's buffer for the records a call settles
	// otherwise than stored together (failed, expired, re-checked),
	// reused from call to call up to maxKeptDone records: a call can
	// settle tens of thousands, and a buffer that size kept by every
	// worker would be memory outside MaxBufferedBytes.
	var done []rec
	for {
		select {
		case <-ctx.Done():
			return nil
		case r := <-p.reqCh:
			done = p.send(r, done[:0])
			clear(done)
			if cap(done) > maxKeptDone {
				done = nil
			}
		}
	}
}

// maxKeptDone bounds a worker's reused buffer of settled records (about
// 120 KB).
const maxKeptDone = 1024

// send makes the call r and handles its result; done is a buffer for the
// settled records, returned for reuse.
func (p *Producer) send(r *request, done []rec) []rec {
	r.entries = r.entries[:0]
	start := p.clk.Now()
	// The first attempt of every Kinesis record sent for the first time
	// goes into one array per call, not one per Kinesis record (per user
	// record without aggregation): each gets a slot of capacity one, and a
	// retry's append moves its history out.
	first := 0
	for _, kr := range r.krs {
		if kr.shared && cap(kr.attempts) == 0 {
			first++
		}
	}
	slab := make([]Attempt, first)
	for _, kr := range r.krs {
		if kr.shared && cap(kr.attempts) == 0 {
			kr.attempts, slab = slab[:0:1], slab[1:]
		}
		kr.buildMu.Lock() // the Put that sealed kr may be building it
		kr.build(p.aggregate)
		kr.buildMu.Unlock()
		e := types.PutRecordsRequestEntry{Data: kr.data, PartitionKey: &kr.pk}
		if kr.ehk != "" {
			e.ExplicitHashKey = &kr.ehk
		}
		r.entries = append(r.entries, e)
		if !p.metricsOn || (kr.shared && len(kr.attempts) > 0) {
			continue
		}
		for i := range kr.futs {
			if kr.shared || len(kr.attemptsOf(i)) == 0 {
				p.met.BufferingTime(kr.lane.shard.id, start.Sub(p.epoch.Add(kr.enqOf(i))))
			}
		}
	}
	r.in = kinesis.PutRecordsInput{Records: r.entries, StreamName: p.streamName, StreamARN: p.streamARN}
	out, err := p.client.PutRecords(r.ctx, &r.in)
	if err != nil && r.ctx.Err() != nil {
		err = fmt.Errorf("%w: %w", context.Cause(r.ctx), err)
	}
	end := p.clk.Now()
	r.cancel(nil)
	p.met.RequestTime(end.Sub(start), len(r.krs), err)
	return p.handle(r, out, err, start, end.Sub(start), done)
}

func lenResults(out *kinesis.PutRecordsOutput) int {
	if out == nil {
		return 0
	}
	return len(out.Records)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
