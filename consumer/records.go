package consumer

import (
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardflow/shardflow/aggregation"
	"github.com/shardflow/shardflow/checkpoint"
	"github.com/shardflow/shardflow/internal/hashkey"
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

// converter turns a shard's Kinesis records into delivered Records:
// deaggregating KPL aggregates, skipping sub-records at or before the resume
// checkpoint, and counting sub-records outside the shard's hash range.
type converter struct {
	shardID string
	// hasRange is false when the lease carries no hash range.
	hasRange   bool
	start, end hashkey.Key
	// skip, while non-nil, is the checkpoint processing resumed at: records
	// of that sequence number with sub-sequence <= skip's are dropped.
	skip    *checkpoint.Position
	scratch []aggregation.Record
	// lastKey/lastHash cache the hash of the previous partition key:
	// aggregates often carry runs of the same key.
	lastKey  string
	lastHash hashkey.Key
	hashed   bool
}

func newConverter(shardID, startingHashKey, endingHashKey string, resume checkpoint.Position) *converter {
	c := &converter{shardID: shardID}
	if s, ok := hashkey.Parse(startingHashKey); ok {
		if e, ok := hashkey.Parse(endingHashKey); ok {
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
	var k hashkey.Key
	if s.ExplicitHashKey != "" {
		v, ok := hashkey.Parse(s.ExplicitHashKey)
		if !ok {
			return false
		}
		k = v
	} else {
		if !c.hashed || s.PartitionKey != c.lastKey {
			c.lastKey, c.lastHash, c.hashed = s.PartitionKey, hashkey.Of(s.PartitionKey), true
		}
		k = c.lastHash
	}
	return !k.Less(c.start) && !c.end.Less(k)
}

// seqLess orders Kinesis sequence numbers (decimal strings of up to 128
// bits) numerically.
func seqLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}
