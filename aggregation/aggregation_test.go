package aggregation

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"
)

// frame wraps a protobuf body as an aggregate with a correct MD5.
func frame(body []byte) []byte {
	sum := md5.Sum(body)
	out := append(append([]byte{}, magic[:]...), body...)
	return append(out, sum[:]...)
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	require.NoError(t, err)
	return b
}

// requireSameRecords compares record sets field by field; nil and empty
// Data are the same on the wire.
func requireSameRecords(t *testing.T, want, got []Record) {
	t.Helper()
	require.Len(t, got, len(want))
	for i := range want {
		require.Equal(t, want[i].PartitionKey, got[i].PartitionKey, "record %d partition key", i)
		require.Equal(t, want[i].ExplicitHashKey, got[i].ExplicitHashKey, "record %d explicit hash key", i)
		require.True(t, bytes.Equal(want[i].Data, got[i].Data), "record %d data differs (len %d vs %d)", i, len(want[i].Data), len(got[i].Data))
	}
}

func TestMarshalGolden(t *testing.T) {
	recs := []Record{
		{PartitionKey: "a", Data: []byte("x")},
		{PartitionKey: "b", ExplicitHashKey: "123", Data: nil},
		{PartitionKey: "a", Data: []byte("yz")},
	}
	// Written out by hand from the .proto: tables first, then records, each
	// record's fields in number order, keys stored once.
	body := mustHex(t, ""+
		"0a0161"+ // partition_key_table "a"
		"0a0162"+ // partition_key_table "b"
		"1203313233"+ // explicit_hash_key_table "123"
		"1a05"+"0800"+"1a0178"+ // {pk 0, data "x"}
		"1a06"+"0801"+"1000"+"1a00"+ // {pk 1, ehk 0, data ""}
		"1a06"+"0800"+"1a02797a") // {pk 0, data "yz"}
	want := frame(body)
	require.Equal(t, "f3899ac2", hex.EncodeToString(want[:4]))

	got, err := Marshal(recs)
	require.NoError(t, err)
	require.Equal(t, hex.EncodeToString(want), hex.EncodeToString(got))

	back, err := Unmarshal(got)
	require.NoError(t, err)
	requireSameRecords(t, recs, back)
}

func TestMarshalEmpty(t *testing.T) {
	_, err := Marshal(nil)
	require.ErrorIs(t, err, ErrNoRecords)
	var a Aggregator
	require.Equal(t, Overhead, a.Size())
	require.False(t, IsAggregated(a.AppendBlob(nil)), "an empty aggregate must not pass as one")
}

// TestRoundTripProperties checks, for every shape over several seeds, that
// Marshal and the Aggregator agree byte for byte, SizeWith/Size predict the
// blob length exactly at every step, keys are stored once, and Unmarshal
// gives the records back.
func TestRoundTripProperties(t *testing.T) {
	seeds := 5
	if testing.Short() {
		seeds = 2
	}
	for _, s := range shapes {
		t.Run(s.name, func(t *testing.T) {
			for seed := range seeds {
				r := rand.New(rand.NewPCG(uint64(seed), 42))
				recs := genRecords(r, s)
				checkRoundTrip(t, recs)
				if s.count > 1000 || s.dataLen > 1<<16 {
					break // one seed is plenty for the big shapes
				}
			}
		})
	}
}

