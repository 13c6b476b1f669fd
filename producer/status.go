package producer

import (
	"slices"
	"strings"
	"time"
)

// Status is a snapshot of what a Producer holds, for health endpoints and
// debugging. Its parts are read one after another, not at one instant, so
// under load they may disagree by the records that moved meanwhile.
type Status struct {
	// BufferedRecords and BufferedBytes are the records accepted by Put
	// with no outcome yet (or whose callback has not returned) and their
	// charge against MaxBufferedBytes: what Outstanding reports.
	BufferedRecords, BufferedBytes int
	// WaitingPuts counts Puts blocked for room in the buffer.
	WaitingPuts int
	// InFlightCalls counts PutRecords calls in flight (at most
	// MaxConnections).
	InFlightCalls int
	// Closed is set once Close was called.
	Closed bool
	// Shards has one entry per shard of the shard map, by shard id, plus
	// one with ShardID "" while records wait for a shard map (none loaded
	// yet, or a hash key in no known shard).
	Shards []ShardStatus
}

// ShardStatus is one shard's part of Status.
type ShardStatus struct {
	ShardID string
	// Queued counts Kinesis records (aggregates, or user records sent
	// alone) waiting to be sent, including one still being filled; in the
	// "" entry, the user records waiting for a shard map (not aggregated
	// yet: their shard is not known).
	Queued int
	// InFlight counts Kinesis records in PutRecords calls in flight.
	InFlight int
	// Failures counts consecutive failed attempts on the shard (0 after a
	// success); BackoffUntil is when the shard may be sent to again, zero
	// when it is not backing off.
	Failures     int
	BackoffUntil time.Time
	// WaitingForShardMap: a record of the shard was stored on a shard the
	// map does not know (a reshard), so sending is held until the map is
	// refreshed.
	WaitingForShardMap bool
}

// Status returns a snapshot of the producer's buffers, calls in flight and
// per-shard backoff. It is safe to call concurrently with everything else
// and cheap (a short hold of the dispatcher's lock and each shard's lock,
// one allocation for Shards), so a health endpoint may call it per request.
func (p *Producer) Status() Status {
	now := p.clk.Now()
	st := Status{
		BufferedRecords: int(p.heldRecs.Load()),
		BufferedBytes:   int(p.heldBytes.Load()),
		Closed:          p.closed.Load(),
	}
	p.mu.Lock()
	st.WaitingPuts = p.waiting
	st.InFlightCalls = len(p.inflight)
	st.Shards = make([]ShardStatus, 0, len(p.lanes)+1)
	for _, l := range p.lanes {
		st.Shards = append(st.Shards, l.status(now))
	}
	if u := p.unmapped.status(now); u.Queued > 0 || u.InFlight > 0 {
		st.Shards = append(st.Shards, u)
	}
	p.mu.Unlock()
	slices.SortFunc(st.Shards, func(a, b ShardStatus) int { return strings.Compare(a.ShardID, b.ShardID) })
	return st
}

// status reads the lane for Status, with Producer.mu held (the send side:
// the ready queue, in-flight count and backoff); it takes the lane's own
// lock for the Put side (the open aggregate and records sealed by Puts).
func (l *lane) status(now time.Time) ShardStatus {
	s := ShardStatus{
		ShardID:            l.shard.id,
		Queued:             l.ready.len() + len(l.pending), // pending: the unmapped lane's, under Producer.mu
		InFlight:           l.inflight,
		Failures:           l.failures,
		WaitingForShardMap: l.stale,
	}
	if now.Before(l.notBefore) {
		s.BackoffUntil = l.notBefore
	}
	l.mu.Lock()
	s.Queued += len(l.sealed)
	if l.open != nil {
		s.Queued++
	}
	l.mu.Unlock()
	return s
}
