package main

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/metrics"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shardflow/shardflow/consumer"
	"github.com/shardflow/shardflow/examples/internal/health"
	"github.com/shardflow/shardflow/examples/internal/promexport"
	"github.com/shardflow/shardflow/examples/internal/target"
	"github.com/shardflow/shardflow/lease"
	"github.com/shardflow/shardflow/producer"
)

// magic starts every record the tool writes.
var magic = [4]byte{'S', 'F', 'L', 'D'}

const throttleCode = "ProvisionedThroughputExceededException"

// quantiles summarises a latency histogram.
type quantiles struct {
	N             uint64
	P50, P99, Max time.Duration
}

// summary is the outcome of a run; it is also printed.
type summary struct {
	Interrupted bool

	Produced, ProducedBytes, Failed, PutErrors int64
	ProduceElapsed                             time.Duration
	KinesisRecords, PutRecordsCalls            int64
	PutThrottled                               int64 // Kinesis records throttled, per attempt

	Consumed, Unique, Duplicates, Foreign int64
	ConsumeElapsed                        time.Duration
	GetThrottled                          int64

	Reconciled bool // lost and duplicates are meaningful
	Lost       int64

	PutLatency, E2ELatency quantiles

	Records         int64         // denominator of the per-record costs
	CPUPerRecord    time.Duration // 0 when unavailable
	AllocsPerRecord float64
	PeakHeap        uint64 // heap in use, garbage included
	PeakLive        uint64 // live heap after a GC
	GCs             uint32

	Failures map[string]int64
}

// stats are the counters shared by producers, consumers and the reporter.
type stats struct {
	putStarted    atomic.Int64
	produced      atomic.Int64
	producedBytes atomic.Int64
	failed        atomic.Int64
	putErrors     atomic.Int64

	kinesisRecords  atomic.Int64
	putRecordsCalls atomic.Int64
	putThrottled    atomic.Int64

	consumed     atomic.Int64
	unique       atomic.Int64
	foreign      atomic.Int64
	getThrottled atomic.Int64
	lastConsumed atomic.Int64 // Unix nanoseconds

	putLat, e2eLat histogram
	peakHeap       atomic.Uint64
	peakLive       atomic.Uint64

	ok, seen idBitmap

	mu       sync.Mutex
	failures map[string]int64
}

func (s *stats) fail(key string) {
	s.mu.Lock()
	s.failures[key]++
	s.mu.Unlock()
}

// snapshot is the state of the counters and the process at one time.
type snapshot struct {
	at                      time.Time
	cpu                     time.Duration
	cpuOK                   bool
	mallocs                 uint64
	gcs                     uint32
	produced, bytes, failed int64
	consumed                int64
	putLat, e2eLat          histCounts
}

func (s *stats) snapshot() snapshot {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	cpu, ok := processCPU()
	return snapshot{
		at: time.Now(), cpu: cpu, cpuOK: ok, mallocs: ms.Mallocs, gcs: ms.NumGC,
		produced: s.produced.Load(), bytes: s.producedBytes.Load(), failed: s.failed.Load(),
		consumed: s.consumed.Load(),
		putLat:   s.putLat.snapshot(), e2eLat: s.e2eLat.snapshot(),
	}
}

// producerMetrics counts what the report needs: it implements only those
// three hooks.
type producerMetrics struct {
	s *stats
}

func (m producerMetrics) KinesisRecordPut(string, int, int, int) { m.s.kinesisRecords.Add(1) }
func (m producerMetrics) RequestTime(time.Duration, int, error)  { m.s.putRecordsCalls.Add(1) }
func (m producerMetrics) ErrorsByCode(_, code string, n int) {
	if code == throttleCode {
		m.s.putThrottled.Add(int64(n))
	}
}

type consumerMetrics struct {
	s *stats
}

func (m consumerMetrics) Throttled(string) { m.s.getThrottled.Add(1) }

// promProducerMetrics is every hook of the -metrics-addr exporter, and the
// report's counting on the three hooks both take.
type promProducerMetrics struct {
	*promexport.Producer
	own producerMetrics
}