func checkRoundTrip(t *testing.T, recs []Record) {
	t.Helper()
	blob, err := Marshal(recs)
	require.NoError(t, err)
	require.True(t, IsAggregated(blob))

	// The Aggregator, twice through Reset, appending after a prefix.
	var a Aggregator
	for round := range 2 {
		for i, rec := range recs {
			predicted := a.SizeWith(rec.PartitionKey, rec.ExplicitHashKey, len(rec.Data))
			a.Add(rec.PartitionKey, rec.ExplicitHashKey, rec.Data)
			require.Equal(t, predicted, a.Size(), "round %d record %d: SizeWith != Size after Add", round, i)
		}
		require.Equal(t, len(recs), a.Len())
		prefix := []byte("prefix")
		out := a.AppendBlob(prefix)
		require.Equal(t, "prefix", string(out[:6]))
		require.Equal(t, a.Size(), len(out)-6, "round %d: Size != len(AppendBlob)", round)
		require.True(t, bytes.Equal(blob, out[6:]), "round %d: Aggregator output differs from Marshal", round)
		a.Reset()
		require.Zero(t, a.Len())
		require.Equal(t, Overhead, a.Size())
	}

	// Keys are stored once each.
	l, err := scanBody(blob[MagicLen : len(blob)-DigestLen])
	require.NoError(t, err)
	pks, ehks := map[string]bool{}, map[string]bool{}
	for _, rec := range recs {
		pks[rec.PartitionKey] = true
		if rec.ExplicitHashKey != "" {
			ehks[rec.ExplicitHashKey] = true
		}
	}
	require.Equal(t, len(pks), l.pkCount, "partition key table size")
	require.Equal(t, len(ehks), l.ehkCount, "explicit hash key table size")
	require.Equal(t, len(recs), l.records)

	got, err := Unmarshal(blob)
	require.NoError(t, err)
	requireSameRecords(t, recs, got)
}

// TestSizeWithVarintBoundaries walks data lengths and table sizes across the
// points where varint lengths grow.
func TestSizeWithVarintBoundaries(t *testing.T) {
	lens := []int{0, 1, 100, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125, 126, 127, 128, 129, 130,
		16370, 16371, 16372, 16373, 16374, 16375, 16376, 16377, 16378, 16379, 16380, 16381, 16382, 16383, 16384, 16385,
		2097140, 2097151, 2097152}
	for _, ehk := range []string{"", "170141183460469231731687303715884105728"} {
		var a Aggregator
		for i, n := range lens {
			pk := randASCIIKey(rand.New(rand.NewPCG(uint64(i), 1)), 1+i%3)
			predicted := a.SizeWith(pk, ehk, n)
			a.Add(pk, ehk, make([]byte, n))
			require.Equal(t, predicted, a.Size())
			require.Equal(t, a.Size(), len(a.AppendBlob(nil)), "data length %d", n)
		}
		// Grow the partition key table past 128 and 16384 entries so the
		// index varint widens.
		for i := range 16500 {
			pk := string(rune(0x4e00+i%20000)) + string(rune('a'+i%26))
			predicted := a.SizeWith(pk, ehk, i%3)
			a.Add(pk, ehk, make([]byte, i%3))
			require.Equal(t, predicted, a.Size())
		}
		require.Equal(t, a.Size(), len(a.AppendBlob(nil)))
	}
}

// TestAddWithinMatchesSizeWithAndAdd: AddWithin adds exactly when SizeWith
// is within the limit, and builds the same blob as SizeWith and Add, for
// new and repeated keys, with and without explicit hash keys, across the
// varint boundaries of the key tables.
func TestAddWithinMatchesSizeWithAndAdd(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	var want, got Aggregator
	limit := 300_000
	added := 0
	for i := range 20_000 {
		pk := randASCIIKey(r, 1+r.IntN(4))
		if r.IntN(3) == 0 {
			pk = "repeated" + string(rune('a'+r.IntN(5)))
		}
		ehk := ""
		if r.IntN(4) == 0 {
			ehk = []string{"1", "170141183460469231731687303715884105728", "42"}[r.IntN(3)]
		}
		data := make([]byte, r.IntN(130))
		fits := want.SizeWith(pk, ehk, len(data)) <= limit
		if fits {
			want.Add(pk, ehk, data)
			added++
		}
		require.Equal(t, fits, got.AddWithin(pk, ehk, data, limit), "record %d", i)
		require.Equal(t, want.Size(), got.Size(), "record %d", i)
	}
	require.Greater(t, added, 1000)
	require.Less(t, added, 20_000, "the limit was never reached")
	require.Equal(t, want.AppendBlob(nil), got.AppendBlob(nil))
}

