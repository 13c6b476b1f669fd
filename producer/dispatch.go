package producer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardflow/shardflow/internal/clock"
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
		reqs, done, wake := p.plan()
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
func (p *Producer) plan() (reqs []*request, done []*Future, wake time.Time) {
	now := p.clk.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	force := p.flushing > 0 || p.waiting > 0 || p.closed
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
	// Expire records waiting for a shard map.
	if u := p.unmapped; len(u.pending) > 0 {
		keep := u.pending[:0]
		for _, f := range u.pending {
			if err := p.deadErr(f, now); err != nil {
				f.res.Err = err
				done = append(done, f)
			} else {
				keep = append(keep, f)
				soonest(p.unmappedCheck(f, now))
			}
		}
		clear(u.pending[len(keep):])
		u.pending = keep
	}
	for _, l := range p.lanes {
		l.stamp = time.Time{} // records put from now on start a new batch
		if l.open != nil {
			if force || !now.Before(l.open.deadline) {
				p.sealLocked(l)
			} else {
				soonest(l.open.deadline)
			}
		}
		for l.ready.len() > 0 && !now.Before(l.ready.front().expire) {
			p.pruneFrontLocked(l, now, &done)
		}
	}
	// Build requests. In ordered mode nothing is sent while a request
	// built with an older shard map is in flight: its retries must go
	// before newer records of the same keys.
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
		soonest(t)
	}
	p.nextWake = wake
	return reqs, done, wake
}

// pruneFrontLocked removes the head of l's queue, fails its dead records
// and puts the rest back at the front.
func (p *Producer) pruneFrontLocked(l *lane, now time.Time, done *[]*Future) {
	kr := p.popReadyLocked(l)
	kr.detach()
	recs := append([]*Future(nil), kr.recs...)
	p.putKR(kr)
	p.requeueFrontLocked(recs, now, done)
}