func (m promProducerMetrics) KinesisRecordPut(shardID string, userRecords, userDataSize, kinesisSize int) {
	m.Producer.KinesisRecordPut(shardID, userRecords, userDataSize, kinesisSize)
	m.own.KinesisRecordPut(shardID, userRecords, userDataSize, kinesisSize)
}

func (m promProducerMetrics) RequestTime(d time.Duration, kinesisRecords int, err error) {
	m.Producer.RequestTime(d, kinesisRecords, err)
	m.own.RequestTime(d, kinesisRecords, err)
}

func (m promProducerMetrics) ErrorsByCode(shardID, code string, n int) {
	m.Producer.ErrorsByCode(shardID, code, n)
	m.own.ErrorsByCode(shardID, code, n)
}

// promConsumerMetrics is the same for the consumer.
type promConsumerMetrics struct {
	*promexport.Consumer
	own consumerMetrics
}

func (m promConsumerMetrics) Throttled(shardID string) {
	m.Consumer.Throttled(shardID)
	m.own.Throttled(shardID)
}

func (l *loadRun) producerMetrics() producer.Metrics {
	own := producerMetrics{s: l.st}
	if l.reg == nil {
		return own
	}
	return promProducerMetrics{Producer: l.reg.Producer(l.o.stream), own: own}
}

func (l *loadRun) consumerMetrics() consumer.Metrics {
	own := consumerMetrics{s: l.st}
	if l.reg == nil {
		return own
	}
	return promConsumerMetrics{Consumer: l.reg.Consumer(l.o.stream), own: own}
}

// currentProducer is the producer running now (a preload's, then the
// measured run's), for the /status endpoint.
type currentProducer struct {
	p atomic.Pointer[producer.Producer]
}

func (c *currentProducer) Status() producer.Status {
	if p := c.p.Load(); p != nil {
		return p.Status()
	}
	return producer.Status{}
}

// loadRun is one run of the tool.
type loadRun struct {
	o      options
	out    io.Writer
	logger *slog.Logger
	kc     target.Kinesis
	store  lease.Store
	shards int // open shards of the stream
	runID  uint32
	st     *stats
	filler []byte
	keys   []string
	nextID atomic.Uint64
	limit  uint64 // ids available: -records, or maxIDs

	// With -metrics-addr: the exporter, its server and the producer it
	// reports on.
	reg      *promexport.Registry
	srv      *promexport.Server
	producer currentProducer
}

func run(ctx context.Context, o options, out io.Writer) (summary, error) {
	if err := o.validate(); err != nil {
		return summary{}, err
	}
	level := slog.LevelWarn
	if o.verbose {
		level = slog.LevelInfo
	}
	l := &loadRun{
		o: o, out: out,
		logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
		runID:  rand.Uint32(),
		st:     &stats{failures: map[string]int64{}},
		filler: make([]byte, o.size),
		limit:  maxIDs,
	}
	if o.records > 0 {
		l.limit = uint64(o.records)
	}
	for i := range l.filler {
		l.filler[i] = byte(rand.Uint32())
	}
	for range o.keys {
		l.keys = append(l.keys, randomKey())
	}
	// Setting up talks to the service: a signal must be able to stop it.
	if err := l.setup(ctx); err != nil {
		return summary{}, err
	}
	if o.metricsAddr != "" {
		l.reg = promexport.New()
		srv, err := promexport.Start(o.metricsAddr, l.reg)
		if err != nil {
			return summary{}, fmt.Errorf("-metrics-addr: %w", err)
		}
		l.srv = srv
		defer srv.Close(context.Background())
		fmt.Fprintf(out, "metrics on http://%s/metrics, health on /livez /readyz /status\n", srv.Addr())
	}
	return l.run(ctx)
}

func (l *loadRun) setup(ctx context.Context) error {
	o := l.o
	if o.target == "aws" && o.limits {
		fmt.Fprintln(l.out, "note: -limits applies to -target memory only; AWS enforces its own")
	}
	tg, err := target.Open(ctx, target.Options{Target: o.target, App: o.app, Limits: o.limits, NoLeaseTable: !o.consumes()})
	if err != nil {
		return err
	}
	l.kc, l.store = tg.Kinesis, tg.Store
	if l.shards, err = tg.EnsureStream(ctx, o.stream, o.shards); err != nil {
		return err
	}
	if l.shards != o.shards {
		fmt.Fprintf(l.out, "note: stream %s exists with %d open shards (-shards %d ignored)\n", o.stream, l.shards, o.shards)
	}
	return nil
}

