package producer

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
)

// What a PutRecords call's result means for each of its Kinesis records.
type krOutcome int

const (
	outSucceeded krOutcome = iota
	outRetry
	outFailed
	outVerify // stored on a shard other than predicted: check each record's hash key
)

// handle settles one PutRecords call: classify reads the response,
// requeueLocked puts what must be retried back in the lanes, and the
// outcomes that are known are published.
// done is a buffer for the settled records; handle returns it for reuse.
func (p *Producer) handle(r *request, out *kinesis.PutRecordsOutput, reqErr error, start time.Time, dur time.Duration, done []rec) []rec {
	var st settling
	outcomes, done, mismatch := p.classify(r, out, reqErr, start, dur, done, &st)
	now := p.clk.Now()
	p.mu.Lock()
	done, keep := p.requeueLocked(r, outcomes, now, done)
	notes := p.takeResentLocked()
	p.mu.Unlock()
	p.logResent(notes)
	if mismatch {
		p.log.Debug("records landed on another shard than predicted; refreshing the shard map")
		p.requestRefresh()
	}
	for i := range done {
		p.publish(&done[i], &st)
	}
	// settled completes the Futures of the stored Kinesis records, which
	// go back only then.
	p.settled(&st)
	for i, kr := range r.krs {
		if !keep[i] {
			p.putKR(kr)
		}
	}
	p.wake()
	return done
}

// classify reads a call's response without the lock: it records the
// attempt for every Kinesis record, decides each one's outcome, and
// fills in the Results of records that succeeded or failed for good:
// those that succeeded are published at once, into st (in the pass that
// settles them), the others appended to done. mismatch reports a record stored on another shard
// than predicted, which calls for a shard map refresh.
func (p *Producer) classify(r *request, out *kinesis.PutRecordsOutput, reqErr error, start time.Time, dur time.Duration, done []rec, st *settling) (outcomes []krOutcome, _ []rec, mismatch bool) {
	if reqErr == nil && (out == nil || len(out.Records) != len(r.krs)) {
		reqErr = fmt.Errorf("producer: PutRecords returned %d results for %d records", lenResults(out), len(r.krs))
	}
	outcomes = make([]krOutcome, len(r.krs))
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
				if p.metricsOn {
					p.met.KinesisRecordPut(sid, kr.n(), kr.userBytes(), len(kr.data))
				}
				if sid != shard && p.aggregate && kr.n() > 1 {
					kr.detach()
					kr.sid, kr.seq = sid, seq
					outcomes[i] = outVerify
					continue
				}
				outcomes[i] = outSucceeded
				p.publishStored(kr, sid, seq, st)
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
		n := len(done)
		done = kr.appendLoose(done)
		for j := n; j < len(done); j++ {
			done[j].fail(&RecordError{Reason: reason, Code: code, Message: msg, Cause: reqErr})
		}
	}

	return outcomes, done, mismatch
}

// requeueLocked applies a call's outcomes to the lanes (with p.mu held):
// retries go back to the front of their shard's queue in their original
// order, ahead of newer records, and back off the shard; aggregates whose
// shard left the map, or that hold dead records, are taken apart and
// re-routed; aggregates stored on another shard are checked against its
// range, or held until the map knows it. It returns done with the records
// settled here added, and which Kinesis records stay in use (keep[i]: in
// a queue again, or held) rather than going back to the pool.
func (p *Producer) requeueLocked(r *request, outcomes []krOutcome, now time.Time, done []rec) ([]rec, []bool) {
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
			kr.lane.failures = 0 // the shard's backoff starts over
		case outVerify:
			sid := kr.sid
			if rng, ok := p.allRanges[sid]; ok || p.cfg.AcceptMisroutedAggregates {
				// (Misrouted records are accepted whatever the shard:
				// nothing to wait for.)
				done = p.verifyLocked(kr, rng, ok, now, done)
			} else if p.aborting {
				// Close gave up waiting: nothing will check the shard any
				// more. The records are stored; report them so, as abort
				// does for aggregates already held.
				n := len(done)
				done = kr.appendLoose(done)
				for j := n; j < len(done); j++ {
					done[j].stored(kr.sid, kr.seq)
				}
			} else {
				// Hold the aggregate, and the shard's queue, until the map
				// names the shard.
				held[i] = true
				kr.lane.stale = true
				p.unverified = append(p.unverified, unverifiedKR{kr, sid, r.gen})
			}
		}
	}
	// redoKR marks aggregates taken apart (their records re-routed).
	var redo []rec
	redoKR := make([]bool, len(r.krs))
	for i := len(r.krs) - 1; i >= 0; i-- {
		kr := r.krs[i]
		if outcomes[i] != outRetry {
			continue
		}
		l := kr.lane
		l.failed(now, p.backoff)
		if l.retired || p.aborting || !now.Before(kr.expire) || kr.anyCanceled() {
			redoKR[i] = true
			continue
		}
		if p.cfg.OrderedByPartitionKey {
			// A key's records go in Put order (one call per shard at a
			// time, so no other call's retries are queued here).
			kr.lane.pushFront(kr)
		} else {
			pushRetry(l, kr)
		}
	}
	for i, kr := range r.krs {
		if redoKR[i] {
			redo = kr.appendLoose(redo)
		}
	}
	if len(redo) > 0 {
		p.requeueFrontLocked(redo, now, &done)
	}
	keep := held
	for i := range r.krs {
		keep[i] = held[i] || (outcomes[i] == outRetry && !redoKR[i])
	}
	return done, keep
}

// pushRetry queues the retry kr at the front of l, behind the records at
// the front that expire sooner (retries of calls that returned earlier):
// the dispatcher expires, and wakes for, the front of each queue only, so
// the front must be the first to expire.
func pushRetry(l *lane, kr *kRecord) {
	l.pushFront(kr)
	q := &l.ready
	for i := 0; i+1 < q.n; i++ {
		a, b := &q.buf[(q.head+i)%len(q.buf)], &q.buf[(q.head+i+1)%len(q.buf)]
		if !(*b).expire.Before((*a).expire) {
			break
		}
		*a, *b = *b, *a
	}
}
