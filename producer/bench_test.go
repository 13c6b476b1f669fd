package producer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/shardflow/shardflow/aggregation"
)

// The benchmarks below put 100-byte records with 16-character keys into 4
// shards with aggregation on, against a client that only counts. Run them
// together so the ratios come from one machine in one run:
//
//	go test -run '^$' -bench 'Floor|Producer' -cpu 1,2 -benchmem ./producer/
//
// BenchmarkFloor is what any producer that predicts shards and aggregates
// per shard must do for the same records: the MD5 of the key to predict the
// shard, and the KPL aggregate (AddWithin, AppendBlob, whose MD5 of the
// body is most of its cost; for distinct keys also without the key index,
// as the producer builds it then). BenchmarkProducer divided by BenchmarkFloor,
// for the same key pattern and GOMAXPROCS, is the producer's overhead.
// Both report cpu-ns/record: the process's CPU time (all goroutines, GC
// included) per record, which is what a user pays at any GOMAXPROCS.

const (
	benchDataSize = 100
	benchKeyLen   = 16
	benchShards   = 4
	// benchRepeated is the number of distinct keys in the repeated pattern
	// (customer ids, device ids); the distinct pattern cycles through
	// benchDistinct keys, more than any key cache holds.
	benchRepeated = 4096
	benchDistinct = 1 << 20
)

var (
	distinctOnce sync.Once
	distinctKeys []string
)

// benchKeySet returns the keys of a pattern: "repeated" or "distinct".
func benchKeySet(pattern string) []string {
	if pattern == "repeated" {
		return benchKeys(benchRepeated)
	}
	distinctOnce.Do(func() { distinctKeys = benchKeys(benchDistinct) })
	return distinctKeys
}

// benchKeys returns n random keys of benchKeyLen characters.
func benchKeys(n int) []string {
	r := rand.New(rand.NewPCG(1, 2))
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	keys := make([]string, n)
	buf := make([]byte, n*benchKeyLen)
	for i := range keys {
		b := buf[i*benchKeyLen : (i+1)*benchKeyLen]
		for j := range b {
			b[j] = alphabet[r.IntN(len(alphabet))]
		}
		keys[i] = string(b)
	}
	return keys
}

var benchPatterns = []string{"repeated", "distinct"}

// cpuMeter reports the process's CPU time per record over a benchmark.
type cpuMeter struct{ start time.Duration }

func startCPU() cpuMeter { return cpuMeter{processCPU()} }

func (m cpuMeter) report(b *testing.B, records int) {
	if d := processCPU() - m.start; d > 0 && records > 0 {
		b.ReportMetric(float64(d.Nanoseconds())/float64(records), "cpu-ns/record")
	}
}

