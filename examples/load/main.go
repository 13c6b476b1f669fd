// Command load generates load with shardflow's producer and consumer and
// measures what it costs: produced and consumed records/s and MiB/s, process
// CPU time and heap allocations per record, Put latency (Put to outcome),
// end-to-end latency (Put to delivery by the consumer), failures by reason,
// peak heap, and, when it both produces and consumes, a reconciliation of
// every record id (lost and duplicates).
//
//	go run ./examples/load                                 # memory, 200,000 records or 30 s
//	go run ./examples/load -aggregate=false -records 100000
//	go run ./examples/load -limits -shards 4 -rate 3000    # enforce per-shard service limits
//	go run ./examples/load -duration 1m -records 0 -rate 50000 -producers 8
//	go run ./examples/load -mode consume -records 500000   # memory: preloads, then measures consumers
//	go run ./examples/load -target aws -stream load -shards 4 -rate 2000
//	go run ./examples/load -target aws -stream load -mode produce -duration 5m -records 0
//	go run ./examples/load -target aws -stream load -mode consume -duration 5m -records 0
//	go run ./examples/load -limits -rate 3000 -metrics-addr :9100    # and serve /metrics, /livez, /readyz
//
// -target memory runs everything in this process against kinesistest's
// in-memory Kinesis and lease store; its CPU, allocations and heap are then
// part of the figures. -target aws uses the default AWS configuration, which
// honours AWS_ENDPOINT_URL_KINESIS and AWS_ENDPOINT_URL_DYNAMODB (kinesalite,
// dynalite, LocalStack); the stream and the lease table (-app) are created
// when missing.
//
// Each record's data starts with a 24-byte header (magic, run id, record
// id, Put time in Unix nanoseconds), so -size is at least 24; the consumer
// uses it for end-to-end latency and reconciliation and ignores records of
// other runs (in -mode consume it accepts every run's records and reports
// no reconciliation; end-to-end latency then assumes synchronised clocks).
//
// A line is printed every -report interval with the interval's figures, and
// a summary at the end. CPU and allocation costs are per record produced
// (-mode produce, both) or consumed (-mode consume) and include everything
// the process does, the load generator's own allocations (data buffer,
// random key, outcome callback: about 3 per record) included.
//
// The run stops after -records records or -duration, whichever comes first
// (0 disables either). Then the producer is closed (flushing everything);
// with -mode both the consumers get up to -drain to deliver every produced
// record and are shut down gracefully. The first SIGINT or SIGTERM stops
// producing and shuts down gracefully the same way; a second one exits at
// once. The exit status is 1 when -mode both lost records, 2 on errors and
// otherwise 130 after an interrupt.
//
// -metrics-addr serves Prometheus metrics at /metrics while the tool runs,
// under metrics/prommetrics's names (from a standard-library exporter: the
// root module does not depend on client_golang), and the health endpoints
// of examples/internal/health.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// minSize is the record header: magic, run id, record id, Put time.
const minSize = 24

type options struct {
	target    string
	mode      string
	stream    string
	app       string
	shards    int
	records   int64
	duration  time.Duration
	rate      float64
	size      int
	keys      int
	aggregate bool
	producers int
	workers   int
	limits    bool
	report    time.Duration
	idle      time.Duration
	failover  time.Duration
	drain     time.Duration
	verbose   bool
	// metricsAddr, when set, serves Prometheus /metrics and the health
	// endpoints while the tool runs.
	metricsAddr string
}

func (o options) produces() bool { return o.mode != "consume" }
func (o options) consumes() bool { return o.mode != "produce" }