// TestRecordReturnsWhatWasAdded: Record gives back each record's keys and
// data, in order, with repeated and explicit hash keys.
func TestRecordReturnsWhatWasAdded(t *testing.T) {
	type added struct {
		pk, ehk string
		data    []byte
	}
	var a Aggregator
	var want []added
	for i := range 300 {
		r := added{pk: []string{"a", "b", "c"}[i%3] + string(rune('0'+i%7)), data: []byte{byte(i)}}
		if i%4 == 1 {
			r.ehk = []string{"1", "99"}[i%2]
		}
		a.Add(r.pk, r.ehk, r.data)
		want = append(want, r)
	}
	require.Equal(t, len(want), a.Len())
	for i, w := range want {
		pk, ehk, data := a.Record(i)
		require.Equal(t, w, added{pk, ehk, data}, "record %d", i)
	}
}

func TestDataAliasesBlobWithCappedCapacity(t *testing.T) {
	blob, err := Marshal([]Record{{PartitionKey: "k", Data: []byte("abc")}, {PartitionKey: "k", Data: []byte("def")}})
	require.NoError(t, err)
	recs, err := Unmarshal(blob)
	require.NoError(t, err)
	require.Equal(t, 3, cap(recs[0].Data), "appending to Data must not overwrite the blob")
	_ = append(recs[0].Data, 'X')
	require.Equal(t, "def", string(recs[1].Data))
}

func TestAppendUnmarshal(t *testing.T) {
	blob, err := Marshal([]Record{{PartitionKey: "a", Data: []byte("1")}, {PartitionKey: "b", ExplicitHashKey: "7", Data: []byte("2")}})
	require.NoError(t, err)
	dst := []Record{{PartitionKey: "existing"}}
	dst, err = AppendUnmarshal(dst, blob)
	require.NoError(t, err)
	requireSameRecords(t, []Record{
		{PartitionKey: "existing"},
		{PartitionKey: "a", Data: []byte("1")},
		{PartitionKey: "b", ExplicitHashKey: "7", Data: []byte("2")},
	}, dst)

	bad := bytes.Clone(blob)
	bad[len(bad)-1] ^= 1
	out, err := AppendUnmarshal(dst, bad)
	require.ErrorIs(t, err, ErrNotAggregated)
	require.Len(t, out, 3, "dst must come back unchanged on error")
}

func TestDeaggregate(t *testing.T) {
	blob, err := Marshal([]Record{{PartitionKey: "a", Data: []byte("1")}, {PartitionKey: "b", Data: []byte("2")}})
	require.NoError(t, err)

	recs, agg := Deaggregate(nil, blob, "outer")
	require.True(t, agg)
	requireSameRecords(t, []Record{{PartitionKey: "a", Data: []byte("1")}, {PartitionKey: "b", Data: []byte("2")}}, recs)

	plain := []byte("just a record")
	recs, agg = Deaggregate(recs[:0], plain, "outer")
	require.False(t, agg)
	requireSameRecords(t, []Record{{PartitionKey: "outer", Data: plain}}, recs)

	// A blob that looks aggregated but has a bad checksum is delivered as is.
	bad := bytes.Clone(blob)
	bad[5] ^= 0xff
	recs, agg = Deaggregate(nil, bad, "outer")
	require.False(t, agg)
	requireSameRecords(t, []Record{{PartitionKey: "outer", Data: bad}}, recs)
}

