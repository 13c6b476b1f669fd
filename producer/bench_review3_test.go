package producer

import (
	"testing"

	"github.com/shardflow/shardflow/aggregation"
)

// BenchmarkReview3FloorUnindexed is BenchmarkFloor for the distinct key
// pattern with the shortcut the producer now takes for it: one
// AddWithinUnindexed per record (no key table index, no second size
// look-up). Producer / this is the overhead against a floor doing the
// same work as the producer's aggregation does.
func BenchmarkReview3FloorUnindexed(b *testing.B) {
	c := newCountingClient(benchShards)
	keys := benchKeySet("distinct")
	b.Run("keys=distinct", func(b *testing.B) {
		data := make([]byte, benchDataSize)
		aggs := make([]aggregation.Aggregator, benchShards)
		blob := make([]byte, 0, DefaultAggregationMaxSize+1024)
		var sink int
		b.ReportAllocs()
		cpu := startCPU()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			k := keys[i%len(keys)]
			hi, lo, _ := hashKey(k, "")
			a := &aggs[lookup(c.ranges, hi, lo)]
			if !a.AddWithinUnindexed(k, "", data, DefaultAggregationMaxSize) {
				blob = a.AppendBlob(blob[:0])
				sink += len(blob)
				a.Reset()
				a.AddWithinUnindexed(k, "", data, DefaultAggregationMaxSize)
			}
		}
		for i := range aggs {
			if aggs[i].Len() > 0 {
				blob = aggs[i].AppendBlob(blob[:0])
				sink += len(blob)
			}
		}
		b.StopTimer()
		cpu.report(b, b.N)
		if sink == 0 {
			b.Fatal("nothing aggregated")
		}
	})
}
