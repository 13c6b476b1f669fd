package consumer_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/shardflow/shardflow/checkpoint"
	"github.com/shardflow/shardflow/consumer"
	"github.com/shardflow/shardflow/kinesistest"
	"github.com/shardflow/shardflow/lease"
	"github.com/shardflow/shardflow/producer"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkDelivery measures records delivered per CPU-second (the whole
// process: consumer plus the in-memory Kinesis it reads) and allocations per
// record, from a pre-filled 16-shard stream, aggregated (KPL format, ~100 B
// records) and plain.
func BenchmarkDelivery(b *testing.B) {
	const records = 200_000
	for _, agg := range []bool{true, false} {
		name := "aggregated"
		if !agg {
			name = "plain"
		}
		b.Run(name, func(b *testing.B) {
			var perCPU, allocs, wall float64
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				ctx := context.Background()
				srv := kinesistest.New(kinesistest.Options{})
				srv.MustCreateStream("bench", 16)
				p, err := producer.New(srv, "bench", producer.Config{DisableAggregation: !agg, Logger: testLogger(b)})
				if err != nil {
					b.Fatal(err)
				}
				data := make([]byte, 100)
				for j := 0; j < records; j++ {
					if _, err := p.Put(ctx, fmt.Sprintf("key-%d", j), data); err != nil {
						b.Fatal(err)
					}
				}
				if err := p.Close(ctx); err != nil {
					b.Fatal(err)
				}
				var got atomic.Int64
				done := make(chan struct{})
				c, err := consumer.New(srv, lease.NewMemoryStore(), consumer.ProcessRecord(func(ctx context.Context, _ string, r consumer.Record) error {
					if got.Add(1) == records {
						close(done)
					}
					return nil
				}), consumer.Config{
					ApplicationName: "bench", StreamName: "bench", WorkerID: "w",
					InitialPosition:      consumer.InitialPosition{Type: consumer.TrimHorizon},
					IdleTimeBetweenReads: consumer.MinIdleTimeBetweenReads,
					Logger:               testLogger(b),
				})
				if err != nil {
					b.Fatal(err)
				}
				runtime.GC()
				var ms0, ms1 runtime.MemStats
				runtime.ReadMemStats(&ms0)
				cpu0, t0 := cpuTime(), time.Now()
				b.StartTimer()
				rctx, cancel := context.WithCancel(ctx)
				ran := make(chan error, 1)
				go func() { ran <- c.Run(rctx) }()
				<-done
				b.StopTimer()
				cpu, el := cpuTime()-cpu0, time.Since(t0)
				runtime.ReadMemStats(&ms1)
				cancel()
				<-ran
				perCPU += records / cpu.Seconds()
				wall += records / el.Seconds()
				allocs += float64(ms1.Mallocs-ms0.Mallocs) / records
			}
			b.ReportMetric(perCPU/float64(b.N), "records/cpu-s")
			b.ReportMetric(wall/float64(b.N), "records/s")
			b.ReportMetric(allocs/float64(b.N), "allocs/record")
		})
	}
}

// countingStore counts lease-table calls.
type countingStore struct {
	lease.Store
	calls atomic.Int64
}

func (s *countingStore) List(ctx context.Context) ([]lease.Lease, error) {
	s.calls.Add(1)
	return s.Store.List(ctx)
}
func (s *countingStore) Get(ctx context.Context, key string) (lease.Lease, error) {
	s.calls.Add(1)
	return s.Store.Get(ctx, key)
}
func (s *countingStore) Create(ctx context.Context, l lease.Lease) (bool, error) {
	s.calls.Add(1)
	return s.Store.Create(ctx, l)
}
func (s *countingStore) Renew(ctx context.Context, l lease.Lease) (lease.Lease, error) {
	s.calls.Add(1)
	return s.Store.Renew(ctx, l)
}
func (s *countingStore) Take(ctx context.Context, l lease.Lease, owner string) (lease.Lease, error) {
	s.calls.Add(1)
	return s.Store.Take(ctx, l, owner)
}
func (s *countingStore) Release(ctx context.Context, l lease.Lease) (lease.Lease, error) {
	s.calls.Add(1)
	return s.Store.Release(ctx, l)
}
func (s *countingStore) UpdateCheckpoint(ctx context.Context, l lease.Lease, p checkpoint.Position) (lease.Lease, error) {
	s.calls.Add(1)
	return s.Store.UpdateCheckpoint(ctx, l, p)
}