func (l *loadRun) run(ctx context.Context) (summary, error) {
	o, st := l.o, l.st
	// Graceful steps after a signal must not see the cancellation.
	bg := context.WithoutCancel(ctx)

	// -mode consume on memory: the stream starts empty, so fill it first
	// (not measured) and measure the consumers alone.
	var produceElapsed time.Duration
	if o.mode == "consume" && o.target == "memory" {
		t0 := time.Now()
		if err := l.produce(ctx, false); err != nil {
			return summary{}, err
		}
		produceElapsed = time.Since(t0)
		fmt.Fprintf(l.out, "preloaded %d records (%d failed)\n", st.produced.Load(), st.failed.Load())
	}

	var consumers []*consumer.Consumer
	var cwg sync.WaitGroup
	// consumersDone is closed when every consumer's Run has returned; it
	// ends the drain early when every worker has failed.
	consumersDone := make(chan struct{})
	consumersStarted := false
	cctx, cancelConsumers := context.WithCancel(bg)
	defer func() {
		// Normally already shut down; this covers early error returns.
		cancelConsumers()
		if consumersStarted {
			<-consumersDone
		}
	}()
	if o.consumes() {
		for i := range o.workers {
			c, err := consumer.New(l.kc, l.store, consumer.ProcessRecord(l.handle), consumer.Config{
				ApplicationName:      o.app,
				StreamName:           o.stream,
				WorkerID:             fmt.Sprintf("%s-%d-%08x", o.app, i, l.runID),
				InitialPosition:      consumer.InitialPosition{Type: consumer.TrimHorizon},
				IdleTimeBetweenReads: o.idle,
				FailoverTime:         o.failover,
				// A single worker on the in-memory table is alone for
				// certain (no other process can share it): no start-up
				// wait. Elsewhere the default, since a worker cannot
				// tell from a lease table that it is alone.
				LeaseInitialTakeDelay: loneWorkerDelay(o.target, o.workers),
				Logger:                l.logger,
				Metrics:               l.consumerMetrics(),
			})
			if err != nil {
				return summary{}, err
			}
			consumers = append(consumers, c)
		}
	}
	if l.srv != nil {
		h := health.Handler{Producers: []health.ProducerStatus{&l.producer}}
		for _, c := range consumers {
			h.Consumers = append(h.Consumers, c)
		}
		h.Register(l.srv.Mux)
	}

	// Measurement starts when producing or consuming starts: the set-up,
	// the preload and the lease balancing are not counted.
	var base snapshot
	stopBackground := func() {}
	defer func() { stopBackground() }()
	startMeasuring := func() {
		base = st.snapshot()
		var bgwg sync.WaitGroup
		stopBG := make(chan struct{})
		bgwg.Add(1)
		go func() { defer bgwg.Done(); l.sampleHeap(stopBG) }()
		if o.report > 0 {
			bgwg.Add(1)
			go func() { defer bgwg.Done(); l.reportLoop(base, stopBG) }()
		}
		stopBackground = sync.OnceFunc(func() { close(stopBG); bgwg.Wait() })
	}
	if o.mode != "both" {
		startMeasuring()
	}

	var cerrMu sync.Mutex
	var cerrs []error
	for _, c := range consumers {
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			if err := c.Run(cctx); err != nil && !errors.Is(err, context.Canceled) {
				cerrMu.Lock()
				cerrs = append(cerrs, fmt.Errorf("consumer %s: %w", c.WorkerID(), err))
				cerrMu.Unlock()
			}
		}()
	}
	consumersStarted = true
	go func() { cwg.Wait(); close(consumersDone) }()
	if o.mode == "both" {
		// Producing before the workers share the shards out would show
		// records re-read by a worker taking over a lease as duplicates.
		held := target.WaitBalanced(ctx, consumers, l.shards, 15*time.Second)
		fmt.Fprintf(l.out, "workers hold shards %v\n", held)
		startMeasuring()
	}

	start := base.at
	if o.produces() {
		if err := l.produce(ctx, true); err != nil {
			return summary{}, err
		}
		produceElapsed = time.Since(start)
	}

	var consumeElapsed time.Duration
	if o.consumes() {
		l.waitConsumed(ctx, start, consumersDone)
		sctx, cancel := context.WithTimeout(bg, consumer.DefaultShutdownTimeout)
		for _, c := range consumers {
			if err := c.Shutdown(sctx); err != nil {
				fmt.Fprintln(os.Stderr, "load: consumer shutdown:", err)
			}
		}
		cancel()
		cwg.Wait()
		if last := st.lastConsumed.Load(); last > 0 {
			consumeElapsed = time.Unix(0, last).Sub(start)
		}
	}
	stopBackground()
	end := st.snapshot()

	s := l.summarise(base, end, produceElapsed, consumeElapsed)
	s.Interrupted = ctx.Err() != nil
	l.print(s)
	cerrMu.Lock()
	defer cerrMu.Unlock()
	return s, errors.Join(cerrs...)
}

