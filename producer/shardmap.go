package producer

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardflow/shardflow/internal/awserr"
	"github.com/shardflow/shardflow/internal/shardlist"
)

// shardRange is one open shard of the map.
type shardRange struct {
	id               string
	startHi, startLo uint64
	endHi, endLo     uint64
	startKey, endKey string // decimal, as ListShards gives them
}

// listOpenShards reads every open shard of the stream, sorted by starting
// hash key, and the ranges of all shards, open or closed, by id.
func (p *Producer) listOpenShards(ctx context.Context) ([]shardRange, map[string]shardRange, error) {
	var out []shardRange
	all := map[string]shardRange{}
	listed, err := shardlist.All(ctx, p.listShards, &kinesis.ListShardsInput{StreamName: p.streamName, StreamARN: p.streamARN})
	if err != nil {
		return nil, nil, err
	}
	for _, s := range listed {
		r, err := toRange(s)
		if err != nil {
			return nil, nil, err
		}
		all[r.id] = r
		if s.SequenceNumberRange != nil && s.SequenceNumberRange.EndingSequenceNumber != nil {
			continue // closed
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b shardRange) int {
		if less128(a.startHi, a.startLo, b.startHi, b.startLo) {
			return -1
		}
		if a.startHi == b.startHi && a.startLo == b.startLo {
			return 0
		}
		return 1
	})
	return out, all, nil
}

// listShards is one ListShards call bounded by Config.RequestTimeout on
// the producer's clock: a hung call would otherwise stop every shard map
// refresh, and with it the records waiting for one.
func (p *Producer) listShards(ctx context.Context, in *kinesis.ListShardsInput) (*kinesis.ListShardsOutput, error) {
	cctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	t := p.clk.NewTimer(p.cfg.RequestTimeout)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer t.Stop()
		select {
		case <-t.C():
			cancel(ErrRequestTimeout)
		case <-done:
		}
	}()
	res, err := p.client.ListShards(cctx, in)
	close(done)
	wg.Wait()
	if err != nil && cctx.Err() != nil && ctx.Err() == nil {
		err = fmt.Errorf("ListShards: %w: %w", context.Cause(cctx), err)
	}
	return res, err
}

func (r shardRange) contains(hi, lo uint64) bool {
	return !less128(hi, lo, r.startHi, r.startLo) && !less128(r.endHi, r.endLo, hi, lo)
}

func toRange(s types.Shard) (shardRange, error) {
	if s.ShardId == nil || s.HashKeyRange == nil || s.HashKeyRange.StartingHashKey == nil || s.HashKeyRange.EndingHashKey == nil {
		return shardRange{}, fmt.Errorf("producer: ListShards returned a shard without id or hash key range")
	}
	r := shardRange{id: *s.ShardId, startKey: *s.HashKeyRange.StartingHashKey, endKey: *s.HashKeyRange.EndingHashKey}
	var ok1, ok2 bool
	r.startHi, r.startLo, ok1 = parseHashKey(r.startKey)
	r.endHi, r.endLo, ok2 = parseHashKey(r.endKey)
	if !ok1 || !ok2 {
		return shardRange{}, fmt.Errorf("producer: shard %s has a malformed hash key range", r.id)
	}
	return r, nil
}

// lookup returns the index of the shard whose range holds (hi, lo), or -1.
func lookup(shards []shardRange, hi, lo uint64) int {
	// first shard whose start > key, minus one
	i, j := 0, len(shards)
	for i < j {
		m := int(uint(i+j) >> 1)
		if less128(hi, lo, shards[m].startHi, shards[m].startLo) {
			j = m
		} else {
			i = m + 1
		}
	}
	i--
	if i < 0 || less128(shards[i].endHi, shards[i].endLo, hi, lo) {
		return -1
	}
	return i
}

// routeTable is the shard map as Puts read it without Producer.mu: an
// immutable snapshot, swapped whole by installMap.
type routeTable struct {
	shards []shardRange
	lanes  []*lane // parallel to shards
}

