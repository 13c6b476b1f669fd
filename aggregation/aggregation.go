package aggregation

import (
	"crypto/md5"
	"errors"
)

// Record is one user record inside an aggregate.
type Record struct {
	// PartitionKey is the user record's own partition key.
	PartitionKey string
	// ExplicitHashKey is the user record's explicit hash key (a decimal
	// 128-bit unsigned integer); empty means none.
	ExplicitHashKey string
	// Data is the user record's payload. Decoded records alias the blob.
	Data []byte
}

// Errors.
var (
	// ErrNotAggregated is wrapped by every decoding error: the blob is not a
	// valid KPL aggregate (wrong magic, too short, MD5 mismatch, malformed
	// protobuf) and should be treated as an ordinary record.
	ErrNotAggregated = errors.New("aggregation: not a KPL aggregated record")

	// ErrNoRecords is returned by Marshal for an empty record list: an
	// aggregate of no records is indistinguishable from a plain record.
	ErrNoRecords = errors.New("aggregation: no records to aggregate")
)

// Format constants.
const (
	// MagicLen is the length of the magic prefix.
	MagicLen = 4
	// DigestLen is the length of the MD5 trailer.
	DigestLen = md5.Size
	// Overhead is the number of bytes an aggregate adds around its
	// protobuf body (magic + MD5).
	Overhead = MagicLen + DigestLen
)

// magic opens every aggregated record.
var magic = [MagicLen]byte{0xF3, 0x89, 0x9A, 0xC2}

// Protobuf field numbers of AggregatedRecord, Record and Tag.
const (
	fieldPartitionKeyTable    = 1
	fieldExplicitHashKeyTable = 2
	fieldRecords              = 3

	fieldRecordPartitionKeyIndex    = 1
	fieldRecordExplicitHashKeyIndex = 2
	fieldRecordData                 = 3
	fieldRecordTags                 = 4

	fieldTagKey   = 1
	fieldTagValue = 2
)

// Marshal encodes records as one aggregate, keys stored once each in the
// tables in order of first appearance (as the KPL does). It returns
// ErrNoRecords if records is empty. Keys are not checked against Kinesis's
// rules (1–256 character partition keys, 128-bit hash keys); that is the
// producer's job.
func Marshal(records []Record) ([]byte, error) {
	if len(records) == 0 {
		return nil, ErrNoRecords
	}
	var a Aggregator
	for i := range records {
		r := &records[i]
		a.Add(r.PartitionKey, r.ExplicitHashKey, r.Data)
	}
	return a.AppendBlob(make([]byte, 0, a.Size())), nil
}