// produce runs o.producers goroutines putting records until the records or
// the duration run out or ctx ends, then closes the producer. -duration
// applies to the measured run only, not to a preload.
func (l *loadRun) produce(ctx context.Context, measured bool) error {
	o := l.o
	p, err := producer.New(l.kc, o.stream, producer.Config{
		DisableAggregation: !o.aggregate,
		Logger:             l.logger,
		Metrics:            l.producerMetrics(),
	})
	if err != nil {
		return err
	}
	l.producer.p.Store(p)
	stop := ctx
	if o.duration > 0 && measured {
		var cancel context.CancelFunc
		stop, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	var bucket *tokenBucket
	chunk := chunkFor(o.rate)
	if o.rate > 0 {
		bucket = newTokenBucket(o.rate, chunk, time.Now)
	}
	var wg sync.WaitGroup
	for range o.producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.putLoop(stop, p, bucket, chunk)
		}()
	}
	wg.Wait()
	// Close flushes and waits for every outcome; a signal does not cut it
	// short (a second one ends the process).
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*producer.DefaultRecordTTL)
	defer cancel()
	if err := p.Close(cctx); err != nil {
		return fmt.Errorf("producer close: %w", err)
	}
	return nil
}

// putLoop claims chunks of record ids and puts them, pacing each chunk
// through the bucket.
func (l *loadRun) putLoop(stop context.Context, p *producer.Producer, bucket *tokenBucket, chunk int) {
	// Put's context is not cancelable: a signal stops producing but lets
	// what was put be flushed by Close instead of withdrawing it.
	putCtx := context.Background()
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for stop.Err() == nil {
		lo := l.nextID.Add(uint64(chunk)) - uint64(chunk)
		if lo >= l.limit {
			return
		}
		hi := min(lo+uint64(chunk), l.limit)
		if bucket != nil {
			if wait := bucket.reserve(int(hi - lo)); wait > 0 {
				if timer == nil {
					timer = time.NewTimer(wait)
				} else {
					timer.Reset(wait)
				}
				select {
				case <-stop.Done():
					return
				case <-timer.C:
				}
			}
		}
		for id := lo; id < hi; id++ {
			l.put(putCtx, p, id)
		}
	}
}

func (l *loadRun) put(ctx context.Context, p *producer.Producer, id uint64) {
	st := l.st
	data := make([]byte, l.o.size)
	copy(data[minSize:], l.filler)
	copy(data, magic[:])
	binary.LittleEndian.PutUint32(data[4:], l.runID)
	binary.LittleEndian.PutUint64(data[8:], id)
	t0 := time.Now()
	binary.LittleEndian.PutUint64(data[16:], uint64(t0.UnixNano()))
	var key string
	if len(l.keys) > 0 {
		key = l.keys[id%uint64(len(l.keys))]
	} else {
		key = randomKey()
	}
	size := int64(len(data))
	_, err := p.PutRecord(ctx, producer.Record{PartitionKey: key, Data: data}, func(r *producer.Result) {
		st.putLat.record(time.Since(t0))
		if r.Err != nil {
			st.failed.Add(1)
			st.fail(classify(r.Err))
			return
		}
		st.ok.add(id)
		st.produced.Add(1)
		st.producedBytes.Add(size)
	})
	if err != nil {
		st.putErrors.Add(1)
		st.fail("put: " + err.Error())
		return
	}
	st.putStarted.Add(1)
}

