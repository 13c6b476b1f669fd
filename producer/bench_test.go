package producer

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"
)

// benchKeys returns n random 16-byte keys.
func benchKeys(n int) []string {
	r := rand.New(rand.NewPCG(1, 2))
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	keys := make([]string, n)
	for i := range keys {
		b := make([]byte, 16)
		for j := range b {
			b[j] = alphabet[r.IntN(len(alphabet))]
		}
		keys[i] = string(b)
	}
	return keys
}

func benchProducer(b *testing.B) (*Producer, *countingClient) {
	c := newCountingClient(4)
	p, err := New(c, "s", Config{
		RateLimit: 1_000_000, // the counting client has no shard limits
		Logger:    discardLogger(),
	})
	if err != nil {
		b.Fatal(err)
	}
	return p, c
}

// BenchmarkPut measures one Put end to end: 100-byte records, 16-byte
// random keys, 4 shards, aggregation on, against a client that only
// counts; the clock stops after Flush has every outcome.
func BenchmarkPut(b *testing.B) {
	p, c := benchProducer(b)
	defer p.Close(context.Background())
	keys := benchKeys(1 << 16)
	data := make([]byte, 100)
	ctx := context.Background()
	// Warm the shard map and pools.
	if _, err := p.Put(ctx, keys[0], data); err != nil {
		b.Fatal(err)
	}
	if err := p.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	e0, w0 := c.entries.Load(), c.wireBytes.Load()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if _, err := p.Put(ctx, keys[i&(1<<16-1)], data); err != nil {
			b.Fatal(err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "records/s")
	if n := c.entries.Load() - e0; n > 0 {
		b.ReportMetric(float64(b.N)/float64(n), "records/kinesis-record")
	}
	b.ReportMetric(float64(c.wireBytes.Load()-w0)/float64(b.N)-float64(len(data)+16), "overhead-bytes/record")
}

// BenchmarkPutParallel is BenchmarkPut with GOMAXPROCS goroutines calling
// Put at once (lock contention).
func BenchmarkPutParallel(b *testing.B) {
	p, c := benchProducer(b)
	defer p.Close(context.Background())
	keys := benchKeys(1 << 16)
	data := make([]byte, 100)
	ctx := context.Background()
	e0 := c.entries.Load()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		i := rand.IntN(1 << 16)
		for pb.Next() {
			if _, err := p.Put(ctx, keys[i&(1<<16-1)], data); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
	if err := p.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "records/s")
	if n := c.entries.Load() - e0; n > 0 {
		b.ReportMetric(float64(b.N)/float64(n), "records/kinesis-record")
	}
}

// BenchmarkPutNoAggregation is BenchmarkPut with aggregation off (one
// Kinesis record per user record).
func BenchmarkPutNoAggregation(b *testing.B) {
	c := newCountingClient(4)
	p, err := New(c, "s", Config{RateLimit: 1_000_000, DisableAggregation: true, Logger: discardLogger()})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close(context.Background())
	keys := benchKeys(1 << 16)
	data := make([]byte, 100)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if _, err := p.Put(ctx, keys[i&(1<<16-1)], data); err != nil {
			b.Fatal(err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
}
