package aggregation

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
)

// nodeBlob was written by aws-kinesis-agg 4.2.8 (RecordAggregator) for
// records {pk "b", data "x"}, {pk "1", ehk "123", data "y"}, {pk "c", data ""}.
// (Its partition key table is ["1","b","c"]: that library orders integer-like
// keys first, so it mislabels record 0; the bytes are a valid aggregate.)
const nodeBlobHex = "f3899ac20a01310a01620a016312033132331a0508001a01781a07080110001a01791a0408021a00c5e8368b71905d7f009d8b1120e3e002"

// FuzzUnmarshal feeds arbitrary bytes to the decoder both as a whole blob and
// framed with the magic and a correct MD5, so the fuzzer reaches the
// protobuf parser instead of stopping at the checksum. Decoding must never
// panic; a failure must wrap ErrNotAggregated and agree with IsAggregated; a
// success must re-encode to the same records.
func FuzzUnmarshal(f *testing.F) {
	r := rand.New(rand.NewPCG(7, 7))
	for _, s := range []shape{
		{count: 1, dataLen: 10},
		{count: 3, keyPool: 2, ehk: 2, dataLen: 20},
		{count: 5, unicode: true, ehk: 1, dataLen: -1},
		{count: 200, dataLen: 2}, // index varints of two bytes
	} {
		blob, err := Marshal(genRecords(r, s))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(blob)
		f.Add(blob[MagicLen : len(blob)-DigestLen]) // as a body, framed below
	}
	node, _ := hexDecode(nodeBlobHex)
	f.Add(node)
	// A record with tags and unknown fields, records before tables.
	f.Add([]byte{0x1a, 0x0d, 0x08, 0x00, 0x1a, 0x01, 'd', 0x22, 0x03, 0x0a, 0x01, 'k', 0x28, 0x01, 0x0a, 0x01, 'p', 0x7b, 0x08, 0x01, 0x7c})
	f.Add([]byte{})
	f.Add([]byte("plain record"))

	f.Fuzz(func(t *testing.T, in []byte) {
		checkDecode(t, in)
		checkDecode(t, frame(in))
	})
}

func checkDecode(t *testing.T, blob []byte) {
	orig := bytes.Clone(blob)
	recs, err := Unmarshal(blob)
	if !bytes.Equal(orig, blob) {
		t.Fatal("Unmarshal modified its input")
	}
	if agg := IsAggregated(blob); agg != (err == nil) {
		t.Fatalf("IsAggregated = %v but Unmarshal error = %v", agg, err)
	}
	if err != nil {
		if !errors.Is(err, ErrNotAggregated) {
			t.Fatalf("error does not wrap ErrNotAggregated: %v", err)
		}
		if recs != nil {
			t.Fatalf("records returned with error %v", err)
		}
		return
	}
	// Every record costs at least 6 bytes of body, so output stays bounded.
	if len(recs) > (len(blob)-Overhead)/6 {
		t.Fatalf("%d records from a %d-byte blob", len(recs), len(blob))
	}
	if len(recs) == 0 {
		return
	}
	again, err := Marshal(recs)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Unmarshal(again)
	if err != nil {
		t.Fatalf("re-encoded aggregate does not decode: %v", err)
	}
	if len(back) != len(recs) {
		t.Fatalf("re-encoded: %d records, want %d", len(back), len(recs))
	}
	for i := range recs {
		if back[i].PartitionKey != recs[i].PartitionKey || back[i].ExplicitHashKey != recs[i].ExplicitHashKey ||
			!bytes.Equal(back[i].Data, recs[i].Data) {
			t.Fatalf("record %d changed in re-encoding", i)
		}
	}
}

// FuzzRoundTrip builds record sets from fuzzed keys and data and checks the
// Aggregator's size predictions and Marshal/Unmarshal symmetry.
func FuzzRoundTrip(f *testing.F) {
	f.Add("pk", "", []byte("data"), uint8(1), uint64(0))
	f.Add("ключ", "340282366920938463463374607431768211455", []byte{}, uint8(40), uint64(9))
	f.Add("\x00\xff", "1", bytes.Repeat([]byte{0xAB}, 300), uint8(200), uint64(3))
	f.Fuzz(func(t *testing.T, pk, ehk string, data []byte, n uint8, seed uint64) {
		if n == 0 {
			n = 1
		}
		r := rand.New(rand.NewPCG(seed, 1))
		recs := make([]Record, n)
		var a Aggregator
		for i := range recs {
			rec := Record{PartitionKey: pk, Data: data[:r.IntN(len(data)+1)]}
			if r.IntN(3) == 0 {
				rec.PartitionKey = pk + string(rune('a'+r.IntN(26)))
			}
			if ehk != "" && r.IntN(2) == 0 {
				rec.ExplicitHashKey = ehk
			}
			recs[i] = rec
			want := a.SizeWith(rec.PartitionKey, rec.ExplicitHashKey, len(rec.Data))
			a.Add(rec.PartitionKey, rec.ExplicitHashKey, rec.Data)
			if a.Size() != want {
				t.Fatalf("record %d: SizeWith %d, Size %d", i, want, a.Size())
			}
		}
		blob, err := Marshal(recs)
		if err != nil {
			t.Fatal(err)
		}
		if got := a.AppendBlob(nil); !bytes.Equal(got, blob) || len(got) != a.Size() {
			t.Fatalf("Aggregator blob (%d bytes) differs from Marshal (%d bytes) or Size %d", len(got), len(blob), a.Size())
		}
		back, err := Unmarshal(blob)
		if err != nil {
			t.Fatal(err)
		}
		for i := range recs {
			if back[i].PartitionKey != recs[i].PartitionKey || back[i].ExplicitHashKey != recs[i].ExplicitHashKey ||
				!bytes.Equal(back[i].Data, recs[i].Data) {
				t.Fatalf("record %d changed in the round trip", i)
			}
		}
		// The same records without the key index, some of them with it.
		var u Aggregator
		for i, rec := range recs {
			if r.IntN(4) == 0 {
				u.Add(rec.PartitionKey, rec.ExplicitHashKey, rec.Data)
			} else if !u.AddWithinUnindexed(rec.PartitionKey, rec.ExplicitHashKey, rec.Data, 1<<30) {
				t.Fatalf("record %d refused under no limit", i)
			}
		}
		ublob := u.AppendBlob(nil)
		if len(ublob) != u.Size() || len(ublob) < len(blob) {
			t.Fatalf("unindexed blob is %d bytes, Size %d, indexed %d", len(ublob), u.Size(), len(blob))
		}
		back, err = Unmarshal(ublob)
		if err != nil {
			t.Fatal(err)
		}
		for i := range recs {
			if back[i].PartitionKey != recs[i].PartitionKey || back[i].ExplicitHashKey != recs[i].ExplicitHashKey ||
				!bytes.Equal(back[i].Data, recs[i].Data) {
				t.Fatalf("record %d changed in the unindexed round trip", i)
			}
		}
	})
}