// handle is the consumers' record function.
func (l *loadRun) handle(_ context.Context, _ string, r consumer.Record) error {
	st := l.st
	d := r.Data
	ownRunOnly := l.o.mode != "consume" || l.o.target == "memory"
	if len(d) < minSize || [4]byte(d[:4]) != magic || (ownRunOnly && binary.LittleEndian.Uint32(d[4:]) != l.runID) {
		st.foreign.Add(1)
		return nil
	}
	now := time.Now()
	st.e2eLat.record(now.Sub(time.Unix(0, int64(binary.LittleEndian.Uint64(d[16:])))))
	if id := binary.LittleEndian.Uint64(d[8:]); id < maxIDs && st.seen.add(id) {
		st.unique.Add(1)
	}
	st.consumed.Add(1)
	st.lastConsumed.Store(now.UnixNano())
	return nil
}

// waitConsumed waits until the consumers are done: in -mode both, until
// every produced record was delivered or -drain passed; in -mode consume,
// until -records were delivered or -duration passed. A signal ends the wait
// in -mode consume, and so does the end of every consumer.
func (l *loadRun) waitConsumed(ctx context.Context, start time.Time, consumersDone <-chan struct{}) {
	o, st := l.o, l.st
	var limit time.Duration
	done := func() bool { return false }
	switch o.mode {
	case "both":
		limit = o.drain
		want := st.produced.Load()
		// Every record with a successful outcome seen, not just as many
		// records as were produced: some that failed may have been stored.
		done = func() bool { return st.unique.Load() >= want && st.ok.countMissing(&st.seen) == 0 }
		if !done() {
			fmt.Fprintf(l.out, "draining: waiting up to %v for %d records\n", o.drain, want-st.unique.Load())
		}
	case "consume":
		limit = o.duration - time.Since(start)
		if o.duration == 0 {
			limit = maxDuration
		}
		if o.records > 0 {
			done = func() bool { return st.consumed.Load() >= o.records }
		}
	default:
		return
	}
	deadline := time.NewTimer(max(limit, 0))
	defer deadline.Stop()
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	// After a signal, -mode both still drains (a second signal exits), so
	// that the reconciliation stays meaningful.
	interrupted := ctx.Done()
	if o.mode == "both" {
		interrupted = nil
	}
	for !done() {
		select {
		case <-interrupted:
			return
		case <-consumersDone:
			fmt.Fprintln(l.out, "every consumer stopped")
			return
		case <-deadline.C:
			if o.mode == "both" {
				fmt.Fprintf(l.out, "drain timed out after %v\n", o.drain)
			}
			return
		case <-poll.C:
		}
	}
}

const maxDuration = time.Duration(1<<63 - 1)

// sampleHeap tracks, every 20 ms and without stopping the world
// (runtime/metrics), the peak of the heap in use (live objects plus garbage
// not yet collected, what the process really holds) and of the live heap
// (marked by the last GC).
func (l *loadRun) sampleHeap(stop <-chan struct{}) {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/gc/heap/live:bytes"}}
	peaks := []*atomic.Uint64{&l.st.peakHeap, &l.st.peakLive}
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		metrics.Read(sample)
		for i, s := range sample {
			if s.Value.Kind() != metrics.KindUint64 {
				continue
			}
			v := s.Value.Uint64()
			for p := peaks[i].Load(); v > p && !peaks[i].CompareAndSwap(p, v); p = peaks[i].Load() {
			}
		}
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

func (l *loadRun) reportLoop(prev snapshot, stop <-chan struct{}) {
	t := time.NewTicker(l.o.report)
	defer t.Stop()
	start := prev.at
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		cur := l.st.snapshot()
		l.printInterval(start, prev, cur)
		prev = cur
	}
}

