package aggregation

import (
	"crypto/md5"
	"fmt"
	"math/rand/v2"
	"testing"
)

// Benchmarks use 100-byte records with 16-byte keys, about 400 to an
// aggregate (close to the KPL's 51,200-byte AggregationMaxSize). B/op and
// allocs/op are per aggregate; ns/record divides the time by the records.

const (
	benchRecords = 400
	benchKeyLen  = 16
	benchDataLen = 100
)

// benchRecordSet returns records with distinct partition keys (the common
// case: random or per-entity keys) or keys drawn from a pool of 10.
func benchRecordSet(shared bool) []Record {
	r := rand.New(rand.NewPCG(1, 1))
	pool := make([]string, 10)
	for i := range pool {
		pool[i] = randASCIIKey(r, benchKeyLen)
	}
	recs := make([]Record, benchRecords)
	for i := range recs {
		pk := pool[i%len(pool)]
		if !shared {
			pk = randASCIIKey(r, benchKeyLen)
		}
		recs[i] = Record{PartitionKey: pk, Data: randData(r, benchDataLen)}
	}
	return recs
}

func reportPerRecord(b *testing.B, perOp int) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*perOp), "ns/record")
}

func keysName(shared bool) string {
	if shared {
		return "keys=shared10"
	}
	return "keys=distinct"
}

func BenchmarkMarshal(b *testing.B) {
	for _, shared := range []bool{false, true} {
		b.Run(keysName(shared), func(b *testing.B) {
			recs := benchRecordSet(shared)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Marshal(recs); err != nil {
					b.Fatal(err)
				}
			}
			reportPerRecord(b, len(recs))
		})
	}
}

// BenchmarkAggregator is the producer's path: SizeWith and Add per record,
// AppendBlob into a reused buffer, Reset.
func BenchmarkAggregator(b *testing.B) {
	for _, shared := range []bool{false, true} {
		b.Run(keysName(shared), func(b *testing.B) {
			recs := benchRecordSet(shared)
			var a Aggregator
			var buf []byte
			b.ReportAllocs()
			for b.Loop() {
				for i := range recs {
					rec := &recs[i]
					if a.SizeWith(rec.PartitionKey, "", len(rec.Data)) > 1<<20 {
						b.Fatal("unexpected size")
					}
					a.Add(rec.PartitionKey, "", rec.Data)
				}
				buf = a.AppendBlob(buf[:0])
				a.Reset()
			}
			b.SetBytes(int64(len(buf)))
			reportPerRecord(b, len(recs))
		})
	}
}

func BenchmarkUnmarshal(b *testing.B) {
	for _, shared := range []bool{false, true} {
		recs := benchRecordSet(shared)
		blob, err := Marshal(recs)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(keysName(shared), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(blob)))
			for b.Loop() {
				if _, err := Unmarshal(blob); err != nil {
					b.Fatal(err)
				}
			}
			reportPerRecord(b, len(recs))
		})
		// The consumer's hot path: decode into a reused slice.
		b.Run(fmt.Sprintf("%s/AppendUnmarshal-reuse", keysName(shared)), func(b *testing.B) {
			dst := make([]Record, 0, len(recs))
			b.ReportAllocs()
			b.SetBytes(int64(len(blob)))
			for b.Loop() {
				if dst, err = AppendUnmarshal(dst[:0], blob); err != nil {
					b.Fatal(err)
				}
			}
			reportPerRecord(b, len(recs))
		})
	}
}

// BenchmarkDeaggregatePlain is the cost a consumer pays for a record that is
// not an aggregate.
func BenchmarkDeaggregatePlain(b *testing.B) {
	data := randData(rand.New(rand.NewPCG(2, 2)), benchDataLen)
	dst := make([]Record, 0, 1)
	b.ReportAllocs()
	for b.Loop() {
		dst, _ = Deaggregate(dst[:0], data, "pk")
	}
}

// BenchmarkMD5Floor is the MD5 of one benchmark aggregate's body, which both
// directions must compute: the format's own floor for the figures above.
func BenchmarkMD5Floor(b *testing.B) {
	blob, err := Marshal(benchRecordSet(false))
	if err != nil {
		b.Fatal(err)
	}
	body := blob[MagicLen : len(blob)-DigestLen]
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		_ = md5.Sum(body)
	}
	reportPerRecord(b, benchRecords)
}
