package kinesistest

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"sort"
	"time"
	"unicode/utf16"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// putEntry is one validated record to store.
type putEntry struct {
	pk     string
	hash   u128
	data   []byte
	size   int
	result types.PutRecordsResultEntry
}

// validateEntry applies the service's per-record checks. i is the entry's
// index in PutRecords (-1 for PutRecord), for ValidationException messages.
func validateEntry(i int, pk string, ehk *string, data []byte) (putEntry, error) {
	e := putEntry{pk: pk, data: data, size: len(data) + len(pk)}
	// member names the field in a ValidationException; built only on
	// failure, since PutRecords validates up to 500 entries per call.
	member := func(field string) string {
		if i < 0 {
			return field
		}
		return fmt.Sprintf("records.%d.member.%s", i+1, field)
	}
	if n := utf16Len(pk); n < 1 {
		return e, validationError(pk, member("partitionKey"), "Member must have length greater than or equal to 1")
	} else if n > 256 {
		return e, validationError(pk, member("partitionKey"), "Member must have length less than or equal to 256")
	}
	if len(data) > maxRecordSize {
		return e, validationError("java.nio.HeapByteBuffer[pos=0 lim="+fmt.Sprint(len(data))+"]", member("data"), "Member must have length less than or equal to 1048576")
	}
	if e.size > maxRecordSize {
		return e, errInvalidArg("Record size (data plus partition key) of %d bytes exceeds the limit of %d bytes.", e.size, maxRecordSize)
	}
	if ehk != nil {
		k, wellFormed, inRange := parseHashKey(*ehk)
		if !wellFormed {
			return e, validationError(*ehk, member("explicitHashKey"), "Member must satisfy regular expression pattern: 0|([1-9]\\d{0,38})")
		}
		if !inRange {
			return e, errInvalidArg("Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. Specified value was %s", *ehk)
		}
		e.hash = k
	} else {
		e.hash = partitionKeyHash(pk)
	}
	return e, nil
}

// utf16Len is the length of s in UTF-16 code units: Kinesis measures
// partition keys so (it is a Java service), and a character outside the
// Basic Multilingual Plane counts twice.
func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		n += max(utf16.RuneLen(r), 1) // an invalid byte becomes U+FFFD: one unit
	}
	return n
}

// arrivalTime is now at millisecond precision (the service's), never before
// the shard's previous record so that arrival order is sequence order.
func arrivalTime(sh *shard, now time.Time) time.Time {
	t := now.Truncate(time.Millisecond)
	if n := len(sh.records); n > 0 && t.Before(sh.records[n-1].arrival) {
		t = sh.records[n-1].arrival
	}
	return t
}

// appendLocked stores e in sh and returns its sequence number.
func (s *Server) appendLocked(st *stream, sh *shard, e *putEntry, now time.Time) string {
	c := uint64(len(sh.records)) + 1
	seq := st.seq(sh.index, c)
	sh.records = append(sh.records, record{seq: seq, pk: e.pk, data: e.data, arrival: arrivalTime(sh, now)})
	return seq
}

func (s *Server) rateExceeded(st *stream, sh *shard) string {
	return fmt.Sprintf("Rate exceeded for shard %s in stream %s under account %s.", sh.id, st.name, s.account)
}

// PutRecord stores one record in the open shard whose hash range holds the
// MD5 of its partition key (or its ExplicitHashKey).
func (s *Server) PutRecord(ctx context.Context, in *kinesis.PutRecordInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordOutput, error) {
	if err := s.gate(ctx, OpPutRecord); err != nil {
		return nil, err
	}
	e, err := validateEntry(-1, aws.ToString(in.PartitionKey), in.ExplicitHashKey, in.Data)
	if err != nil {
		return nil, err
	}
	if o := in.SequenceNumberForOrdering; o != nil {
		if !isDecimal(*o, 129) {
			return nil, validationError(*o, "sequenceNumberForOrdering", "Member must satisfy regular expression pattern: 0|([1-9]\\d{0,128})")
		}
	}
	e.data = append([]byte(nil), in.Data...)
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.lookupLocked(in.StreamName, in.StreamARN)
	if err != nil {
		return nil, err
	}
	now := s.clk.Now()
	sh := st.route(e.hash)
	if s.limits && !sh.lim.admitWrite(now, e.size) {
		return nil, errThroughput(s.rateExceeded(st, sh))
	}
	seq := s.appendLocked(st, sh, &e, now)
	s.notifyLocked()
	return &kinesis.PutRecordOutput{
		ShardId:        aws.String(sh.id),
		SequenceNumber: aws.String(seq),
		EncryptionType: types.EncryptionTypeNone,
	}, s.afterApply(OpPutRecord)
}

