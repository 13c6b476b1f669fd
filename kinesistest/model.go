package kinesistest

import (
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

const (
	iteratorTTL       = 5 * time.Minute
	defaultRetention  = 24 * time.Hour
	maxConsumers      = 20
	seqPrefix         = "49"
	seqLen            = 56
	maxRecordSize     = 1 << 20 // data plus partition key
	maxPutRecordsSize = 5 << 20
	maxPutRecordsN    = 500
	maxGetRecordsSize = 10 << 20
	maxGetRecordsN    = 10000
)

// record is one stored record. Records of a shard are never removed, so
// the record with counter c (the low digits of its sequence number) sits at
// index c-1.
type record struct {
	seq     string
	pk      string
	data    []byte
	arrival time.Time
}

type shard struct {
	id        string
	index     int
	start     u128
	end       u128
	parent    string
	adjParent string
	createdAt time.Time
	closedAt  time.Time // zero while open
	startSeq  string
	endSeq    string // set when the shard closes
	records   []record

	lim limiter
}

func (sh *shard) open() bool { return sh.closedAt.IsZero() }

type consumer struct {
	name    string
	arn     string
	created time.Time
}

type stream struct {
	name      string
	arn       string
	created   time.Time
	seqEpoch  int64 // stream creation in ms, embedded in sequence numbers
	retention time.Duration
	mode      types.StreamMode
	shards    []*shard    // by index
	scaleOps  []time.Time // recent UpdateShardCount calls, for its rate limit
	routing   []*shard    // open shards by hash range; nil after a reshard
	consumers []*consumer
	// next shard index is len(shards)
}

func shardName(i int) string { return fmt.Sprintf("shardId-%012d", i) }

// shardIndex parses "shardId-000000000007" (or a bare number, which the
// service also accepts) into 7.
func shardIndex(id string) (int, bool) {
	s := id
	if len(s) > 8 && s[:8] == "shardId-" {
		s = s[8:]
	}
	if s == "" || len(s) > 12 {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

func (st *stream) shard(id string) *shard {
	i, ok := shardIndex(id)
	if !ok || i >= len(st.shards) {
		return nil
	}
	return st.shards[i]
}

// seq formats a sequence number: "49", the stream's creation time in ms (13
// digits), the shard index (6 digits) and the record counter (35 digits). It
// is 56 digits like the service's, strictly increasing within a shard, and
// every shard's numbers exceed those of all lower-numbered shards, so
// children's numbers exceed their parents'.
func (st *stream) seq(shardIdx int, counter uint64) string {
	var b [seqLen]byte
	b[0], b[1] = '4', '9'
	putDigits(b[2:15], uint64(st.seqEpoch))
	putDigits(b[15:21], uint64(shardIdx))
	putDigits(b[21:], counter)
	return string(b[:])
}

// putDigits writes v zero-padded into dst (which must be wide enough).
func putDigits(dst []byte, v uint64) {
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = byte('0' + v%10)
		v /= 10
	}
}

// parseSeq decodes a sequence number issued by this stream. ok is false when
// it is not a sequence number at all; shardIdx and fromStream let callers
// produce the service's specific complaints.
func (st *stream) parseSeq(s string) (shardIdx int, counter uint64, fromStream, ok bool) {
	if len(s) != seqLen || s[:2] != seqPrefix {
		return 0, 0, false, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, 0, false, false
		}
	}
	epoch, _ := strconv.ParseInt(s[2:15], 10, 64)
	idx, _ := strconv.Atoi(s[15:21])
	hiDigits := s[21:37]
	for i := 0; i < len(hiDigits); i++ {
		if hiDigits[i] != '0' {
			return 0, 0, false, false // counter beyond uint64: never issued
		}
	}
	c, err := strconv.ParseUint(s[37:], 10, 64)
	if err != nil {
		return 0, 0, false, false
	}
	return idx, c, epoch == st.seqEpoch, true
}

// addShard appends a new open shard with the given range.
func (st *stream) addShard(start, end u128, parent, adj string, now time.Time) *shard {
	idx := len(st.shards)
	sh := &shard{
		id:        shardName(idx),
		index:     idx,
		start:     start,
		end:       end,
		parent:    parent,
		adjParent: adj,
		createdAt: now,
		startSeq:  st.seq(idx, 0),
	}
	st.shards = append(st.shards, sh)
	st.routing = nil
	return sh
}

// closeShard closes sh: it takes no more writes and its sequence range ends
// at the last number it issued (its starting number if it holds none).
func (st *stream) closeShard(sh *shard, now time.Time) {
	sh.closedAt = now
	st.routing = nil
	sh.endSeq = st.seq(sh.index, uint64(len(sh.records)))
}

// openShards returns the open shards ordered by hash range.
func (st *stream) openShards() []*shard {
	var out []*shard
	for _, sh := range st.shards {
		if sh.open() {
			out = append(out, sh)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].start.cmp(out[j].start) < 0 })
	return out
}