// Hostile and unusual inputs, built field by field with protowire.
func TestUnmarshalMalformed(t *testing.T) {
	tag := protowire.AppendTag
	str := func(b []byte, num protowire.Number, s string) []byte {
		return protowire.AppendString(tag(b, num, protowire.BytesType), s)
	}
	uv := func(b []byte, num protowire.Number, v uint64) []byte {
		return protowire.AppendVarint(tag(b, num, protowire.VarintType), v)
	}
	rec := func(b []byte, inner []byte) []byte {
		return protowire.AppendBytes(tag(b, 3, protowire.BytesType), inner)
	}
	goodRec := str(uv(nil, 1, 0), 3, "data")
	pkTable := str(nil, 1, "pk")

	valid := frame(rec(pkTable, goodRec))
	badMagic := bytes.Clone(valid)
	badMagic[0] = 0
	badSum := bytes.Clone(valid)
	badSum[len(badSum)-1] ^= 1
	truncated := rec(pkTable, goodRec)
	truncated = truncated[:len(truncated)-1]

	cases := []struct {
		name string
		blob []byte
	}{
		{"nil", nil},
		{"magic only", magic[:]},
		{"magic and md5 of empty body", frame(nil)},
		{"wrong magic", badMagic},
		{"md5 mismatch", badSum},
		{"truncated tag", frame([]byte{0x80})},
		{"field number zero", frame([]byte{0x02, 0x00})},
		{"field number too large", frame(protowire.AppendVarint(nil, uint64(protowire.MaxValidNumber+1)<<3))},
		{"truncated length", frame([]byte{0x0a, 0x05, 'a'})},
		{"huge length", frame(protowire.AppendVarint([]byte{0x0a}, 1<<62))},
		{"varint overflow", frame([]byte{0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f})},
		{"pk table as varint", frame(rec(uv(nil, 1, 5), goodRec))},
		{"ehk table as fixed32", frame(rec(protowire.AppendFixed32(tag(pkTable, 2, protowire.Fixed32Type), 1), goodRec))},
		{"records as varint", frame(uv(pkTable, 3, 1))},
		{"record missing pk index", frame(rec(pkTable, str(nil, 3, "d")))},
		{"record missing data", frame(rec(pkTable, uv(nil, 1, 0)))},
		{"record pk index as bytes", frame(rec(pkTable, str(str(nil, 1, "x"), 3, "d")))},
		{"record data as varint", frame(rec(pkTable, uv(uv(nil, 1, 0), 3, 1)))},
		{"pk index out of range", frame(rec(pkTable, str(uv(nil, 1, 1), 3, "d")))},
		{"pk index max uint64", frame(rec(pkTable, str(uv(nil, 1, ^uint64(0)), 3, "d")))},
		{"records without pk table", frame(rec(nil, goodRec))},
		{"ehk index without table", frame(rec(pkTable, str(uv(uv(nil, 1, 0), 2, 0), 3, "d")))},
		{"ehk index out of range", frame(rec(str(pkTable, 2, "9"), str(uv(uv(nil, 1, 0), 2, 1), 3, "d")))},
		{"ehk index max uint64", frame(rec(str(pkTable, 2, "9"), str(uv(uv(nil, 1, 0), 2, ^uint64(0)), 3, "d")))},
		{"tag as varint", frame(rec(pkTable, uv(goodRec, 4, 1)))},
		{"tag without key", frame(rec(pkTable, str(goodRec, 4, string(str(nil, 2, "v")))))},
		{"tag key as varint", frame(rec(pkTable, str(goodRec, 4, string(uv(nil, 1, 1)))))},
		{"unknown field end group without start", frame(append(bytes.Clone(pkTable), 0x7c))},
		{"unknown group not closed", frame(append(bytes.Clone(pkTable), 0x7b))},
		{"reserved wire type", frame(append(bytes.Clone(pkTable), 0x7e, 0x00))},
		{"truncated record", frame(truncated)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			recs, err := Unmarshal(c.blob)
			require.Error(t, err)
			require.True(t, errors.Is(err, ErrNotAggregated), "error %v does not wrap ErrNotAggregated", err)
			require.Nil(t, recs)
			require.False(t, IsAggregated(c.blob))
			t.Log(err)
		})
	}
}