// PutRecords stores up to 500 records (5 MiB) and reports each one's fate:
// entries refused by the shard's write limit or by FailRecords carry an
// ErrorCode and ErrorMessage, and the call still succeeds.
func (s *Server) PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	if err := s.gate(ctx, OpPutRecords); err != nil {
		return nil, err
	}
	n := len(in.Records)
	if n < 1 {
		return nil, validationError("[]", "records", "Member must have length greater than or equal to 1")
	}
	if n > maxPutRecordsN {
		return nil, validationError(fmt.Sprintf("[%d records]", n), "records", "Member must have length less than or equal to 500")
	}
	entries := make([]putEntry, n)
	total := 0
	for i, r := range in.Records {
		e, err := validateEntry(i, aws.ToString(r.PartitionKey), r.ExplicitHashKey, r.Data)
		if err != nil {
			return nil, err
		}
		entries[i] = e
		total += e.size
	}
	if total > maxPutRecordsSize {
		return nil, errInvalidArg("Records size exceeds 5 MB limit")
	}
	// One copy of all the data: callers may reuse their buffers at once.
	buf := make([]byte, 0, total)
	for i := range entries {
		off := len(buf)
		buf = append(buf, entries[i].data...)
		entries[i].data = buf[off:len(buf):len(buf)]
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.lookupLocked(in.StreamName, in.StreamARN)
	if err != nil {
		return nil, err
	}
	now := s.clk.Now()
	out := &kinesis.PutRecordsOutput{
		Records:        make([]types.PutRecordsResultEntry, n),
		EncryptionType: types.EncryptionTypeNone,
	}
	failed := int32(0)
	strs := make([]string, 2*n) // the results' strings, in one allocation
	for i := range entries {
		e := &entries[i]
		sh := st.route(e.hash)
		code, msg := s.recordFault(), ""
		if code == "" && s.limits && !sh.lim.admitWrite(now, e.size) {
			code = codeThroughput
		}
		switch code {
		case "":
			strs[2*i], strs[2*i+1] = sh.id, s.appendLocked(st, sh, e, now)
			e.result.ShardId, e.result.SequenceNumber = &strs[2*i], &strs[2*i+1]
		case codeThroughput:
			msg = s.rateExceeded(st, sh)
		default:
			msg = "Internal service failure."
		}
		if code != "" {
			failed++
			e.result.ErrorCode, e.result.ErrorMessage = aws.String(code), aws.String(msg)
		}
		out.Records[i] = e.result
	}
	out.FailedRecordCount = aws.Int32(failed)
	if failed < int32(n) {
		s.notifyLocked()
	}
	return out, s.afterApply(OpPutRecords)
}

// Shard iterators are opaque strings that carry the stream (name and
// incarnation), shard, position and issue time, signed with a per-server
// key so that a forged or mangled one is refused with InvalidArgument, as
// the service does. They survive copying and stay valid for 5 minutes.
type iterator struct {
	stream string
	epoch  int64 // the stream's seqEpoch: its incarnation
	shard  int
	pos    uint64 // counter of the next record to return (>= 1)
	issued int64  // UnixNano
}

const iterHeader = 1 + 8 + 8 + 4 + 8

func newIterKey() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return k
}

func (s *Server) encodeIterator(it iterator) string {
	b := make([]byte, iterHeader, iterHeader+len(it.stream)+16)
	b[0] = 1
	binary.BigEndian.PutUint64(b[1:], uint64(it.issued))
	binary.BigEndian.PutUint64(b[9:], uint64(it.epoch))
	binary.BigEndian.PutUint32(b[17:], uint32(it.shard))
	binary.BigEndian.PutUint64(b[21:], it.pos)
	b = append(b, it.stream...)
	m := hmac.New(sha256.New, s.iterKey)
	m.Write(b)
	b = m.Sum(b)[:len(b)+16]
	return base64.StdEncoding.EncodeToString(b)
}