// route returns the lane the current map predicts for r (with p.mu
// held): the unmapped lane while there is no map, or when f's hash key is
// in no known shard (which asks for a refresh).
func (p *Producer) route(r *rec) *lane {
	if p.lanes == nil {
		return p.unmapped
	}
	hi, lo := r.hashKey()
	i := lookup(p.shards, hi, lo)
	if i < 0 {
		p.requestRefresh()
		return p.unmapped
	}
	return p.lanes[i]
}

// unverifiedKR is an aggregate stored on a shard missing from the shard
// map, waiting for the next map to be checked.
type unverifiedKR struct {
	kr  *kRecord
	sid string
	gen uint64 // the shard map its request was built with
}

const (
	minRefreshSpacing = time.Second
	maxRefreshBackoff = 30 * time.Second
	// failureWarnEvery spaces the warnings of a shard listing that keeps
	// failing the same way (a stream that does not exist): a reminder,
	// not a log line per retry.
	failureWarnEvery = 5 * time.Minute
)

// failureLog logs a failing shard listing at Warn when it starts failing,
// when the error changes and every failureWarnEvery while it stays the
// same (at Debug in between), and at Info when it recovers.
type failureLog struct {
	n        int       // failures in a row
	key      string    // failureKey of the last warning
	lastWarn time.Time // when it was logged
}

func (f *failureLog) failed(log *slog.Logger, now time.Time, code string, err error, retryIn time.Duration) {
	f.n++
	key := failureKey(code, err)
	if key != f.key || now.Sub(f.lastWarn) >= failureWarnEvery {
		f.key, f.lastWarn = key, now
		log.Warn("listing shards failed", "error", err, "retry_in", retryIn, "failures", f.n)
		return
	}
	log.Debug("listing shards failed", "error", err, "retry_in", retryIn, "failures", f.n)
}

// failureKey tells one cause of a failure from another: the code and the
// message of the innermost error (for an API error the service's message),
// with numbers, addresses, ports and request ids blanked. Not err's text:
// that holds a request id, an attempt count and a local port that differ
// on every retry of the same failure, while the code alone names every
// failure without an API response "NetworkError" (connection refused and
// an untrusted certificate alike).
func failureKey(code string, err error) string {
	msg := ""
	if _, m, ok := awserr.Code(err); ok {
		msg = m
	} else {
		msg = innermost(err).Error()
	}
	return code + ": " + volatileText.ReplaceAllString(msg, "#")
}

// volatileText matches what differs between retries of one failure:
// each word holding a digit, words running on over dots, colons, dashes
// and brackets (numbers, IPv4 and IPv6 addresses with their ports, request
// ids and UUIDs, shard ids; a host name with a digit goes too).
var volatileText = regexp.MustCompile(`[\w.:\[\]-]*[0-9][\w.:\[\]-]*`)

// innermost follows err's chain of wrapped errors (the first of joined
// ones) to its end: the cause, without the wrappers' text (an operation,
// a URL, an attempt count).
func innermost(err error) error {
	for {
		var next error
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			next = u.Unwrap()
		case interface{ Unwrap() []error }:
			if es := u.Unwrap(); len(es) > 0 {
				next = es[0]
			}
		}
		if next == nil || next.Error() == "" {
			return err
		}
		err = next
	}
}

func (f *failureLog) recovered(log *slog.Logger) {
	if f.n > 0 {
		log.Info("listing shards works again", "failures", f.n)
	}
	*f = failureLog{}
}

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
	var failing failureLog
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
			err = errNoOpenShards
		}
		if err != nil {
			backoff = min(max(2*backoff, time.Second), maxRefreshBackoff)
			notBefore = last.Add(backoff)
			class, code, msg := classifyErr(err)
			failing.failed(p.log, last, code, err, backoff)
			if class == classRejected {
				p.failUnmapped(err, code, msg)
			}
			p.resendUnverified()
			arm(backoff)
			continue
		}
		backoff = 0
		failing.recovered(p.log)
		p.installMap(shards, all)
		arm(p.cfg.ShardMapRefreshInterval)
	}
}