// route finds the open shard whose hash range holds k. The open shards
// always tile the whole key space, so a binary search over their sorted
// ranges finds exactly one.
func (st *stream) route(k u128) *shard {
	if st.routing == nil {
		st.routing = st.openShards()
	}
	r := st.routing
	i := sort.Search(len(r), func(i int) bool { return r[i].end.cmp(k) >= 0 })
	return r[i]
}

// expired reports whether a closed shard has aged out of retention; the
// service deletes such shards.
func (st *stream) expired(sh *shard, now time.Time) bool {
	return !sh.open() && sh.closedAt.Add(st.retention).Before(now)
}

// trimIndex is the index of the oldest record still within retention.
func (st *stream) trimIndex(sh *shard, now time.Time) int {
	horizon := now.Add(-st.retention)
	return sort.Search(len(sh.records), func(i int) bool { return !sh.records[i].arrival.Before(horizon) })
}

// children returns the shards that have sh as a parent.
func (st *stream) children(sh *shard) []types.ChildShard {
	var out []types.ChildShard
	for _, c := range st.shards[sh.index+1:] {
		if c.parent == sh.id || c.adjParent == sh.id {
			parents := []string{c.parent}
			if c.adjParent != "" {
				parents = append(parents, c.adjParent)
			}
			out = append(out, types.ChildShard{
				ShardId:      aws.String(c.id),
				ParentShards: parents,
				HashKeyRange: c.hashRange(),
			})
		}
	}
	return out
}

func (sh *shard) hashRange() *types.HashKeyRange {
	return &types.HashKeyRange{
		StartingHashKey: aws.String(sh.start.String()),
		EndingHashKey:   aws.String(sh.end.String()),
	}
}

func (sh *shard) describe() types.Shard {
	out := types.Shard{
		ShardId:      aws.String(sh.id),
		HashKeyRange: sh.hashRange(),
		SequenceNumberRange: &types.SequenceNumberRange{
			StartingSequenceNumber: aws.String(sh.startSeq),
		},
	}
	if sh.parent != "" {
		out.ParentShardId = aws.String(sh.parent)
	}
	if sh.adjParent != "" {
		out.AdjacentParentShardId = aws.String(sh.adjParent)
	}
	if sh.endSeq != "" {
		out.SequenceNumberRange.EndingSequenceNumber = aws.String(sh.endSeq)
	}
	return out
}

// limiter enforces a shard's throughput limits on the server clock with
// token buckets that hold one second of allowance and refill continuously.
// A read is admitted while the byte bucket is positive and then charged for
// what it returned, so the bucket may go negative: a 10 MiB read blocks the
// shard's reads for about 4 s, close to the service's 5 s.
type limiter struct {
	mu        sync.Mutex
	init      bool
	last      time.Time
	inBytes   float64
	inRecords float64
	readCalls float64
	outBytes  float64
}

const (
	inBytesPerSec   = 1 << 20
	inRecordsPerSec = 1000
	readCallsPerSec = 5
	outBytesPerSec  = 2 << 20
)

func (l *limiter) refill(now time.Time) {
	if !l.init {
		l.init = true
		l.last = now
		l.inBytes, l.inRecords, l.readCalls, l.outBytes = inBytesPerSec, inRecordsPerSec, readCallsPerSec, outBytesPerSec
		return
	}
	dt := now.Sub(l.last).Seconds()
	if dt <= 0 {
		return
	}
	l.last = now
	l.inBytes = min(inBytesPerSec, l.inBytes+dt*inBytesPerSec)
	l.inRecords = min(inRecordsPerSec, l.inRecords+dt*inRecordsPerSec)
	l.readCalls = min(readCallsPerSec, l.readCalls+dt*readCallsPerSec)
	l.outBytes = min(outBytesPerSec, l.outBytes+dt*outBytesPerSec)
}

// admitWrite takes allowance for one record of n bytes.
func (l *limiter) admitWrite(now time.Time, n int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refill(now)
	if l.inRecords < 1 || l.inBytes < float64(n) {
		return false
	}
	l.inRecords--
	l.inBytes -= float64(n)
	return true
}

// admitRead takes one read call; it fails while calls are exhausted or the
// byte bucket is not positive.
func (l *limiter) admitRead(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refill(now)
	if l.readCalls < 1 || l.outBytes <= 0 {
		return false
	}
	l.readCalls--
	return true
}

func (l *limiter) chargeRead(n int) {
	l.mu.Lock()
	l.outBytes -= float64(n)
	l.mu.Unlock()
}
