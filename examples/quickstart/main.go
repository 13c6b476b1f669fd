// Command quickstart runs shardflow's producer and consumer end to end and
// reconciles what was produced with what was consumed.
//
//	go run ./examples/quickstart                       # in memory, no set-up
//	go run ./examples/quickstart -target aws -stream demo -shards 4
//	go run ./examples/quickstart -metrics-addr :9100   # and serve /metrics, /livez, /readyz, /status
//
// With -target aws it uses the default AWS configuration, which honours
// AWS_ENDPOINT_URL_KINESIS and AWS_ENDPOINT_URL_DYNAMODB (kinesalite,
// dynalite, LocalStack). The stream is created when missing, the lease table
// (named by -app) too. The last line is
//
//	produced=N consumed=M unique=U lost=L duplicates=D elapsed=...
//
// and the exit status is 1 when anything was lost.
//
// With -metrics-addr it serves Prometheus metrics at /metrics (the names of
// metrics/prommetrics, from a small exporter on the standard library: this
// program is in the root module, which does not depend on client_golang)
// and the health endpoints of examples/internal/health, and after the
// summary keeps serving until interrupted, so the final figures can be
// scraped.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shardflow/shardflow/consumer"
	"github.com/shardflow/shardflow/examples/internal/health"
	"github.com/shardflow/shardflow/examples/internal/promexport"
	"github.com/shardflow/shardflow/examples/internal/target"
	"github.com/shardflow/shardflow/producer"
)

type options struct {
	target  string
	stream  string
	shards  int
	app     string
	records int
	workers int
	timeout time.Duration
	idle    time.Duration
	verbose bool
	logs    io.Writer // where library logs go; nil means os.Stderr
	// metricsAddr, when set, serves /metrics and the health endpoints;
	// the run then waits for ctx to end after its summary.
	metricsAddr string
}

func main() {
	var o options
	flag.StringVar(&o.target, "target", "memory", "memory (in-process Kinesis and lease table) or aws (default AWS configuration)")
	flag.StringVar(&o.stream, "stream", "shardflow-quickstart", "stream name (created when missing)")
	flag.IntVar(&o.shards, "shards", 4, "shard count of a stream created here")
	flag.StringVar(&o.app, "app", "shardflow-quickstart", "application name: the lease table")
	flag.IntVar(&o.records, "records", 10000, "records to produce")
	flag.IntVar(&o.workers, "workers", 2, "consumer workers in this process")
	flag.DurationVar(&o.timeout, "timeout", 2*time.Minute, "give up waiting for records after this long")
	flag.DurationVar(&o.idle, "idle", 200*time.Millisecond, "consumer pause between GetRecords calls per shard (min 200ms)")
	flag.BoolVar(&o.verbose, "v", false, "log the library's info messages")
	flag.StringVar(&o.metricsAddr, "metrics-addr", "", "serve Prometheus /metrics and /livez, /readyz, /status on this address (e.g. :9100) and keep serving after the run until interrupted")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	lost, err := run(ctx, o, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(2)
	}
	if lost > 0 {
		os.Exit(1)
	}
}

// tally counts what the consumers saw of this run's records.
type tally struct {
	mu       sync.Mutex
	seen     []uint32 // deliveries per record id
	consumed atomic.Int64
	unique   atomic.Int64
}

func (t *tally) add(id int) {
	t.consumed.Add(1)
	t.mu.Lock()
	t.seen[id]++
	first := t.seen[id] == 1
	t.mu.Unlock()
	if first {
		t.unique.Add(1)
	}
}