// Inputs that are unusual but valid protobuf must decode as the KCL would.
func TestUnmarshalTolerated(t *testing.T) {
	tag := protowire.AppendTag
	str := func(b []byte, num protowire.Number, s string) []byte {
		return protowire.AppendString(tag(b, num, protowire.BytesType), s)
	}
	uv := func(b []byte, num protowire.Number, v uint64) []byte {
		return protowire.AppendVarint(tag(b, num, protowire.VarintType), v)
	}
	rec := func(b []byte, inner []byte) []byte {
		return protowire.AppendBytes(tag(b, 3, protowire.BytesType), inner)
	}
	unknowns := func(b []byte, num protowire.Number) []byte {
		b = uv(b, num, 300)
		b = protowire.AppendFixed32(tag(b, num+1, protowire.Fixed32Type), 7)
		b = protowire.AppendFixed64(tag(b, num+2, protowire.Fixed64Type), 9)
		b = str(b, num+3, "skip me")
		b = tag(b, num+4, protowire.StartGroupType)
		b = uv(b, 1, 1)
		b = str(b, 2, "nested")
		return tag(b, num+4, protowire.EndGroupType)
	}

	cases := []struct {
		name string
		body []byte
		want []Record
	}{
		{
			name: "tags and unknown fields skipped",
			body: rec(unknowns(str(str(nil, 1, "pk"), 2, "42"), 5),
				unknowns(str(str(uv(uv(nil, 1, 0), 2, 0), 4, string(str(str(nil, 1, "k"), 2, "v"))), 3, "d"), 5)),
			want: []Record{{PartitionKey: "pk", ExplicitHashKey: "42", Data: []byte("d")}},
		},
		{
			name: "tag with key only and unknown tag field",
			body: rec(str(nil, 1, "pk"), str(str(uv(nil, 1, 0), 3, "d"), 4, string(uv(str(nil, 1, "k"), 9, 1)))),
			want: []Record{{PartitionKey: "pk", Data: []byte("d")}},
		},
		{
			name: "records before tables, tables interleaved",
			body: str(str(rec(str(rec(nil, str(uv(uv(nil, 1, 1), 2, 0), 3, "one")), 2, "100"),
				str(uv(nil, 1, 0), 3, "two")), 1, "first"), 1, "second"),
			want: []Record{
				{PartitionKey: "second", ExplicitHashKey: "100", Data: []byte("one")},
				{PartitionKey: "first", Data: []byte("two")},
			},
		},
		{
			name: "singular fields repeated: last wins",
			body: rec(str(str(nil, 1, "a"), 1, "b"), str(uv(str(uv(nil, 1, 0), 3, "old"), 1, 1), 3, "new")),
			want: []Record{{PartitionKey: "b", Data: []byte("new")}},
		},
		{
			name: "tables only, no records",
			body: str(str(nil, 1, "a"), 2, "1"),
			want: nil,
		},
		{
			name: "empty keys and data",
			body: rec(str(nil, 1, ""), str(uv(nil, 1, 0), 3, "")),
			want: []Record{{PartitionKey: "", Data: []byte{}}},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			blob := frame(c.body)
			require.True(t, IsAggregated(blob))
			got, err := Unmarshal(blob)
			require.NoError(t, err)
			requireSameRecords(t, c.want, got)
		})
	}
}

func TestAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	r := rand.New(rand.NewPCG(1, 2))
	recs := genRecords(r, shape{count: 300, dataLen: 100, fixedData: true, ehk: 2})
	var a Aggregator
	buf := make([]byte, 0, 1<<20)
	cycle := func() {
		for _, rec := range recs {
			_ = a.SizeWith(rec.PartitionKey, rec.ExplicitHashKey, len(rec.Data))
			a.Add(rec.PartitionKey, rec.ExplicitHashKey, rec.Data)
		}
		buf = a.AppendBlob(buf[:0])
		a.Reset()
	}
	cycle() // warm the maps and slices
	require.Zero(t, testing.AllocsPerRun(20, cycle), "Aggregator steady state must not allocate")

	blob, err := Marshal(recs)
	require.NoError(t, err)
	require.Zero(t, testing.AllocsPerRun(20, func() { _ = IsAggregated(blob) }))

	dst := make([]Record, 0, len(recs))
	allocs := testing.AllocsPerRun(20, func() {
		dst, err = AppendUnmarshal(dst[:0], blob)
	})
	require.NoError(t, err)
	require.LessOrEqual(t, allocs, 1.0, "AppendUnmarshal with a reused dst: one allocation for the keys")

	plain := []byte("plain record")
	require.Zero(t, testing.AllocsPerRun(20, func() { dst, _ = Deaggregate(dst[:0], plain, "pk") }),
		"a plain record must pass through Deaggregate without allocating")
}
