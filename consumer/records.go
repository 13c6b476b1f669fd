package consumer

import (
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"math/bits"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardflow/shardflow/aggregation"
	"github.com/shardflow/shardflow/checkpoint"
)

// batch is one fetched unit handed from a shard's fetcher to its processor
// loop.
type batch struct {
	records      []Record
	bytes        int
	millisBehind int64
	// shardEnd marks the last batch of a closed shard; childShards lists
	// its children when the service reported them.
	shardEnd    bool
	childShards []types.ChildShard
}

// uint128 is a Kinesis hash key.
type uint128 struct{ hi, lo uint64 }

func (a uint128) less(b uint128) bool { return a.hi < b.hi || (a.hi == b.hi && a.lo < b.lo) }

// parseUint128 parses a decimal hash key.
func parseUint128(s string) (uint128, error) {
	if s == "" {
		return uint128{}, fmt.Errorf("empty hash key")
	}
	var v uint128
	for i := 0; i < len(s); i++ {
		d := s[i] - '0'
		if d > 9 {
			return uint128{}, fmt.Errorf("hash key %q is not a decimal number", s)
		}
		// v = v*10 + d, failing on overflow.
		hiH, hiL := bits.Mul64(v.hi, 10)
		loH, loL := bits.Mul64(v.lo, 10)
		hi, c := bits.Add64(hiL, loH, 0)
		if hiH != 0 || c != 0 {
			return uint128{}, fmt.Errorf("hash key %q exceeds 2^128-1", s)
		}
		lo, c2 := bits.Add64(loL, uint64(d), 0)
		hi, c = bits.Add64(hi, 0, c2)
		if c != 0 {
			return uint128{}, fmt.Errorf("hash key %q exceeds 2^128-1", s)
		}
		v = uint128{hi, lo}
	}
	return v, nil
}

func md5Key(pk string) uint128 {
	sum := md5.Sum([]byte(pk))
	return uint128{binary.BigEndian.Uint64(sum[:8]), binary.BigEndian.Uint64(sum[8:])}
}

// converter turns a shard's Kinesis records into delivered Records:
// deaggregating KPL aggregates, skipping sub-records at or before the resume
// checkpoint, and counting sub-records outside the shard's hash range.
type converter struct {
	shardID string
	// hasRange is false when the lease carries no hash range.
	hasRange   bool
	start, end uint128
	// skip, while non-nil, is the checkpoint processing resumed at: records
	// of that sequence number with sub-sequence <= skip's are dropped.
	skip    *checkpoint.Position
	scratch []aggregation.Record
	// lastKey/lastHash cache the hash of the previous partition key:
	// aggregates often carry runs of the same key.
	lastKey  string
	lastHash uint128
	hashed   bool
}

func newConverter(shardID, startingHashKey, endingHashKey string, resume checkpoint.Position) *converter {
	c := &converter{shardID: shardID}
	if s, err := parseUint128(startingHashKey); err == nil {
		if e, err := parseUint128(endingHashKey); err == nil {
			c.hasRange, c.start, c.end = true, s, e
		}
	}
	if resume.Sentinel == "" && resume.SequenceNumber != "" {
		p := resume
		c.skip = &p
	}
	return c
}

// convert appends the user records of raw to dst; it returns them, their
// data size and how many lay outside the shard's hash range.
func (c *converter) convert(dst []Record, raw []types.Record) (out []Record, size, outOfRange int) {
	for i := range raw {
		r := &raw[i]
		seq := ""
		if r.SequenceNumber != nil {
			seq = *r.SequenceNumber
		}
		var skipUpTo int64 = -1
		if c.skip != nil {
			if seq == c.skip.SequenceNumber {
				skipUpTo = c.skip.SubSequenceNumber
			} else {
				c.skip = nil // past the resume point
			}
		}
		var arrival time.Time
		if r.ApproximateArrivalTimestamp != nil {
			arrival = *r.ApproximateArrivalTimestamp
		}
		pk := ""
		if r.PartitionKey != nil {
			pk = *r.PartitionKey
		}
		subs, err := aggregation.AppendUnmarshal(c.scratch[:0], r.Data)
		if err != nil {
			// Not an aggregate: delivered unchanged as sub-record 0.
			if skipUpTo >= 0 {
				continue
			}
			dst = append(dst, Record{
				SequenceNumber:              seq,
				PartitionKey:                pk,
				Data:                        r.Data,
				ApproximateArrivalTimestamp: arrival,
			})
			size += len(r.Data)
			continue
		}
		c.scratch = subs
		for j := range subs {
			if int64(j) <= skipUpTo {
				continue
			}
			s := &subs[j]
			if c.hasRange && !c.inRange(s) {
				outOfRange++
			}
			dst = append(dst, Record{
				SequenceNumber:              seq,
				SubSequenceNumber:           int64(j),
				PartitionKey:                s.PartitionKey,
				ExplicitHashKey:             s.ExplicitHashKey,
				Data:                        s.Data,
				ApproximateArrivalTimestamp: arrival,
				Aggregated:                  true,
			})
			size += len(s.Data)
		}
		clear(c.scratch) // drop references into the blob
	}
	return dst, size, outOfRange
}

func (c *converter) inRange(s *aggregation.Record) bool {
	var k uint128
	if s.ExplicitHashKey != "" {
		v, err := parseUint128(s.ExplicitHashKey)
		if err != nil {
			return false
		}
		k = v
	} else {
		if !c.hashed || s.PartitionKey != c.lastKey {
			c.lastKey, c.lastHash, c.hashed = s.PartitionKey, md5Key(s.PartitionKey), true
		}
		k = c.lastHash
	}
	return !k.less(c.start) && !c.end.less(k)
}

// seqLess orders Kinesis sequence numbers (decimal strings of up to 128
// bits) numerically.
func seqLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}