func run(ctx context.Context, o options, out io.Writer) (lost int, err error) {
	if o.records < 0 || o.workers < 1 || o.shards < 1 {
		return 0, errors.New("-records must be >= 0, -workers and -shards >= 1")
	}
	level := slog.LevelWarn
	if o.verbose {
		level = slog.LevelInfo
	}
	logs := o.logs
	if logs == nil {
		logs = os.Stderr
	}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: level}))
	tg, err := target.Open(ctx, target.Options{Target: o.target, App: o.app})
	if err != nil {
		return 0, err
	}
	shards, err := tg.EnsureStream(ctx, o.stream, o.shards)
	if err != nil {
		return 0, err
	}
	var reg *promexport.Registry
	var srv *promexport.Server
	if o.metricsAddr != "" {
		reg = promexport.New()
		if srv, err = promexport.Start(o.metricsAddr, reg); err != nil {
			return 0, fmt.Errorf("-metrics-addr: %w", err)
		}
		defer srv.Close(context.Background())
	}
	start := time.Now()
	runID := strconv.FormatUint(rand.Uint64(), 36)
	prefix := runID + ":"
	t := &tally{seen: make([]uint32, o.records)}

	// Consumers first, from TRIM_HORIZON: records of earlier runs in an
	// existing stream are recognised by their run id and ignored.
	handle := consumer.ProcessRecord(func(ctx context.Context, shardID string, r consumer.Record) error {
		s := string(r.Data)
		if !strings.HasPrefix(s, prefix) {
			return nil
		}
		id, err := strconv.Atoi(s[len(prefix):])
		if err == nil && id >= 0 && id < o.records {
			t.add(id)
		}
		return nil
	})
	cctx, cancelConsumers := context.WithCancel(ctx)
	defer cancelConsumers()
	var wg sync.WaitGroup
	var consumers []*consumer.Consumer
	for i := 0; i < o.workers; i++ {
		c, err := consumer.New(tg.Kinesis, tg.Store, handle, consumer.Config{
			ApplicationName:       o.app,
			StreamName:            o.stream,
			WorkerID:              fmt.Sprintf("%s-%d-%s", o.app, i, runID),
			InitialPosition:       consumer.InitialPosition{Type: consumer.TrimHorizon},
			IdleTimeBetweenReads:  o.idle,
			FailoverTime:          2 * time.Second,
			LeaseInitialTakeDelay: loneWorkerDelay(o.target, o.workers),
			Logger:                logger,
			Metrics:               consumerMetrics(reg, o.stream),
		})
		if err != nil {
			return 0, err
		}
		consumers = append(consumers, c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.Run(cctx); err != nil && !errors.Is(err, context.Canceled) {
				fmt.Fprintln(os.Stderr, "consumer:", err)
			}
		}()
	}

	// Let the workers share the shards out before producing, so that the
	// summary shows steady-state behaviour. Workers started together split
	// the shards without stealing; one started later would steal its share,
	// and records read by a worker that then loses a lease are read again
	// by the next owner (at-least-once), which would show up as duplicates.
	balanced := target.WaitBalanced(ctx, consumers, shards, 10*time.Second)
	fmt.Fprintf(out, "workers hold shards %v\n", balanced)

	p, err := producer.New(tg.Kinesis, o.stream, producer.Config{Logger: logger, Metrics: producerMetrics(reg, o.stream)})
	if err != nil {
		return 0, err
	}
	if srv != nil {
		h := health.Handler{Producers: []health.ProducerStatus{p}}
		for _, c := range consumers {
			h.Consumers = append(h.Consumers, c)
		}
		h.Register(srv.Mux)
		fmt.Fprintf(out, "metrics on http://%s/metrics, health on /livez /readyz /status\n", srv.Addr())
	}
	var produced, failed atomic.Int64
	ok := make([]atomic.Bool, o.records)
	for i := 0; i < o.records; i++ {
		key := "key-" + strconv.Itoa(rand.IntN(1000))
		_, err := p.PutRecord(ctx, producer.Record{PartitionKey: key, Data: []byte(prefix + strconv.Itoa(i))}, func(r *producer.Result) {
			if r.Err == nil {
				ok[i].Store(true)
				produced.Add(1)
			} else {
				failed.Add(1)
			}
		})
		if err != nil {
			return 0, fmt.Errorf("put: %w", err)
		}
	}
	if err := p.Close(ctx); err != nil {
		return 0, fmt.Errorf("producer close: %w", err)
	}
	fmt.Fprintf(out, "produced %d records (%d failed) in %v\n", produced.Load(), failed.Load(), time.Since(start).Round(time.Millisecond))

	// Wait until every produced record was consumed, printing progress.
	deadline := time.NewTimer(o.timeout)
	defer deadline.Stop()
	progress := time.NewTicker(time.Second)
	defer progress.Stop()
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	want := produced.Load()
wait:
	for t.unique.Load() < want {
		select {
		case <-ctx.Done():
			break wait
		case <-deadline.C:
			fmt.Fprintln(out, "timed out waiting for records")
			break wait
		case <-progress.C:
			fmt.Fprintf(out, "consumed %d/%d (%d deliveries)\n", t.unique.Load(), want, t.consumed.Load())
		case <-poll.C:
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), consumer.DefaultShutdownTimeout)
	defer cancel()
	for _, c := range consumers {
		if err := c.Shutdown(sctx); err != nil {
			fmt.Fprintln(os.Stderr, "consumer shutdown:", err)
		}
	}
	wg.Wait()

	unique := t.unique.Load()
	t.mu.Lock()
	for i := range ok {
		if ok[i].Load() && t.seen[i] == 0 {
			lost++
		}
	}
	t.mu.Unlock()
	fmt.Fprintf(out, "produced=%d consumed=%d unique=%d lost=%d duplicates=%d elapsed=%v\n",
		want, t.consumed.Load(), unique, lost, t.consumed.Load()-unique, time.Since(start).Round(time.Millisecond))
	if srv != nil {
		fmt.Fprintf(out, "still serving http://%s/metrics; interrupt to exit\n", srv.Addr())
		<-ctx.Done()
	}
	return lost, nil
}

// producerMetrics and consumerMetrics are the exporter's hooks, or none
// without -metrics-addr.
func producerMetrics(reg *promexport.Registry, stream string) producer.Metrics {
	if reg == nil {
		return nil
	}
	return reg.Producer(stream)
}

func consumerMetrics(reg *promexport.Registry, stream string) consumer.Metrics {
	if reg == nil {
		return nil
	}
	return reg.Consumer(stream)
}

// loneWorkerDelay is the LeaseInitialTakeDelay of a run's workers: -1 (no
// start-up wait, every shard in the first pass) for a single worker on the
// in-memory lease table, which no other process can share, so it is alone
// for certain; the default otherwise (a worker cannot tell from a lease
// table that it is alone; see lease.Config.InitialTakeDelay).
func loneWorkerDelay(target string, workers int) time.Duration {
	if target == "memory" && workers == 1 {
		return -1
	}
	return 0
}
