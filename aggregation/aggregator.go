package aggregation

import (
	"crypto/md5"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
)

// Aggregator builds one aggregate incrementally. Add records (AddWithin,
// or SizeWith before each Add, to stay under a size limit), then
// AppendBlob and Reset to start the next aggregate with the same buffers
// and maps.
//
// The zero value is ready to use. An Aggregator is not safe for concurrent
// use.
type Aggregator struct {
	pks     keyTable
	ehks    keyTable
	records []pendingRecord
	// bodySize is the exact length of the protobuf body so far.
	bodySize int
}

// keyTable is one of the aggregate's key tables, with an index for
// finding a key already in it.
type keyTable struct {
	index map[string]uint64
	keys  []string
}

// find returns key's index: the one it has, or the one it would get if
// added now; and the bytes adding it would cost (0 if it is already in).
func (t *keyTable) find(key string) (i uint64, cost int) {
	if i, ok := t.index[key]; ok {
		return i, 0
	}
	return uint64(len(t.keys)), tableEntrySize(key)
}

// add returns key's index, adding it if new, and the bytes that cost.
func (t *keyTable) add(key string) (uint64, int) {
	i, cost := t.find(key)
	if cost != 0 {
		t.insert(key, i)
	}
	return i, cost
}

// insert adds key, which find did not have, at index i (from find).
func (t *keyTable) insert(key string, i uint64) {
	if t.index == nil {
		t.index = make(map[string]uint64)
	}
	t.index[key] = i
	t.keys = append(t.keys, key)
}

func (t *keyTable) reset() {
	clear(t.index)
	clear(t.keys)
	t.keys = t.keys[:0]
}

// pendingRecord is a user record waiting for AppendBlob.
type pendingRecord struct {
	data []byte
	pk   uint64
	ehk  uint64 // index+1 into ehks; 0 means no explicit hash key
}

// tableEntrySize is the encoded size of one key table entry.
func tableEntrySize(key string) int {
	return 1 + protowire.SizeBytes(len(key)) // tags of fields 1 and 2 take one byte
}

// recordSize returns the size of a Record message body with the given
// indexes (ehk is index+1, 0 for none) and data length.
func recordSize(pk, ehk uint64, dataLen int) int {
	n := 1 + protowire.SizeVarint(pk) + 1 + protowire.SizeBytes(dataLen)
	if ehk != 0 {
		n += 1 + protowire.SizeVarint(ehk-1)
	}
	return n
}

// recordFieldSize is the size of a record as field 3 of AggregatedRecord.
func recordFieldSize(inner int) int {
	return 1 + protowire.SizeBytes(inner)
}

// SizeWith returns the exact length of the blob AppendBlob would return if a
// record with these keys and dataLen bytes of data were added now. It does
// not allocate. dataLen must not be negative.
func (a *Aggregator) SizeWith(partitionKey, explicitHashKey string, dataLen int) int {
	pk, body := a.pks.find(partitionKey)
	var ehk uint64
	if explicitHashKey != "" {
		i, cost := a.ehks.find(explicitHashKey)
		ehk, body = i+1, body+cost
	}
	return Overhead + a.bodySize + body + recordFieldSize(recordSize(pk, ehk, dataLen))
}

// Add appends a user record. An empty explicitHashKey means none. The
// Aggregator keeps a reference to data (no copy) until Reset, so data must
// not be modified before then.
func (a *Aggregator) Add(partitionKey, explicitHashKey string, data []byte) {
	pk, cost := a.pks.add(partitionKey)
	a.bodySize += cost
	var ehk uint64
	if explicitHashKey != "" {
		i, cost := a.ehks.add(explicitHashKey)
		ehk = i + 1
		a.bodySize += cost
	}
	a.records = append(a.records, pendingRecord{data: data, pk: pk, ehk: ehk})
	a.bodySize += recordFieldSize(recordSize(pk, ehk, len(data)))
}

// AddWithin adds the record as Add does if the blob would then be at most
// maxSize bytes long (SizeWith(partitionKey, explicitHashKey, len(data))
// <= maxSize), and reports whether it did. It looks each key up once,
// where SizeWith followed by Add looks it up twice.
func (a *Aggregator) AddWithin(partitionKey, explicitHashKey string, data []byte, maxSize int) bool {
	pk, cost := a.pks.find(partitionKey)
	return a.addWithin(partitionKey, pk, cost, true, explicitHashKey, data, maxSize)
}

// AddWithinUnindexed is AddWithin for partition keys that rarely repeat:
// it does not look the key up in the partition key table, which costs a
// map look-up and insert per new key, and reuses a table entry only when
// the key is the previous record's. A key that does repeat otherwise gets
// another table entry: the aggregate stays valid (readers, the KPL's and
// aws-kinesis-agg's included, accept a key stored twice), but it is
// larger by the key's length plus up to 3 bytes of framing per repeat
// (up to 259 bytes for a 256-byte key), and the table no longer holds
// each key once. Mixing it with Add and AddWithin is allowed: they look
// up only the keys those calls added.
func (a *Aggregator) AddWithinUnindexed(partitionKey, explicitHashKey string, data []byte, maxSize int) bool {
	pk, cost := uint64(len(a.pks.keys)), tableEntrySize(partitionKey)
	if n := len(a.records); n > 0 {
		if last := a.records[n-1].pk; a.pks.keys[last] == partitionKey {
			pk, cost = last, 0
		}
	}
	return a.addWithin(partitionKey, pk, cost, false, explicitHashKey, data, maxSize)
}

