package prommetrics

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shardflow/shardflow/kinesistest"
	"github.com/shardflow/shardflow/producer"
)

// BenchmarkProducerPut measures Put on kinesistest with no metrics (the
// floor) and with this adapter: the ratio of the two ns/op is the
// adapter's cost on the put path.
func BenchmarkProducerPut(b *testing.B) {
	pm, err := NewProducer(prometheus.NewRegistry(), "bench")
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		m    producer.Metrics
	}{{"nop", producer.NopMetrics{}}, {"prommetrics", pm}} {
		b.Run(bc.name, func(b *testing.B) { benchPut(b, bc.m) })
	}
}

func benchPut(b *testing.B, m producer.Metrics) {
	ctx := context.Background()
	srv := kinesistest.New(kinesistest.Options{})
	defer srv.Close()
	srv.MustCreateStream("bench", 8)
	p, err := producer.New(srv, "bench", producer.Config{Metrics: m, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close(ctx)
	keys := make([]string, 1<<12)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%d", i)
	}
	data := make([]byte, 100)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := p.Put(ctx, keys[i&(len(keys)-1)], data); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
	if err := p.Flush(ctx); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkPerRecordCalls measures the metrics calls the producer makes
// for each user record (received, buffering time, retries at the outcome)
// plus one Kinesis record put per 10 user records, from parallel
// goroutines, against the no-op floor.
func BenchmarkPerRecordCalls(b *testing.B) {
	pm, err := NewProducer(prometheus.NewRegistry(), "bench")
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		m    perRecordHooks
	}{{"nop", nopPerRecord{}}, {"prommetrics", pm}} {
		b.Run(bc.name, func(b *testing.B) {
			shards := []string{"shardId-000000000000", "shardId-000000000001", "shardId-000000000002", "shardId-000000000003"}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					s := shards[i&3]
					bc.m.UserRecordReceived(100)
					bc.m.BufferingTime(s, 3*time.Millisecond)
					bc.m.RetriesPerRecord(s, 0)
					if i%10 == 0 {
						bc.m.KinesisRecordPut(s, 10, 1000, 1100)
					}
					i++
				}
			})
		})
	}
}

// perRecordHooks are the hooks the producer calls for each user record.
type perRecordHooks interface {
	producer.HookUserRecordReceived
	producer.HookBufferingTime
	producer.HookRetriesPerRecord
	producer.HookKinesisRecordPut
}

// nopPerRecord is the floor: the same calls doing nothing.
type nopPerRecord struct{}

func (nopPerRecord) UserRecordReceived(int)                 {}
func (nopPerRecord) BufferingTime(string, time.Duration)    {}
func (nopPerRecord) RetriesPerRecord(string, int)           {}
func (nopPerRecord) KinesisRecordPut(string, int, int, int) {}