func (s *Server) decodeIterator(str string) (iterator, bool) {
	b, err := base64.StdEncoding.DecodeString(str)
	if err != nil || len(b) < iterHeader+16+1 || b[0] != 1 {
		return iterator{}, false
	}
	body, sum := b[:len(b)-16], b[len(b)-16:]
	m := hmac.New(sha256.New, s.iterKey)
	m.Write(body)
	if !hmac.Equal(m.Sum(nil)[:16], sum) {
		return iterator{}, false
	}
	return iterator{
		issued: int64(binary.BigEndian.Uint64(body[1:])),
		epoch:  int64(binary.BigEndian.Uint64(body[9:])),
		shard:  int(binary.BigEndian.Uint32(body[17:])),
		pos:    binary.BigEndian.Uint64(body[21:]),
		stream: string(body[iterHeader:]),
	}, true
}

// shardLocked resolves a shard id for an operation; s.mu must be held.
func (s *Server) shardLocked(st *stream, id string, now time.Time) (*shard, error) {
	if id == "" {
		return nil, validationError(id, "shardId", "Member must have length greater than or equal to 1")
	}
	if _, ok := shardIndex(id); !ok {
		return nil, errCouldNotFindShard(s, st.name, id)
	}
	sh := st.shard(id)
	if sh == nil || st.expired(sh, now) {
		return nil, errShardNotFound(s, st.name, id)
	}
	return sh, nil
}

// GetShardIterator returns an iterator of type TRIM_HORIZON, LATEST,
// AT_SEQUENCE_NUMBER, AFTER_SEQUENCE_NUMBER or AT_TIMESTAMP.
func (s *Server) GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, _ ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	if err := s.gate(ctx, OpGetShardIterator); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	st, err := s.lookupLocked(in.StreamName, in.StreamARN)
	if err != nil {
		return nil, err
	}
	now := s.clk.Now()
	shardID := aws.ToString(in.ShardId)
	sh, err := s.shardLocked(st, shardID, now)
	if err != nil {
		return nil, err
	}
	typ := in.ShardIteratorType
	seq := in.StartingSequenceNumber
	it := iterator{stream: st.name, epoch: st.seqEpoch, shard: sh.index, issued: now.UnixNano()}
	switch typ {
	case types.ShardIteratorTypeTrimHorizon, types.ShardIteratorTypeLatest:
		if seq != nil {
			return nil, errInvalidArg("Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and StartingSequenceNumber or (2) TRIM_HORIZON or LATEST and no StartingSequenceNumber. Request specified %s and also a StartingSequenceNumber.", typ)
		}
		it.pos = 1
		if typ == types.ShardIteratorTypeLatest {
			it.pos = uint64(len(sh.records)) + 1
		}
	case types.ShardIteratorTypeAtSequenceNumber, types.ShardIteratorTypeAfterSequenceNumber:
		if seq == nil {
			return nil, errInvalidArg("Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and StartingSequenceNumber or (2) TRIM_HORIZON or LATEST and no StartingSequenceNumber. Request specified %s and no StartingSequenceNumber.", typ)
		}
		idx, c, fromStream, ok := st.parseSeq(*seq)
		switch {
		case !ok:
			return nil, errInvalidArg("StartingSequenceNumber %s used in GetShardIterator on shard %s in stream %s under account %s is invalid.", *seq, sh.id, st.name, s.account)
		case idx != sh.index:
			return nil, errInvalidArg("Invalid StartingSequenceNumber. It encodes %s, while it was used in a call to a shard with %s", shardName(idx), sh.id)
		case !fromStream:
			return nil, errInvalidArg("StartingSequenceNumber %s used in GetShardIterator on shard %s in stream %s under account %s is invalid because it did not come from this stream.", *seq, sh.id, st.name, s.account)
		}
		it.pos = max(c, 1)
		if typ == types.ShardIteratorTypeAfterSequenceNumber {
			it.pos = c + 1
		}
	case types.ShardIteratorTypeAtTimestamp:
		if in.Timestamp == nil {
			return nil, errInvalidArg("Must specify timestampInMillis parameter for iterator of type AT_TIMESTAMP. Current request has no timestamp parameter.")
		}
		ts := *in.Timestamp
		if ts.After(now) {
			return nil, errInvalidArg("The timestampInMillis parameter cannot be greater than the currentTimestampInMillis. timestampInMillis: %d, currentTimestampInMillis: %d", ts.UnixMilli(), now.UnixMilli())
		}
		i := sort.Search(len(sh.records), func(i int) bool { return !sh.records[i].arrival.Before(ts) })
		it.pos = uint64(i) + 1
	default:
		return nil, validationError(typ, "shardIteratorType", "Member must satisfy enum value set: [AFTER_SEQUENCE_NUMBER, AT_SEQUENCE_NUMBER, AT_TIMESTAMP, TRIM_HORIZON, LATEST]")
	}
	return &kinesis.GetShardIteratorOutput{ShardIterator: aws.String(s.encodeIterator(it))}, nil
}