// BenchmarkLeaseTableCalls measures lease-table (DynamoDB) calls per shard
// per minute for one worker holding 8 idle shards, at KCL's default timings
// scaled down 20x (FailoverTime 500 ms, shard sync 3 s, idle 200ms) and
// run for 3 s, i.e. one scaled minute; checkpoints of a busy shard come on
// top (at most one per GetRecords batch with the per-batch adapter).
func BenchmarkLeaseTableCalls(b *testing.B) {
	const shards, scale = 8, 20
	for i := 0; i < b.N; i++ {
		srv := kinesistest.New(kinesistest.Options{})
		srv.MustCreateStream("bench", shards)
		st := &countingStore{Store: lease.NewMemoryStore()}
		c, err := consumer.New(srv, st, consumer.ProcessRecord(func(context.Context, string, consumer.Record) error { return nil }), consumer.Config{
			ApplicationName: "bench", StreamName: "bench", WorkerID: "w",
			FailoverTime:         consumer.DefaultFailoverTime / scale,
			ShardSyncInterval:    consumer.DefaultShardSyncInterval / scale,
			IdleTimeBetweenReads: consumer.MinIdleTimeBetweenReads,
			Logger:               testLogger(b),
		})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute/scale)
		_ = c.Run(ctx)
		cancel()
		b.ReportMetric(float64(st.calls.Load())/shards, "calls/shard/min")
	}
}

// heldBy returns how many shards each worker processes.
func heldBy(ws ...*consumer.Consumer) []int {
	out := make([]int, len(ws))
	for i, w := range ws {
		out[i] = len(w.Shards())
	}
	return out
}

// BenchmarkFailover measures the time from a worker's death (no shutdown)
// to all its shards being processed again by the survivor, with
// FailoverTime 1 s; reported in ms and in multiples of FailoverTime.
func BenchmarkFailover(b *testing.B) {
	const failover = time.Second
	for i := 0; i < b.N; i++ {
		srv := kinesistest.New(kinesistest.Options{})
		srv.MustCreateStream("bench", 4)
		store := lease.NewMemoryStore()
		var mu sync.Mutex
		inits := map[string]time.Time{}
		factory := consumer.ProcessorFactoryFunc(func(shard string) consumer.RecordProcessor {
			return &initProc{onInit: func() {
				mu.Lock()
				inits[shard] = time.Now()
				mu.Unlock()
			}}
		})
		cfg := consumer.Config{ApplicationName: "bench", StreamName: "bench", FailoverTime: failover, Logger: testLogger(b)}
		start := func(id string) (*consumer.Consumer, context.CancelFunc, chan error) {
			cfg.WorkerID = id
			c, err := consumer.New(srv, store, factory, cfg)
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- c.Run(ctx) }()
			return c, cancel, done
		}
		w0, c0, d0 := start("w0")
		w1, c1, d1 := start("w1")
		waitFor(b, func() bool { h := heldBy(w0, w1); return h[0] == 2 && h[1] == 2 })
		victims := w1.Shards()
		killed := time.Now()
		c1()
		<-d1
		waitFor(b, func() bool {
			mu.Lock()
			defer mu.Unlock()
			for _, s := range victims {
				if !inits[s].After(killed) {
					return false
				}
			}
			return true
		})
		took := time.Since(killed)
		b.ReportMetric(float64(took.Milliseconds()), "ms-to-reprocess")
		b.ReportMetric(took.Seconds()/failover.Seconds(), "failover-times")
		c0()
		<-d0
	}
}

// BenchmarkRebalance measures the time from a new worker's start until 8
// shards are split 4/4 with the worker that held them all (FailoverTime 1 s,
// lease defaults otherwise).
func BenchmarkRebalance(b *testing.B) {
	for i := 0; i < b.N; i++ {
		srv := kinesistest.New(kinesistest.Options{})
		srv.MustCreateStream("bench", 8)
		store := lease.NewMemoryStore()
		factory := consumer.ProcessRecord(func(context.Context, string, consumer.Record) error { return nil })
		cfg := consumer.Config{ApplicationName: "bench", StreamName: "bench", FailoverTime: time.Second, Logger: testLogger(b)}
		run := func(id string) (*consumer.Consumer, func()) {
			cfg.WorkerID = id
			c, err := consumer.New(srv, store, factory, cfg)
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- c.Run(ctx) }()
			return c, func() { cancel(); <-done }
		}
		w0, stop0 := run("w0")
		waitFor(b, func() bool { return len(w0.Shards()) == 8 })
		started := time.Now()
		w1, stop1 := run("w1")
		waitFor(b, func() bool { h := heldBy(w0, w1); return h[0] == 4 && h[1] == 4 })
		b.ReportMetric(float64(time.Since(started).Milliseconds()), "ms-to-balance")
		stop1()
		stop0()
	}
}

type initProc struct {
	consumer.RecordProcessor
	onInit func()
}

func (p *initProc) Initialize(context.Context, consumer.InitializeInput) error {
	p.onInit()
	return nil
}
func (p *initProc) ProcessRecords(context.Context, consumer.ProcessRecordsInput) error { return nil }
func (p *initProc) LeaseLost(context.Context, consumer.LeaseLostInput)                 {}
func (p *initProc) ShutdownRequested(context.Context, consumer.ShutdownRequestedInput) error {
	return nil
}
