package aggregation

import (
	"bytes"
	"crypto/md5"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"google.golang.org/protobuf/encoding/protowire"
)

// Pre-built errors for the cheap checks, so the consumer's common path (a
// plain, non-aggregated record) costs no allocation.
var (
	errTooShort = fmt.Errorf("%w: shorter than magic and MD5 plus a body", ErrNotAggregated)
	errMagic    = fmt.Errorf("%w: wrong magic", ErrNotAggregated)
	errChecksum = fmt.Errorf("%w: MD5 mismatch", ErrNotAggregated)
)

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: malformed protobuf: "+format, append([]any{ErrNotAggregated}, args...)...)
}

// IsAggregated reports whether blob is a valid KPL aggregate: it starts with
// the magic, is longer than magic plus MD5, its trailer is the MD5 of the
// body, and the body parses (every index within its table). It does not
// allocate for valid blobs.
func IsAggregated(blob []byte) bool {
	body, err := checkFrame(blob)
	if err != nil {
		return false
	}
	_, err = scanBody(body)
	return err == nil
}

// Unmarshal decodes an aggregate into its user records. An invalid aggregate
// yields an error wrapping ErrNotAggregated. Each record's Data aliases
// blob; the keys of all records share one allocation.
func Unmarshal(blob []byte) ([]Record, error) {
	return AppendUnmarshal(nil, blob)
}

// AppendUnmarshal decodes an aggregate and appends its user records to dst,
// the allocation-light form of Unmarshal for hot paths: with a reused dst
// of enough capacity it allocates once per aggregate (the storage for its
// keys) and nothing per record. Data aliases blob.
//
// On error dst is returned unchanged (same length) with an error wrapping
// ErrNotAggregated.
func AppendUnmarshal(dst []Record, blob []byte) ([]Record, error) {
	body, err := checkFrame(blob)
	if err != nil {
		return dst, err
	}
	l, err := scanBody(body)
	if err != nil {
		return dst, err
	}
	return fill(dst, body, l), nil
}

// Deaggregate appends the user records carried by one Kinesis record to dst
// and reports whether it was an aggregate. A record that is not a valid
// aggregate is appended unchanged as a single Record with the Kinesis
// record's partition key, as the KCL does; it never fails. The sub-sequence
// number of each appended record is its position after the original
// len(dst) (0 for a plain record).
func Deaggregate(dst []Record, data []byte, partitionKey string) (records []Record, aggregated bool) {
	out, err := AppendUnmarshal(dst, data)
	if err != nil {
		return append(dst, Record{PartitionKey: partitionKey, Data: data}), false
	}
	return out, true
}

// checkFrame validates magic, length and MD5 and returns the body.
func checkFrame(blob []byte) ([]byte, error) {
	if len(blob) <= Overhead {
		return nil, errTooShort
	}
	if !bytes.Equal(blob[:MagicLen], magic[:]) {
		return nil, errMagic
	}
	body := blob[MagicLen : len(blob)-DigestLen]
	sum := md5.Sum(body)
	if !bytes.Equal(sum[:], blob[len(blob)-DigestLen:]) {
		return nil, errChecksum
	}
	return body, nil
}

// layout is what a validating pass learns about a body.
type layout struct {
	pkCount, ehkCount, records int
	keyBytes                   int
}

// scanBody validates the whole body without allocating (except for error
// values) and sizes what fill will need. Work is linear in len(body).
func scanBody(body []byte) (layout, error) {
	var (
		l              layout
		maxPK, maxEHK  uint64
		anyEHK, anyRec bool
	)
	for len(body) > 0 {
		num, typ, n := consumeTag(body)
		if n < 0 {
			return l, malformed("tag: %v", protowire.ParseError(n))
		}
		body = body[n:]
		switch num {
		case fieldPartitionKeyTable, fieldExplicitHashKeyTable, fieldRecords:
			if typ != protowire.BytesType {
				return l, malformed("field %d has wire type %d, want bytes", num, typ)
			}
			v, n := protowire.ConsumeBytes(body)
			if n < 0 {
				return l, malformed("field %d: %v", num, protowire.ParseError(n))
			}
			body = body[n:]
			switch num {
			case fieldPartitionKeyTable:
				l.pkCount++
				l.keyBytes += len(v)
			case fieldExplicitHashKeyTable:
				l.ehkCount++
				l.keyBytes += len(v)
			default:
				r, err := parseRecord(v)
				if err != nil {
					return l, malformed("record %d: %w", l.records, err)
				}
				l.records++
				anyRec = true
				maxPK = max(maxPK, r.pk)
				if r.ehk != 0 {
					anyEHK = true
					maxEHK = max(maxEHK, r.ehk-1)
				}
			}
		default:
			n := protowire.ConsumeFieldValue(num, typ, body)
			if n < 0 {
				return l, malformed("unknown field %d: %v", num, protowire.ParseError(n))
			}
			body = body[n:]
		}
	}
	if anyRec && maxPK >= uint64(l.pkCount) {
		return l, malformed("partition key index %d out of table of %d", maxPK, l.pkCount)
	}
	if anyEHK && maxEHK >= uint64(l.ehkCount) {
		return l, malformed("explicit hash key index %d out of table of %d", maxEHK, l.ehkCount)
	}
	return l, nil
}

// errCodeFieldNumber is the code protowire.ParseError reports as an invalid
// field number.
var errCodeFieldNumber = func() int {
	_, _, n := protowire.ConsumeTag([]byte{0}) // field number 0
	return n
}()