// resendUnverified gives up waiting for a shard map to check aggregates
// stored on unknown shards and re-sends their records, as the KPL does.
func (p *Producer) resendUnverified() {
	now := p.clk.Now()
	var done []rec
	p.mu.Lock()
	us := p.unverified
	p.unverified = nil
	for _, u := range us {
		done = p.verifyLocked(u.kr, shardRange{}, false, now, done)
	}
	for _, l := range p.lanes {
		l.stale = false
	}
	notes := p.takeResentLocked()
	p.mu.Unlock()
	p.logResent(notes)
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
	rs := p.unmapped.pending
	p.unmapped.pending = nil
	p.mu.Unlock()
	for i := range rs {
		rs[i].fail(&RecordError{Reason: ErrRejected, Code: code, Message: msg, Cause: err})
	}
	p.finish(rs)
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
				tot:     &p.ready,
				shard:   s,
				recTok:  newTokenBucket(shardRecordsPerSecond*rate, now),
				byteTok: newTokenBucket(shardBytesPerSecond*rate, now),
			}
		}
		byID[s.id] = lanes[i]
	}
	var moved, done []rec
	if changed || len(p.unmapped.pending) > 0 {
		for _, l := range p.lanes {
			if byID[l.shard.id] != l {
				moved = append(moved, l.drain(p.putKR, true)...)
			}
		}
		moved = append(moved, p.unmapped.drain(p.putKR, false)...)
		p.gen++
		p.shards, p.lanes, p.laneByID = shards, lanes, byID
		for i := range moved {
			p.addLocked(&moved[i], false)
		}
		// Only now may Puts route with the new map: its lanes hold the
		// re-routed records first, so a key's records stay in order.
		// (A Put that meets a retired lane meanwhile waits for p.mu.)
		p.table.Store(&routeTable{shards: shards, lanes: lanes})
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
	notes := p.takeResentLocked()
	p.mu.Unlock()
	p.logResent(notes)
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
// rng (which the producer had not predicted): records whose hash key rng
// covers succeed; the others are re-sent to their own shard, as the KPL
// does, because the KCL drops them, unless AcceptMisroutedAggregates. An
// unknown shard (known false) cannot be checked, so all are re-sent. It
// appends the settled records to done.
func (p *Producer) verifyLocked(kr *kRecord, rng shardRange, known bool, now time.Time, done []rec) []rec {
	var redo []rec
	rs := kr.appendLoose(nil)
	for i := range rs {
		r := &rs[i]
		if p.cfg.AcceptMisroutedAggregates || (known && rng.contains(r.hashKey())) {
			r.stored(kr.sid, kr.seq)
			done = append(done, *r)
			continue
		}
		// The history may be shared with the aggregate's other records:
		// replace the last attempt in a copy.
		h := r.attempts()
		n := len(h)
		a := h[n-1]
		a.ErrorCode = "WrongShard"
		if known {
			a.ErrorMessage = "stored in an aggregate on shard " + kr.sid + " outside the record's hash key range; re-sent"
		} else {
			a.ErrorMessage = "stored in an aggregate on shard " + kr.sid + ", unknown to the shard map, so unchecked; re-sent"
		}
		r.setAttempts(append(h[:n-1:n-1], a))
		redo = append(redo, *r)
	}
	if len(redo) > 0 {
		p.resent = append(p.resent, resentNote{predicted: kr.lane.shard.id, stored: kr.sid, records: len(redo), known: known})
		p.requeueFrontLocked(redo, now, &done)
	}
	return done
}

// resentNote is a log line about records verifyLocked re-sent, kept until
// p.mu is released: a slow log handler must not hold up Put and the
// dispatcher.
type resentNote struct {
	predicted, stored string
	records           int
	known             bool
}

// takeResentLocked returns the notes verifyLocked made (p.mu held).
func (p *Producer) takeResentLocked() []resentNote {
	n := p.resent
	p.resent = nil
	return n
}

// logResent logs notes taken by takeResentLocked (p.mu not held).
func (p *Producer) logResent(notes []resentNote) {
	for _, n := range notes {
		msg := "aggregate stored on another shard than predicted; re-sending the records that belong elsewhere"
		if !n.known {
			msg = "aggregate stored on a shard the shard map does not know; re-sending its records"
		}
		p.log.Warn(msg, "predicted", n.predicted, "stored", n.stored, "records", n.records)
	}
}
