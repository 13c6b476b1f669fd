package consumer

import (
	"runtime"
	"strconv"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardflow/shardflow/aggregation"
	"github.com/shardflow/shardflow/checkpoint"
)

// BenchmarkConvert measures the per-record cost of turning fetched Kinesis
// records into delivered Records (deaggregation, resume skipping, hash-range
// check). Reported: ns/record and allocs/record.
func BenchmarkConvert(b *testing.B) {
	const perBatch = 1000
	for _, agg := range []bool{false, true} {
		name := "plain"
		var raw []types.Record
		if agg {
			name = "aggregated"
			for i := 0; i < perBatch/100; i++ {
				subs := make([]aggregation.Record, 100)
				for j := range subs {
					subs[j] = aggregation.Record{PartitionKey: "key-" + strconv.Itoa(j), Data: make([]byte, 100)}
				}
				blob, err := aggregation.Marshal(subs)
				if err != nil {
					b.Fatal(err)
				}
				raw = append(raw, types.Record{SequenceNumber: aws.String(strconv.Itoa(1000 + i)), PartitionKey: aws.String("key-0"), Data: blob})
			}
		} else {
			for i := 0; i < perBatch; i++ {
				raw = append(raw, types.Record{SequenceNumber: aws.String(strconv.Itoa(1000 + i)), PartitionKey: aws.String("key-" + strconv.Itoa(i)), Data: make([]byte, 100)})
			}
		}
		b.Run(name, func(b *testing.B) {
			c := newConverter("s", "0", "340282366920938463463374607431768211455", checkpoint.TrimHorizon)
			var ms0, ms1 runtime.MemStats
			runtime.ReadMemStats(&ms0)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				out, _, _ := c.convert(make([]Record, 0, perBatch), raw)
				if len(out) != perBatch {
					b.Fatalf("got %d records", len(out))
				}
			}
			b.StopTimer()
			runtime.ReadMemStats(&ms1)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*perBatch), "ns/record")
			b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(b.N*perBatch), "allocs/record")
		})
	}
}
