// Package aggregation reads and writes the KPL aggregated record format: many
// user records packed into one Kinesis record, byte-compatible with AWS's
// Kinesis Producer Library, the KCL and aws-kinesis-agg.
//
// An aggregate is the magic F3 89 9A C2, a protobuf AggregatedRecord whose
// partition and explicit hash keys are stored once each in tables, and the
// MD5 of that protobuf. Producers build one incrementally with an
// [Aggregator], which knows the exact blob size before a record is added so
// an aggregate never exceeds a size limit; consumers split a Kinesis record
// back into user records with [Deaggregate] (or [AppendUnmarshal] /
// [Unmarshal]), which hand anything that is not a valid aggregate back
// unchanged, as the KCL does.
//
// The smallest use:
//
//	blob, err := aggregation.Marshal([]aggregation.Record{
//		{PartitionKey: "user-1", Data: []byte("hello")},
//		{PartitionKey: "user-2", Data: []byte("world")},
//	})
//	...
//	records, err := aggregation.Unmarshal(blob)
//
// Decoding never panics, rejects anything a protobuf parser would (and wire
// type mismatches), and its work and memory are linear in the blob's length
// (at worst about ten times it, for a blob of nothing but minimal records).
// The Data of decoded records aliases the blob (no copy), so keep the blob
// unmodified while they are in use. For hot paths, [AppendUnmarshal] and
// [Deaggregate] decode into a reused slice with one allocation per aggregate
// (its keys) and none per record.
package aggregation