// GetRecords reads from a shard iterator: up to Limit records (at most
// 10,000 and 10 MiB), a NextShardIterator, and MillisBehindLatest. Once a
// closed shard has been read to its end, NextShardIterator is nil and
// ChildShards names its children.
func (s *Server) GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	if err := s.gate(ctx, OpGetRecords); err != nil {
		return nil, err
	}
	limit := maxGetRecordsN
	if in.Limit != nil {
		limit = int(*in.Limit)
		if limit < 1 {
			return nil, validationError(limit, "limit", "Member must have value greater than or equal to 1")
		}
		if limit > maxGetRecordsN {
			return nil, validationError(limit, "limit", "Member must have value less than or equal to 10000")
		}
	}
	raw := aws.ToString(in.ShardIterator)
	if raw == "" {
		return nil, validationError(raw, "shardIterator", "Member must have length greater than or equal to 1")
	}
	it, ok := s.decodeIterator(raw)
	if !ok {
		return nil, errInvalidIterator()
	}
	now := s.clk.Now()
	if issued := time.Unix(0, it.issued); now.Sub(issued) > iteratorTTL {
		return nil, errExpiredIterator(issued, now)
	}
	if a := aws.ToString(in.StreamARN); a != "" && a != s.streamARN(it.stream) {
		return nil, errInvalidArg("StreamARN %s does not match the stream of the ShardIterator.", a)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := s.streams[it.stream]
	if st == nil || st.seqEpoch != it.epoch || it.shard >= len(st.shards) || st.expired(st.shards[it.shard], now) {
		return nil, errShardNotFound(s, it.stream, shardName(it.shard))
	}
	sh := st.shards[it.shard]
	if s.limits && !sh.lim.admitRead(now) {
		return nil, errThroughput(s.rateExceeded(st, sh))
	}
	first := int(min(it.pos-1, uint64(len(sh.records))))
	first = max(first, st.trimIndex(sh, now))
	end, size := first, 0
	for end < len(sh.records) && end-first < limit {
		n := len(sh.records[end].data) + len(sh.records[end].pk)
		if end > first && size+n > maxGetRecordsSize {
			break
		}
		size += n
		end++
	}
	out := &kinesis.GetRecordsOutput{Records: copyRecords(sh.records[first:end], size), MillisBehindLatest: aws.Int64(0)}
	if end < len(sh.records) {
		out.MillisBehindLatest = aws.Int64(max(0, now.Sub(sh.records[end].arrival).Milliseconds()))
	}
	if !sh.open() && end == len(sh.records) {
		out.ChildShards = st.children(sh)
	} else {
		next := it
		next.pos, next.issued = uint64(end)+1, now.UnixNano()
		out.NextShardIterator = aws.String(s.encodeIterator(next))
	}
	if s.limits {
		sh.lim.chargeRead(size)
	}
	return out, nil
}

// copyRecords converts stored records to the SDK's shape. Everything the
// caller gets is freshly allocated (callers may modify it without touching
// the stream), in a few bulk allocations rather than several per record.
func copyRecords(recs []record, size int) []types.Record {
	n := len(recs)
	out := make([]types.Record, n)
	strs := make([]string, 2*n)
	times := make([]time.Time, n)
	buf := make([]byte, 0, size)
	for i := range recs {
		r := &recs[i]
		off := len(buf)
		buf = append(buf, r.data...)
		strs[2*i], strs[2*i+1], times[i] = r.seq, r.pk, r.arrival
		out[i] = types.Record{
			SequenceNumber:              &strs[2*i],
			PartitionKey:                &strs[2*i+1],
			Data:                        buf[off:len(buf):len(buf)],
			ApproximateArrivalTimestamp: &times[i],
			EncryptionType:              types.EncryptionTypeNone,
		}
	}
	return out
}