// BenchmarkFloor: MD5 of the key, the shard it predicts, and that shard's
// aggregate (AddWithin, one key look-up; AppendBlob and Reset when full),
// one goroutine. keys=distinct-unindexed is the distinct keys with
// AddWithinUnindexed (no key look-up), the shortcut the producer takes
// while keys rarely repeat: producer keys=distinct over it is the
// overhead against the same aggregation work, over keys=distinct the
// overhead against the minimal indexed aggregate.
func BenchmarkFloor(b *testing.B) {
	c := newCountingClient(benchShards)
	for _, pattern := range []string{"repeated", "distinct", "distinct-unindexed"} {
		unindexed := pattern == "distinct-unindexed"
		keys := benchKeySet(strings.TrimSuffix(pattern, "-unindexed"))
		b.Run("keys="+pattern, func(b *testing.B) {
			data := make([]byte, benchDataSize)
			aggs := make([]aggregation.Aggregator, benchShards)
			blob := make([]byte, 0, DefaultAggregationMaxSize+1024)
			// Direct calls, not a func value: the floor pays no indirection.
			add := func(a *aggregation.Aggregator, k string) bool {
				if unindexed {
					return a.AddWithinUnindexed(k, "", data, DefaultAggregationMaxSize)
				}
				return a.AddWithin(k, "", data, DefaultAggregationMaxSize)
			}
			var sink int
			b.ReportAllocs()
			cpu := startCPU()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				k := keys[i%len(keys)]
				hi, lo, _ := hashKey(k, "")
				a := &aggs[lookup(c.ranges, hi, lo)]
				if !add(a, k) {
					blob = a.AppendBlob(blob[:0])
					sink += len(blob)
					a.Reset()
					add(a, k)
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
}

func benchProducer(b *testing.B, cfg Config) (*Producer, *countingClient) {
	c := newCountingClient(benchShards)
	cfg.RateLimit = 1_000_000 // the counting client has no shard limits
	cfg.Logger = discardLogger()
	p, err := New(c, "s", cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = p.Close(context.Background()) })
	// Load the shard map and warm the pools.
	ctx := context.Background()
	if _, err := p.Put(ctx, "warm", make([]byte, benchDataSize)); err != nil {
		b.Fatal(err)
	}
	if err := p.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	return p, c
}

// BenchmarkProducer measures one Put end to end, the same records as
// BenchmarkFloor, from one goroutine; the clock stops after Flush has every
// outcome.
func BenchmarkProducer(b *testing.B) {
	for _, pattern := range benchPatterns {
		keys := benchKeySet(pattern)
		b.Run("keys="+pattern, func(b *testing.B) {
			p, c := benchProducer(b, Config{})
			data := make([]byte, benchDataSize)
			ctx := context.Background()
			e0, w0 := c.entries.Load(), c.wireBytes.Load()
			b.ReportAllocs()
			cpu := startCPU()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := p.Put(ctx, keys[i%len(keys)], data); err != nil {
					b.Fatal(err)
				}
			}
			if err := p.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			cpu.report(b, b.N)
			if n := c.entries.Load() - e0; n > 0 {
				b.ReportMetric(float64(b.N)/float64(n), "records/kinesis-record")
			}
			b.ReportMetric(float64(c.wireBytes.Load()-w0)/float64(b.N)-float64(benchDataSize+benchKeyLen), "overhead-bytes/record")
		})
	}
}

// BenchmarkProducerParallel is BenchmarkProducer with GOMAXPROCS goroutines
// calling Put at once: records/s should grow with -cpu. cores-used (the
// process's CPU time over the wall time) says how much of the machine the
// run got: on a loaded machine records/s can only grow as far as it does.
func BenchmarkProducerParallel(b *testing.B) {
	for _, pattern := range benchPatterns {
		keys := benchKeySet(pattern)
		b.Run("keys="+pattern, func(b *testing.B) {
			p, _ := benchProducer(b, Config{})
			data := make([]byte, benchDataSize)
			ctx := context.Background()
			var seed atomic.Uint64
			b.ReportAllocs()
			cpu := startCPU()
			start := time.Now()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := int(seed.Add(1) * 7919)
				for pb.Next() {
					if _, err := p.Put(ctx, keys[i%len(keys)], data); err != nil {
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
			cpu.report(b, b.N)
			b.ReportMetric(float64(b.N)/el.Seconds(), "records/s")
			b.ReportMetric(float64(processCPU()-cpu.start)/float64(el), "cores-used")
		})
	}
}

// BenchmarkProducerNoAggregation is BenchmarkProducer with aggregation off
// (one Kinesis record per user record).
func BenchmarkProducerNoAggregation(b *testing.B) {
	p, _ := benchProducer(b, Config{DisableAggregation: true})
	keys := benchKeySet("distinct")
	data := make([]byte, benchDataSize)
	ctx := context.Background()
	b.ReportAllocs()
	cpu := startCPU()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := p.Put(ctx, keys[i%len(keys)], data); err != nil {
			b.Fatal(err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	cpu.report(b, b.N)
}

// stalledClient is a Kinesis whose PutRecords blocks until its context ends.
type stalledClient struct{ *countingClient }

func (c stalledClient) PutRecords(ctx context.Context, _ *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// BenchmarkStalledEndpoint puts stalledRecords 100-byte records into a
// producer with MaxBufferedBytes 64 MiB whose endpoint never answers, so
// every record waits for room, then expires. It reports the live heap
// after GC while the buffer is full (the most the producer holds, which
// MaxBufferedBytes bounds), the process's peak RSS, and the latest
// outcome relative to its record's TTL; it fails if the live heap exceeds
// MaxBufferedBytes + 16 MiB or a record has no ErrRecordExpired outcome.
// Run it once: -bench StalledEndpoint -benchtime 1x.
func BenchmarkStalledEndpoint(b *testing.B) {
	const (
		maxBytes       = 64 << 20
		stalledRecords = 2_000_000
		ttl            = 500 * time.Millisecond
	)
	for n := 0; n < b.N; n++ {
		c := stalledClient{newCountingClient(benchShards)}
		p, err := New(c, "s", Config{
			RateLimit:        1_000_000,
			Logger:           discardLogger(),
			MaxBufferedBytes: maxBytes,
			RecordTTL:        ttl,
			RequestTimeout:   ttl / 4,
		})
		if err != nil {
			b.Fatal(err)
		}
		keys := benchKeySet("distinct")
		data := make([]byte, benchDataSize)
		ctx := context.Background()
		var (
			mu       sync.Mutex
			latest   time.Duration // latest outcome past its TTL (after Put returned)
			bad      int
			outcomes atomic.Int64
		)
		liveSince := liveHeap()
		var peakLive int64
		for i := 0; i < stalledRecords; i++ {
			// Each record has data of its own, as real records do: the
			// producer holds it until the outcome.
			d := append([]byte(nil), data...)
			var put atomic.Int64
			_, err := p.PutRecord(ctx, Record{PartitionKey: keys[i%len(keys)], Data: d}, func(r *Result) {
				late := time.Duration(time.Now().UnixNano()-put.Load()) - ttl
				mu.Lock()
				latest = max(latest, late)
				if !errors.Is(r.Err, ErrRecordExpired) {
					bad++
				}
				mu.Unlock()
				outcomes.Add(1)
			})
			put.Store(time.Now().UnixNano())
			if err != nil {
				b.Fatal(err)
			}
			if i%250_000 == 249_999 {
				peakLive = max(peakLive, liveSince())
			}
		}
		if err := p.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		_ = p.Close(ctx)
		if outcomes.Load() != stalledRecords || bad > 0 {
			b.Fatalf("%d outcomes for %d records, %d not expired", outcomes.Load(), stalledRecords, bad)
		}
		b.Logf("%d records: live heap after GC %.1f MiB, peak RSS %.1f MiB, latest outcome %v past its TTL",
			stalledRecords, float64(peakLive)/(1<<20), float64(peakRSS())/(1<<20), latest)
		b.ReportMetric(float64(peakLive)/(1<<20), "live-heap-MiB")
		b.ReportMetric(float64(peakRSS())/(1<<20), "peak-rss-MiB")
		b.ReportMetric(latest.Seconds(), "latest-past-ttl-s")
		if peakLive > maxBytes+16<<20 {
			b.Errorf("live heap %.1f MiB exceeds MaxBufferedBytes + 16 MiB", float64(peakLive)/(1<<20))
		}
	}
}

// countingStalledClient is a stalledClient that counts the calls it holds.
type countingStalledClient struct {
	*countingClient
	held atomic.Int64
}

func (c *countingStalledClient) PutRecords(ctx context.Context, _ *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	c.held.Add(1)
	<-ctx.Done()
	return nil, ctx.Err()
}

// BenchmarkBookkeeping measures what recordOverhead stands for: the live
// heap per buffered record beyond its data (the keys are the benchmark's),
// with 200,000 100-byte records buffered against a stalled endpoint,
// every connection holding a call. With aggregation it includes the
// record's copy in the blobs of the calls in flight (about 125 bytes).
// Run it once: -bench Bookkeeping -benchtime 1x.
func BenchmarkBookkeeping(b *testing.B) {
	const n = 200_000
	for _, agg := range []bool{true, false} {
		b.Run(fmt.Sprintf("aggregation=%v", agg), func(b *testing.B) {
			keys := benchKeySet("distinct")
			for range b.N {
				datas := make([][]byte, n)
				for i := range datas {
					datas[i] = make([]byte, benchDataSize)
				}
				c := &countingStalledClient{countingClient: newCountingClient(benchShards)}
				liveSince := liveHeap()
				p, err := New(c, "s", Config{RateLimit: 1_000_000, Logger: discardLogger(), DisableAggregation: !agg,
					MaxBufferedBytes: 1 << 30, MaxBufferedRecords: n + 1, RecordTTL: time.Hour, RequestTimeout: time.Hour})
				if err != nil {
					b.Fatal(err)
				}
				ctx := context.Background()
				for i := range n {
					if _, err := p.Put(ctx, keys[i], datas[i]); err != nil {
						b.Fatal(err)
					}
				}
				// Flush makes the dispatcher send all it can; wait until
				// every record is in a call the endpoint holds, or queued
				// behind busy connections.
				go func() { _ = p.Flush(ctx) }()
				for !settledInCalls(p, c) {
					runtime.Gosched()
				}
				b.ReportMetric(float64(liveSince())/n, "live-B/record")
				canceled, cancel := context.WithCancel(ctx)
				cancel()
				_ = p.Close(canceled)
				runtime.KeepAlive(datas)
			}
		})
	}
}

// settledInCalls reports whether every record p buffered is in a call c
// holds, or queued while every connection is busy.
func settledInCalls(p *Producer, c *countingStalledClient) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.inflight) == 0 || int(c.held.Load()) != len(p.inflight) {
		return false
	}
	for _, l := range p.lanes {
		l.mu.Lock()
		unsent := l.open != nil || len(l.sealed) > 0
		l.mu.Unlock()
		if unsent || (l.ready.len() > 0 && len(p.inflight) < p.cfg.MaxConnections) {
			return false
		}
	}
	return true
}
