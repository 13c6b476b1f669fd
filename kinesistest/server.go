package kinesistest

import (
	"sync"
	"time"

	"github.com/shardflow/shardflow/clock"
)

// Options configures a Server. The zero value is a usable fake with the real
// clock, no limits and no faults.
type Options struct {
	// Clock drives everything time-dependent: iterator expiry (5 minutes),
	// rate-limit windows, arrival timestamps, MillisBehindLatest, retention
	// and injected latency. Nil means the real clock.
	Clock clock.Clock

	// Limits enforces the per-shard service limits: 1 MiB/s and 1,000
	// records/s in; 5 GetRecords calls/s and 2 MiB/s out (a 10 MiB read
	// blocks reads for 5 s). They are measured on Clock.
	Limits bool

	// Region and AccountID appear in ARNs and error messages. Defaults:
	// us-east-1 and 123456789012.
	Region, AccountID string

	// ShardLimit caps the open shards of all streams together, as the
	// account quota does (LimitExceededException). Default 500.
	ShardLimit int

	// Seed makes fault injection (fractions) deterministic. Zero picks a
	// random seed.
	Seed uint64
}

// Server is an in-memory Amazon Kinesis Data Streams. Its methods have the
// signatures of *kinesis.Client's, so it satisfies API and any smaller
// interface cut from the client. It is safe for concurrent use and runs no
// goroutines.
type Server struct {
	clk        clock.Clock
	limits     bool
	region     string
	account    string
	shardLimit int
	iterKey    []byte // HMAC key that makes iterators unforgeable
	createdAt  time.Time

	mu           sync.RWMutex
	streams      map[string]*stream // by name
	lastSeqEpoch int64
	changed      chan struct{} // closed and replaced on every change
	closed       bool

	faults faultState

	fanoutOnce sync.Once
	fanout     subscriptionRegistry // SubscribeToShard state, see fanout.go
}

// New returns an empty in-memory Kinesis.
func New(opts Options) *Server {
	s := &Server{
		clk:     clock.OrReal(opts.Clock),
		limits:  opts.Limits,
		region:  opts.Region,
		account: opts.AccountID,
		streams: make(map[string]*stream),
		changed: make(chan struct{}),
	}
	if s.region == "" {
		s.region = "us-east-1"
	}
	s.shardLimit = opts.ShardLimit
	if s.shardLimit <= 0 {
		s.shardLimit = defaultShardLimit
	}
	if s.account == "" {
		s.account = "123456789012"
	}
	s.createdAt = s.clk.Now()
	s.iterKey = newIterKey()
	s.faults.init(opts.Seed)
	return s
}

// Close ends enhanced fan-out subscriptions (with an InternalFailure, as
// when the service drops a connection) and wakes anyone waiting on a change.
// The core runs no goroutines; the other operations keep working. Close is
// idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		s.notifyLocked()
	}
	return nil
}

// dataChanged returns a channel that is closed on the next change to any
// record, shard, stream or consumer. Waiters re-read state, then call
// dataChanged again; take the channel before reading state to miss nothing.
func (s *Server) dataChanged() <-chan struct{} {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.changed
}

// notifyLocked wakes dataChanged waiters; s.mu must be held for writing.
func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}