func (kr *kRecord) anyCanceled() bool {
	if !kr.hasCtx {
		return false
	}
	for _, f := range kr.recs {
		if f.ctx != nil && f.ctx.Err() != nil {
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
func (p *Producer) buildLocked(now time.Time, force bool, done *[]*Future) *request {
	n := len(p.lanes)
	if n == 0 || p.readyN == 0 {
		return nil
	}
	r := &request{gen: p.gen}
	full, due := false, false
	start := p.rr % n
	p.rr++
lanes:
	for i := 0; i < n; i++ {
		l := p.lanes[(start+i)%n]
		if l.ready.len() == 0 || l.stale || now.Before(l.notBefore) || (p.cfg.OrderedByPartitionKey && l.inflight > 0) {
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
				if _, dup := p.keysSeen[kr.recs[0].pk]; dup {
					break
				}
				p.keysSeen[kr.recs[0].pk] = struct{}{}
			}
			sz := float64(kr.size)
			if l.recTok.wait(1, now) > 0 || l.byteTok.wait(sz, now) > 0 {
				break
			}
			l.recTok.take(1)
			l.byteTok.take(sz)
			p.popReadyLocked(l)
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
			kr.lane.recTok.refund(1)
			kr.lane.byteTok.refund(float64(kr.size))
			p.pushFrontLocked(kr)
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
	for {
		select {
		case <-ctx.Done():
			return nil
		case r := <-p.reqCh:
			p.send(r)
		}
	}
}

func (p *Producer) send(r *request) {
	r.entries = r.entries[:0]
	start := p.clk.Now()
	for _, kr := range r.krs {
		kr.build(p.aggregate)
		e := types.PutRecordsRequestEntry{Data: kr.data, PartitionKey: &kr.pk}
		if kr.ehk != "" {
			e.ExplicitHashKey = &kr.ehk
		}
		r.entries = append(r.entries, e)
		if !p.metricsOn || (kr.shared && len(kr.attempts) > 0) {
			continue
		}
		for _, f := range kr.recs {
			if kr.shared || len(f.res.Attempts) == 0 {
				p.met.BufferingTime(kr.lane.shard.id, start.Sub(f.enqueued))
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
	p.handle(r, out, err, start, end.Sub(start))
}

// outcome of one Kinesis record of a request.
type krOutcome int

const (
	outSucceeded krOutcome = iota
	outRetry
	outFailed
	outVerify // stored on a shard other than predicted: check each record's hash key
)

// unverifiedKR is an aggregate stored on a shard missing from the shard
// map, waiting for the next map to be checked.
type unverifiedKR struct {
	kr  *kRecord
	sid string
}

func (p *Producer) handle(r *request, out *kinesis.PutRecordsOutput, reqErr error, start time.Time, dur time.Duration) {
	if reqErr == nil && (out == nil || len(out.Records) != len(r.krs)) {
		reqErr = fmt.Errorf("producer: PutRecords returned %d results for %d records", lenResults(out), len(r.krs))
	}
	outcomes := make([]krOutcome, len(r.krs))
	var done []*Future
	mismatch := false
	var reqClass errClass
	var reqCode, reqMsg string
	if reqErr != nil {
		reqClass, reqCode, reqMsg = classifyErr(reqErr)
		// Retried failures are routine (and visible in metrics and
		// attempts); a rejection fails records for good.
		level := slog.LevelDebug
		if reqClass == classRejected {
			level = slog.LevelWarn
		}
		if p.log.Enabled(context.Background(), level) {
			p.log.Log(context.Background(), level, "PutRecords failed", "records", len(r.krs), "code", reqCode, "error", reqErr)
		}
	}
	for i, kr := range r.krs {
		shard := kr.lane.shard.id
		code, msg, class := reqCode, reqMsg, reqClass
		if reqErr == nil {
			e := &out.Records[i]
			code, msg = deref(e.ErrorCode), deref(e.ErrorMessage)
			sid, seq := deref(e.ShardId), deref(e.SequenceNumber)
			if code == "" && (sid == "" || seq == "") {
				// Neither an error nor a place: not a success. The record
				// may have been stored; retrying is at least once, as for
				// a lost response.
				code, msg = codeIncompleteResult, fmt.Sprintf("result entry without error code has shard id %q and sequence number %q", sid, seq)
			}
			if code == "" {
				if sid != shard {
					mismatch = true
				}
				kr.addAttempt(Attempt{Time: start, Duration: dur})
				kr.settle(sid, seq)
				if p.metricsOn {
					p.met.KinesisRecordPut(sid, len(kr.recs), kr.userBytes(), len(kr.data))
				}
				if sid != shard && p.aggregate && len(kr.recs) > 1 {
					outcomes[i] = outVerify
					continue
				}
				outcomes[i] = outSucceeded
				done = append(done, kr.recs...)
				continue
			}
			class = classifyCode(code)
		}
		kr.addAttempt(Attempt{Time: start, Duration: dur, ErrorCode: code, ErrorMessage: msg})
		p.met.ErrorsByCode(shard, code, 1)
		var reason error
		switch {
		case class == classRejected:
			reason = ErrRejected
		case class == classThrottled && p.cfg.FailIfThrottled:
			reason = ErrThrottled
		}
		if reason == nil {
			outcomes[i] = outRetry
			continue
		}
		outcomes[i] = outFailed
		kr.detach()
		for _, f := range kr.recs {
			f.res.Err = &RecordError{Reason: reason, Code: code, Message: msg, Cause: reqErr}
		}
		done = append(done, kr.recs...)
	}

	now := p.clk.Now()
	p.mu.Lock()
	for i, x := range p.inflight {
		if x == r {
			last := len(p.inflight) - 1
			p.inflight[i] = p.inflight[last]
			p.inflight[last] = nil
			p.inflight = p.inflight[:last]
			break
		}
	}
	held := make([]bool, len(r.krs))
	for i, kr := range r.krs {
		kr.lane.inflight--
		switch outcomes[i] {
		case outSucceeded:
			kr.lane.failures = 0
		case outVerify:
			sid := kr.recs[0].res.ShardID
			if rng, ok := p.allRanges[sid]; ok {
				done = p.verifyLocked(kr, rng, true, now, done)
			} else if p.aborting {
				// Close gave up waiting: nothing will check the shard any
				// more. The records are stored; report them so, as abort
				// does for aggregates already held.
				done = append(done, kr.recs...)
			} else {
				// Hold the aggregate, and the shard's queue, until the map
				// names the shard.
				held[i] = true
				kr.lane.stale = true
				p.unverified = append(p.unverified, unverifiedKR{kr, sid})
			}
		}
	}
	// Retries go back to the front of their shard's queue in their
	// original order, ahead of newer records. Aggregates whose shard left
	// the map, or that hold dead records, are taken apart and re-routed.
	// redoKR marks aggregates taken apart (their records re-routed).
	var redo []*Future
	redoKR := make([]bool, len(r.krs))
	for i := len(r.krs) - 1; i >= 0; i-- {
		kr := r.krs[i]
		if outcomes[i] != outRetry {
			continue
		}
		l := kr.lane
		if l.failures == 0 || !now.Before(l.notBefore) {
			l.failures++
			l.notBefore = now.Add(p.backoff(l.failures))
		}
		if l.retired || p.aborting || !now.Before(kr.expire) || kr.anyCanceled() {
			redoKR[i] = true
			continue
		}
		p.pushFrontLocked(kr)
	}
	for i, kr := range r.krs {
		if redoKR[i] {
			kr.detach()
			redo = append(redo, kr.recs...)
		}
	}
	if len(redo) > 0 {
		p.requeueFrontLocked(redo, now, &done)
	}
	p.mu.Unlock()
	if mismatch {
		p.log.Debug("records landed on another shard than predicted; refreshing the shard map")
		p.requestRefresh()
	}
	p.finish(done)
	for i, kr := range r.krs {
		if (outcomes[i] != outRetry || redoKR[i]) && !held[i] {
			p.putKR(kr)
		}
	}
	p.wake()
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

// ---- shard map ----

const (
	minRefreshSpacing = time.Second
	maxRefreshBackoff = 30 * time.Second
)

func (p *Producer) refreshLoop(ctx context.Context) error {
	t := p.clk.NewTimer(0)
	defer t.Stop()
	arm := func(d time.Duration) {
		stopTimer(t)
		t.Reset(d)
	}
	var backoff time.Duration
	// notBefore is the earliest a refresh request may read the map: at
	// least minRefreshSpacing after the last read, and after the backoff
	// of a failed one.
	var notBefore time.Time
	for {
		requested := false
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
		case <-p.refreshCh:
			requested = true
		}
		if requested {
			if wait := notBefore.Sub(p.clk.Now()); !notBefore.IsZero() && wait > 0 {
				arm(wait)
				continue
			}
		}
		shards, all, err := p.listOpenShards(ctx)
		if ctx.Err() != nil {
			return nil
		}
		last := p.clk.Now()
		notBefore = last.Add(minRefreshSpacing)
		if err == nil && len(shards) == 0 {
			err = errors.New("producer: stream has no open shards")
		}
		if err != nil {
			backoff = min(max(2*backoff, time.Second), maxRefreshBackoff)
			notBefore = last.Add(backoff)
			p.log.Warn("listing shards failed", "error", err, "retry_in", backoff)
			if class, code, msg := classifyErr(err); class == classRejected {
				p.failUnmapped(err, code, msg)
			}
			p.resendUnverified()
			arm(backoff)
			continue
		}
		backoff = 0
		p.installMap(shards, all)
		arm(p.cfg.ShardMapRefreshInterval)
	}
}

// resendUnverified gives up waiting for a shard map to check aggregates
// stored on unknown shards and re-sends their records, as the KPL does.
func (p *Producer) resendUnverified() {
	now := p.clk.Now()
	var done []*Future
	p.mu.Lock()
	us := p.unverified
	p.unverified = nil
	for _, u := range us {
		done = p.verifyLocked(u.kr, shardRange{}, false, now, done)
	}
	for _, l := range p.lanes {
		l.stale = false
	}
	p.mu.Unlock()
	p.finish(done)
	for _, u := range us {
		p.putKR(u.kr)
	}
	if len(us) > 0 {
		p.wake()
	}
}

// failUnmapped fails records waiting for a shard map that cannot be read.
func (p *Producer) failUnmapped(err error, code, msg string) {
	p.mu.Lock()
	fs := p.unmapped.pending
	p.unmapped.pending = nil
	p.mu.Unlock()
	for _, f := range fs {
		f.res.Err = &RecordError{Reason: ErrRejected, Code: code, Message: msg, Cause: err}
	}
	p.finish(fs)
}

// installMap swaps in a new shard map. Lanes of shards that are unchanged
// keep their queues; records queued for shards that left the map are
// re-routed in order, so nothing queued is sent with a stale prediction.
// Aggregates stored on shards the old map did not know are checked now.
func (p *Producer) installMap(shards []shardRange, all map[string]shardRange) {
	now := p.clk.Now()
	rate := float64(p.cfg.RateLimit) / 100
	p.mu.Lock()
	p.allRanges = all
	changed := len(shards) != len(p.shards)
	lanes := make([]*lane, len(shards))
	byID := make(map[string]*lane, len(shards))
	for i, s := range shards {
		if l, ok := p.laneByID[s.id]; ok && l.shard == s {
			lanes[i] = l
			l.stale = false
		} else {
			changed = true
			lanes[i] = &lane{
				shard:   s,
				recTok:  newTokenBucket(shardRecordsPerSecond*rate, now),
				byteTok: newTokenBucket(shardBytesPerSecond*rate, now),
			}
		}
		byID[s.id] = lanes[i]
	}
	var moved, done []*Future
	if changed || len(p.unmapped.pending) > 0 {
		for _, l := range p.lanes {
			if byID[l.shard.id] != l {
				l.retired = true
				moved = append(moved, p.drainLaneLocked(l)...)
			}
		}
		moved = append(moved, p.drainLaneLocked(p.unmapped)...)
		p.gen++
		p.shards, p.lanes, p.laneByID = shards, lanes, byID
		for _, f := range moved {
			p.addLocked(f, false)
		}
	}
	// Resolve aggregates stored on shards we did not know.
	var release []*kRecord
	for _, u := range p.unverified {
		r, known := all[u.sid]
		done = p.verifyLocked(u.kr, r, known, now, done)
		release = append(release, u.kr)
	}
	clear(p.unverified)
	p.unverified = p.unverified[:0]
	gen := p.gen
	p.mu.Unlock()
	p.finish(done)
	for _, kr := range release {
		p.putKR(kr)
	}
	if changed {
		level := slog.LevelInfo
		if gen == 1 {
			level = slog.LevelDebug
		}
		p.log.Log(context.Background(), level, "shard map updated", "open_shards", len(shards), "rerouted_records", len(moved))
	}
	p.wake()
}

// verifyLocked settles the records of an aggregate Kinesis stored on shard
// r (which the producer had not predicted): records whose hash key r
// covers succeed; the others are re-sent to their own shard, as the KPL
// does, because the KCL drops them, unless AcceptMisroutedAggregates. An
// unknown shard cannot be checked, so all are re-sent. It appends the
// settled records to done.
func (p *Producer) verifyLocked(kr *kRecord, r shardRange, known bool, now time.Time, done []*Future) []*Future {
	var redo []*Future
	kr.detach()
	for _, f := range kr.recs {
		if p.cfg.AcceptMisroutedAggregates || (known && r.contains(f.hi, f.lo)) {
			done = append(done, f)
			continue
		}
		// The history may be shared with the aggregate's other records:
		// replace the last attempt in a copy.
		n := len(f.res.Attempts)
		a := f.res.Attempts[n-1]
		a.ErrorCode = "WrongShard"
		a.ErrorMessage = "stored in an aggregate on shard " + f.res.ShardID + " outside the record's hash key range; re-sent"
		f.res.Attempts = append(f.res.Attempts[:n-1:n-1], a)
		f.res.ShardID, f.res.SequenceNumber = "", ""
		redo = append(redo, f)
	}
	if len(redo) > 0 {
		p.log.Warn("aggregate stored on another shard than predicted; re-sending the records that belong elsewhere",
			"predicted", kr.lane.shard.id, "records", len(redo))
		p.requeueFrontLocked(redo, now, &done)
	}
	return done
}
