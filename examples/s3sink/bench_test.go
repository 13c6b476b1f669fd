package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/shardflow/shardflow/consumer"
)

// benchRecords are 200-byte JSON records of a typical event table.
func benchRecords(n int) []consumer.Record {
	words := strings.Fields("order shipped delayed customer refund paid card express standard warehouse berlin paris lisbon tokyo gift wrap returned priority")
	rng := rand.New(rand.NewPCG(1, 2))
	recs := make([]consumer.Record, n)
	for i := range recs {
		data := fmt.Sprintf(`{"id":%d,"customer":"customer-%06d","total":%d.25,"paid":true,"ts":"2026-12-01T07:%02d:%02d.123Z","note":"`,
			1_000_000+i, i%100_000, i%1000, i/60%60, i%60)
		// A note that compresses like text, not like a run of one byte.
		for len(data) < 198 {
			data += words[rng.IntN(len(words))] + " "
		}
		data = data[:198] + `"}`
		recs[i] = rec(i+1, t0, data)
	}
	return recs
}

const benchSchema = "id:bigint,customer:string,total:double,paid:boolean,ts:timestamp,note:string"

// BenchmarkParquet measures JSON-to-Parquet conversion and Snappy
// compression of 200-byte records on one core, cutting a file every 100,000
// records (the upload is not included). The floor is encoding/json alone
// decoding the same records into a map, the least any JSON sink does.
// Reported: records/s and MB/s of input per core, bytes out per record.
func BenchmarkParquet(b *testing.B) {
	recs := benchRecords(100_000)
	b.Run("floor=json.Unmarshal", func(b *testing.B) {
		b.SetBytes(int64(len(recs[0].Data)))
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			var m map[string]any
			if err := json.Unmarshal(recs[i%len(recs)].Data, &m); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	})
	b.Run("sink", func(b *testing.B) {
		schema, err := ParseSchema(benchSchema)
		if err != nil {
			b.Fatal(err)
		}
		s, err := NewSink(&countingS3{}, Config{Bucket: bucket, Schema: schema, Logger: quietLogger()})
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(recs[0].Data)))
		b.ReportAllocs()
		var out, files int64
		seg := &segment{opened: time.Now()}
		for i := 0; b.Loop(); i++ {
			s.add(seg, "shardId-000000000000", &recs[i%len(recs)])
			if seg.good+seg.bad == len(recs) {
				s.finish(seg)
				out += int64(seg.pq.Len())
				files++
				seg = &segment{opened: time.Now()}
			}
		}
		if seg.bad > 0 {
			b.Fatalf("%d records failed conversion", seg.bad)
		}
		s.finish(seg)
		out += int64(seg.pq.Len())
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		b.ReportMetric(float64(out)/float64(b.N), "parquet-B/record")
	})
}