func parseOptions(args []string, errOut io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(errOut)
	fs.StringVar(&o.target, "target", "memory", "memory (in-process Kinesis and lease table) or aws (default AWS configuration)")
	fs.StringVar(&o.mode, "mode", "both", "produce, consume or both")
	fs.StringVar(&o.stream, "stream", "shardflow-load", "stream name (created when missing)")
	fs.StringVar(&o.app, "app", "shardflow-load", "consumer application name: the lease table")
	fs.IntVar(&o.shards, "shards", 4, "shard count of a stream created here")
	fs.Int64Var(&o.records, "records", 200_000, "records to produce (or consume with -mode consume); 0 = no limit")
	fs.DurationVar(&o.duration, "duration", 30*time.Second, "stop producing (or consuming) after this long; 0 = no limit")
	fs.Float64Var(&o.rate, "rate", 0, "target records/s over all producers; 0 = as fast as possible")
	fs.IntVar(&o.size, "size", 100, fmt.Sprintf("bytes of data per record (at least %d)", minSize))
	fs.IntVar(&o.keys, "keys", 0, "distinct partition keys; 0 = a random 16-character key per record")
	fs.BoolVar(&o.aggregate, "aggregate", true, "KPL aggregation in the producer")
	fs.IntVar(&o.producers, "producers", 4, "goroutines calling Put")
	fs.IntVar(&o.workers, "workers", 2, "consumer workers in this process")
	fs.BoolVar(&o.limits, "limits", false, "memory target: enforce the per-shard service limits (1 MiB/s and 1,000 records/s in, 5 reads/s and 2 MiB/s out)")
	fs.DurationVar(&o.report, "report", 2*time.Second, "interval between progress lines; 0 = summary only")
	fs.DurationVar(&o.idle, "idle", 200*time.Millisecond, "consumer pause between GetRecords calls per shard (min 200ms)")
	fs.DurationVar(&o.failover, "failover", 2*time.Second, "consumer lease failover time (KCL default 10s)")
	fs.DurationVar(&o.drain, "drain", time.Minute, "-mode both: how long consumers may take to deliver the last records after producing ends")
	fs.BoolVar(&o.verbose, "v", false, "log the library's info messages")
	fs.StringVar(&o.metricsAddr, "metrics-addr", "", "serve Prometheus /metrics and /livez, /readyz, /status on this address (e.g. :9100) while running")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return o, o.validate()
}

func (o options) validate() error {
	var errs []error
	if o.target != "memory" && o.target != "aws" {
		errs = append(errs, fmt.Errorf("-target %q: want memory or aws", o.target))
	}
	if o.mode != "produce" && o.mode != "consume" && o.mode != "both" {
		errs = append(errs, fmt.Errorf("-mode %q: want produce, consume or both", o.mode))
	}
	if o.stream == "" || o.app == "" {
		errs = append(errs, errors.New("-stream and -app must not be empty"))
	}
	if o.shards < 1 || o.producers < 1 || o.workers < 1 {
		errs = append(errs, errors.New("-shards, -producers and -workers must be at least 1"))
	}
	if o.records < 0 || o.records > maxIDs {
		errs = append(errs, fmt.Errorf("-records must be in [0, %d]", int64(maxIDs)))
	}
	if o.duration < 0 || o.report < 0 || o.drain < 0 || o.rate < 0 || o.keys < 0 {
		errs = append(errs, errors.New("-duration, -report, -drain, -rate and -keys must not be negative"))
	}
	if o.mode == "consume" && o.target == "memory" && o.records == 0 {
		errs = append(errs, errors.New("-mode consume on memory preloads -records records: -records must not be 0"))
	}
	if o.records == 0 && o.duration == 0 {
		errs = append(errs, errors.New("-records and -duration are both 0: the run would never stop"))
	}
	if o.size < minSize || o.size > 1<<20-256 {
		errs = append(errs, fmt.Errorf("-size must be in [%d, %d]", minSize, 1<<20-256))
	}
	return errors.Join(errs...)
}

func main() {
	o, err := parseOptions(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(2)
	}

	// First signal: stop producing and shut down gracefully. Second: the
	// default action (exit) is restored, so it ends the process at once.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	watcher := make(chan struct{})
	go func() {
		defer close(watcher)
		select {
		case s := <-sig:
			fmt.Fprintf(os.Stderr, "load: %v: stopping gracefully (again to exit at once)\n", s)
			signal.Stop(sig)
			cancel()
		case <-done:
		}
	}()

	s, err := run(ctx, o, os.Stdout)
	close(done)
	<-watcher
	switch {
	case err != nil:
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(2)
	case s.Reconciled && s.Lost > 0:
		os.Exit(1)
	case s.Interrupted:
		os.Exit(130)
	}
}