// consumeTag is protowire.ConsumeTag that also rejects field numbers above
// the protobuf maximum.
func consumeTag(b []byte) (protowire.Number, protowire.Type, int) {
	num, typ, n := protowire.ConsumeTag(b)
	if n >= 0 && num > protowire.MaxValidNumber {
		return 0, 0, errCodeFieldNumber
	}
	return num, typ, n
}

// parsedRecord is one decoded Record message; ehk is index+1 (0 = none).
type parsedRecord struct {
	pk, ehk uint64
	data    []byte
}

// parseRecord decodes a Record message. Required fields must be present;
// repeated occurrences of a singular field keep the last, as protobuf does.
// Tags (field 4) are validated as Tag messages and then ignored.
func parseRecord(b []byte) (parsedRecord, error) {
	var (
		r              parsedRecord
		hasPK, hasData bool
	)
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return r, fmt.Errorf("record message tag: %v", protowire.ParseError(n))
		}
		b = b[n:]
		switch num {
		case fieldRecordPartitionKeyIndex, fieldRecordExplicitHashKeyIndex:
			if typ != protowire.VarintType {
				return r, fmt.Errorf("record message field %d has wire type %d, want varint", num, typ)
			}
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return r, fmt.Errorf("record message field %d: %v", num, protowire.ParseError(n))
			}
			b = b[n:]
			if num == fieldRecordPartitionKeyIndex {
				r.pk, hasPK = v, true
			} else {
				if v == ^uint64(0) {
					// Cannot be stored as index+1, and no table is that long.
					return r, fmt.Errorf("explicit hash key index %d out of range", v)
				}
				r.ehk = v + 1
			}
		case fieldRecordData, fieldRecordTags:
			if typ != protowire.BytesType {
				return r, fmt.Errorf("record message field %d has wire type %d, want bytes", num, typ)
			}
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return r, fmt.Errorf("record message field %d: %v", num, protowire.ParseError(n))
			}
			b = b[n:]
			if num == fieldRecordData {
				// Cap the alias so appending to Data cannot scribble on blob.
				r.data, hasData = v[:len(v):len(v)], true
			} else if err := checkTag(v); err != nil {
				return r, err
			}
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return r, fmt.Errorf("record message unknown field %d: %v", num, protowire.ParseError(n))
			}
			b = b[n:]
		}
	}
	if !hasPK {
		return r, errors.New("record message lacks required partition_key_index")
	}
	if !hasData {
		return r, errors.New("record message lacks required data")
	}
	return r, nil
}

// checkTag validates a Tag message (required key, optional value), which
// the KCL's parser would also insist on.
func checkTag(b []byte) error {
	hasKey := false
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return fmt.Errorf("tag message tag: %v", protowire.ParseError(n))
		}
		b = b[n:]
		switch num {
		case fieldTagKey, fieldTagValue:
			if typ != protowire.BytesType {
				return fmt.Errorf("tag message field %d has wire type %d, want bytes", num, typ)
			}
			hasKey = hasKey || num == fieldTagKey
			n = protowire.ConsumeFieldValue(num, typ, b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("tag message field %d: %v", num, protowire.ParseError(n))
		}
		b = b[n:]
	}
	if !hasKey {
		return errors.New("tag message lacks required key")
	}
	return nil
}

// keySpans is scratch for fill: for each table, the start and end of every
// key in the shared key string, as pairs. No pointers, so pooled copies never
// pin memory.
type keySpans struct{ pk, ehk []int }

// maxPooledSpans bounds the scratch kept in spansPool (512 KiB of ints, enough
// for 32,768 distinct keys).
const maxPooledSpans = 64 << 10

var spansPool = sync.Pool{New: func() any { return new(keySpans) }}

// fill decodes a body that scanBody accepted. Memory: one string of
// l.keyBytes for all keys, plus growth of dst by l.records entries, both
// bounded by len(body).
func fill(dst []Record, body []byte, l layout) []Record {
	spans := spansPool.Get().(*keySpans)
	pk, ehk := spans.pk[:0], spans.ehk[:0]

	var sb strings.Builder
	sb.Grow(l.keyBytes)
	// Pass 1: the key tables, which protobuf allows anywhere in the body.
	for b := body; len(b) > 0; {
		num, typ, n := consumeTag(b)
		b = b[n:]
		if num != fieldPartitionKeyTable && num != fieldExplicitHashKeyTable {
			b = b[protowire.ConsumeFieldValue(num, typ, b):]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		b = b[n:]
		start := sb.Len()
		sb.Write(v)
		if num == fieldPartitionKeyTable {
			pk = append(pk, start, sb.Len())
		} else {
			ehk = append(ehk, start, sb.Len())
		}
	}
	keys := sb.String()

	// Pass 2: the records, in order.
	dst = slices.Grow(dst, l.records)
	for b := body; len(b) > 0; {
		num, typ, n := consumeTag(b)
		b = b[n:]
		if num != fieldRecords {
			b = b[protowire.ConsumeFieldValue(num, typ, b):]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		b = b[n:]
		r, _ := parseRecord(v) // validated by scanBody
		rec := Record{PartitionKey: keys[pk[2*r.pk]:pk[2*r.pk+1]], Data: r.data}
		if r.ehk != 0 {
			i := 2 * (r.ehk - 1)
			rec.ExplicitHashKey = keys[ehk[i]:ehk[i+1]]
		}
		dst = append(dst, rec)
	}
	// Keep ordinary scratch for reuse, but let a freak (or hostile) table
	// size go to the garbage collector.
	if cap(pk)+cap(ehk) <= maxPooledSpans {
		spans.pk, spans.ehk = pk, ehk
		spansPool.Put(spans)
	}
	return dst
}