// addWithin is AddWithin and AddWithinUnindexed once the partition key's
// table entry pk is chosen (cost is what a new entry adds, 0 for an
// existing one); indexed says whether a new entry goes in the key index.
func (a *Aggregator) addWithin(partitionKey string, pk uint64, cost int, indexed bool, explicitHashKey string, data []byte, maxSize int) bool {
	var ehk uint64
	ehkCost := 0
	if explicitHashKey != "" {
		var i uint64
		i, ehkCost = a.ehks.find(explicitHashKey)
		ehk = i + 1
	}
	grow := cost + ehkCost + recordFieldSize(recordSize(pk, ehk, len(data)))
	if Overhead+a.bodySize+grow > maxSize {
		return false
	}
	switch {
	case cost == 0:
	case indexed:
		a.pks.insert(partitionKey, pk)
	default:
		a.pks.keys = append(a.pks.keys, partitionKey)
	}
	if ehkCost != 0 {
		a.ehks.insert(explicitHashKey, ehk-1)
	}
	a.records = append(a.records, pendingRecord{data: data, pk: pk, ehk: ehk})
	a.bodySize += grow
	return true
}

// Grow makes room for n more records with distinct partition keys, so
// that adding them does not reallocate. It suits an Aggregator about to
// be filled when the caller knows about how many records an aggregate
// takes (its last one's count).
func (a *Aggregator) Grow(n int) {
	if n <= 0 {
		return
	}
	a.GrowUnindexed(n)
	if a.pks.index == nil {
		a.pks.index = make(map[string]uint64, n)
	}
}

// GrowUnindexed is Grow for records to be added with AddWithinUnindexed:
// it makes room in the records and the key table but not in the key
// index, which those adds do not use (a map sized for n keys would be
// memory held for nothing).
func (a *Aggregator) GrowUnindexed(n int) {
	if n <= 0 {
		return
	}
	a.records = slices.Grow(a.records, n)
	a.pks.keys = slices.Grow(a.pks.keys, n)
}

// Record returns the i-th record added since the last Reset (0 <=
// i < Len()): its keys (an empty explicitHashKey means none) and its data,
// which is the slice given to Add.
func (a *Aggregator) Record(i int) (partitionKey, explicitHashKey string, data []byte) {
	r := &a.records[i]
	if r.ehk != 0 {
		explicitHashKey = a.ehks.keys[r.ehk-1]
	}
	return a.pks.keys[r.pk], explicitHashKey, r.data
}

// Size returns the exact length of the blob AppendBlob would return now.
// With no records that is Overhead, which is not a valid aggregate.
func (a *Aggregator) Size() int { return Overhead + a.bodySize }

// Len returns the number of user records added since the last Reset.
func (a *Aggregator) Len() int { return len(a.records) }

// AppendBlob appends the aggregate (magic, protobuf body, MD5 of the body)
// to dst and returns the extended slice; it grows dst at most once. It does
// not reset the Aggregator. Call it only with Len() > 0: an empty aggregate
// is not recognised as one by any reader.
func (a *Aggregator) AppendBlob(dst []byte) []byte {
	dst = slices.Grow(dst, a.Size())
	dst = append(dst, magic[:]...)
	start := len(dst)
	// Field order follows the protobuf serialisation the KPL uses: the
	// tables, then the records, each record's fields in number order.
	for _, k := range a.pks.keys {
		dst = protowire.AppendTag(dst, fieldPartitionKeyTable, protowire.BytesType)
		dst = protowire.AppendString(dst, k)
	}
	for _, k := range a.ehks.keys {
		dst = protowire.AppendTag(dst, fieldExplicitHashKeyTable, protowire.BytesType)
		dst = protowire.AppendString(dst, k)
	}
	for i := range a.records {
		r := &a.records[i]
		dst = protowire.AppendTag(dst, fieldRecords, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(recordSize(r.pk, r.ehk, len(r.data))))
		dst = protowire.AppendTag(dst, fieldRecordPartitionKeyIndex, protowire.VarintType)
		dst = protowire.AppendVarint(dst, r.pk)
		if r.ehk != 0 {
			dst = protowire.AppendTag(dst, fieldRecordExplicitHashKeyIndex, protowire.VarintType)
			dst = protowire.AppendVarint(dst, r.ehk-1)
		}
		dst = protowire.AppendTag(dst, fieldRecordData, protowire.BytesType)
		dst = protowire.AppendBytes(dst, r.data)
	}
	sum := md5.Sum(dst[start:])
	return append(dst, sum[:]...)
}

// Reset forgets all records and keys, dropping the references to their
// data, and keeps the buffers and maps for the next aggregate.
func (a *Aggregator) Reset() {
	a.pks.reset()
	a.ehks.reset()
	clear(a.records)
	a.records = a.records[:0]
	a.bodySize = 0
}