func (l *loadRun) printInterval(start time.Time, prev, cur snapshot) {
	secs := cur.at.Sub(prev.at).Seconds()
	var b strings.Builder
	fmt.Fprintf(&b, "[%6.1fs]", cur.at.Sub(start).Seconds())
	if l.o.produces() {
		put := cur.putLat.sub(&prev.putLat)
		fmt.Fprintf(&b, " put %.0f rec/s %.2f MiB/s (p50 %s p99 %s)",
			float64(cur.produced-prev.produced)/secs, float64(cur.bytes-prev.bytes)/secs/(1<<20),
			fmtDur(put.quantile(0.5)), fmtDur(put.quantile(0.99)))
		if f := cur.failed - prev.failed; f > 0 {
			fmt.Fprintf(&b, " failed %d", f)
		}
	}
	if l.o.consumes() {
		e2e := cur.e2eLat.sub(&prev.e2eLat)
		fmt.Fprintf(&b, " | got %.0f rec/s (e2e p50 %s p99 %s)",
			float64(cur.consumed-prev.consumed)/secs, fmtDur(e2e.quantile(0.5)), fmtDur(e2e.quantile(0.99)))
	}
	n := l.perRecordCount(prev, cur)
	if n > 0 {
		if cur.cpuOK {
			fmt.Fprintf(&b, " | cpu %d ns/rec", int64(cur.cpu-prev.cpu)/n)
		}
		fmt.Fprintf(&b, " allocs %.2f/rec", float64(cur.mallocs-prev.mallocs)/float64(n))
	}
	fmt.Fprintf(&b, " | peak heap %.1f MiB\n", float64(l.st.peakHeap.Load())/(1<<20))
	io.WriteString(l.out, b.String())
}

// perRecordCount is the denominator of the per-record costs between two
// snapshots: records produced (or, consuming only, consumed).
func (l *loadRun) perRecordCount(a, b snapshot) int64 {
	if l.o.produces() {
		return b.produced - a.produced
	}
	return b.consumed - a.consumed
}

func quantilesOf(c histCounts, h *histogram) quantiles {
	// A quantile is a bucket's midpoint: never report it above the max.
	m := time.Duration(h.max.Load())
	return quantiles{N: c.total(), P50: min(c.quantile(0.5), m), P99: min(c.quantile(0.99), m), Max: m}
}

func (l *loadRun) summarise(base, end snapshot, produceElapsed, consumeElapsed time.Duration) summary {
	st := l.st
	s := summary{
		Produced: st.produced.Load(), ProducedBytes: st.producedBytes.Load(), Failed: st.failed.Load(),
		PutErrors: st.putErrors.Load(), ProduceElapsed: produceElapsed,
		KinesisRecords: st.kinesisRecords.Load(), PutRecordsCalls: st.putRecordsCalls.Load(), PutThrottled: st.putThrottled.Load(),
		Consumed: st.consumed.Load(), Unique: st.unique.Load(), Foreign: st.foreign.Load(),
		ConsumeElapsed: consumeElapsed, GetThrottled: st.getThrottled.Load(),
		PutLatency: quantilesOf(st.putLat.snapshot(), &st.putLat),
		E2ELatency: quantilesOf(st.e2eLat.snapshot(), &st.e2eLat),
		PeakHeap:   st.peakHeap.Load(),
		PeakLive:   st.peakLive.Load(),
		GCs:        end.gcs - base.gcs,
		Failures:   map[string]int64{},
	}
	s.Duplicates = s.Consumed - s.Unique
	st.mu.Lock()
	for k, v := range st.failures {
		s.Failures[k] = v
	}
	st.mu.Unlock()
	if l.o.mode == "both" {
		s.Reconciled = true
		s.Lost = st.ok.countMissing(&st.seen)
	}
	s.Records = l.perRecordCount(base, end)
	if s.Records > 0 {
		if end.cpuOK {
			s.CPUPerRecord = (end.cpu - base.cpu) / time.Duration(s.Records)
		}
		s.AllocsPerRecord = float64(end.mallocs-base.mallocs) / float64(s.Records)
	}
	return s
}

func (l *loadRun) print(s summary) {
	o := l.o
	w := l.out
	keys := "random"
	if o.keys > 0 {
		keys = fmt.Sprint(o.keys)
	}
	rate := "max"
	if o.rate > 0 {
		rate = fmt.Sprintf("%.0f", o.rate)
	}
	fmt.Fprintln(w, "--- summary ---")
	fmt.Fprintf(w, "config     target=%s mode=%s stream=%s shards=%d aggregate=%t size=%d keys=%s rate=%s producers=%d workers=%d limits=%t cpus=%d\n",
		o.target, o.mode, o.stream, o.shards, o.aggregate, o.size, keys, rate, o.producers, o.workers, o.limits, runtime.GOMAXPROCS(0))
	if o.produces() || o.target == "memory" {
		label := "produce   "
		if !o.produces() {
			label = "preload   "
		}
		fmt.Fprintf(w, "%s records=%d failed=%d put_errors=%d elapsed=%s rate=%.0f rec/s throughput=%.2f MiB/s kinesis_records=%d putrecords_calls=%d throttled=%d\n",
			label, s.Produced, s.Failed, s.PutErrors, fmtDur(s.ProduceElapsed), perSec(s.Produced, s.ProduceElapsed),
			perSec(s.ProducedBytes, s.ProduceElapsed)/(1<<20), s.KinesisRecords, s.PutRecordsCalls, s.PutThrottled)
		fmt.Fprintf(w, "put_latency n=%d p50=%s p99=%s max=%s\n", s.PutLatency.N, fmtDur(s.PutLatency.P50), fmtDur(s.PutLatency.P99), fmtDur(s.PutLatency.Max))
	}
	if o.consumes() {
		fmt.Fprintf(w, "consume    records=%d unique=%d other_runs=%d elapsed=%s rate=%.0f rec/s throttled=%d\n",
			s.Consumed, s.Unique, s.Foreign, fmtDur(s.ConsumeElapsed), perSec(s.Consumed, s.ConsumeElapsed), s.GetThrottled)
		fmt.Fprintf(w, "e2e_latency n=%d p50=%s p99=%s max=%s\n", s.E2ELatency.N, fmtDur(s.E2ELatency.P50), fmtDur(s.E2ELatency.P99), fmtDur(s.E2ELatency.Max))
	}
	cpu := "n/a"
	if s.CPUPerRecord > 0 {
		cpu = fmt.Sprintf("%d", s.CPUPerRecord.Nanoseconds())
	}
	fmt.Fprintf(w, "cost       records=%d cpu=%s ns/record allocs=%.2f/record peak_heap=%.1f MiB peak_live=%.1f MiB gcs=%d\n",
		s.Records, cpu, s.AllocsPerRecord, float64(s.PeakHeap)/(1<<20), float64(s.PeakLive)/(1<<20), s.GCs)
	if len(s.Failures) == 0 {
		fmt.Fprintln(w, "failures   none")
	} else {
		ks := make([]string, 0, len(s.Failures))
		for k := range s.Failures {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		for _, k := range ks {
			fmt.Fprintf(w, "failures   %s=%d\n", k, s.Failures[k])
		}
	}
	if s.Reconciled {
		fmt.Fprintf(w, "reconcile  lost=%d duplicates=%d\n", s.Lost, s.Duplicates)
	}
}

// classify names a failed outcome by its reason and Kinesis error code.
func classify(err error) string {
	reason := "other"
	for _, r := range []struct {
		err  error
		name string
	}{
		{producer.ErrRecordExpired, "expired"},
		{producer.ErrThrottled, "throttled"},
		{producer.ErrRejected, "rejected"},
		{producer.ErrCanceled, "canceled"},
		{producer.ErrClosed, "closed"},
	} {
		if errors.Is(err, r.err) {
			reason = r.name
			break
		}
	}
	var re *producer.RecordError
	if errors.As(err, &re) && re.Code != "" {
		reason += "/" + re.Code
	}
	return reason
}

// randomKey returns 16 random hexadecimal characters.
func randomKey() string {
	var raw [8]byte
	var buf [16]byte
	binary.LittleEndian.PutUint64(raw[:], rand.Uint64())
	hex.Encode(buf[:], raw[:])
	return string(buf[:])
}

func perSec(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// fmtDur prints d with three significant digits or so.
func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	case d >= time.Microsecond:
		return d.Round(10 * time.Nanosecond).String()
	}
	return d.String()
}

// loneWorkerDelay is the LeaseInitialTakeDelay of the run's workers: -1
// for one worker on the in-memory lease table, the default otherwise.
func loneWorkerDelay(target string, workers int) time.Duration {
	if target == "memory" && workers == 1 {
		return -1
	}
	return 0
}
