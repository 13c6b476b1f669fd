// Command worker is one consumer process of the chaos test (package
// internal/chaos): a consumer.Consumer on a lease table in DynamoDB whose
// RecordProcessor journals every record it processes, every checkpoint and
// every lifecycle call to its own file, fsynced before each checkpoint.
// SIGTERM shuts it down gracefully (consumer.Shutdown); the test also kills
// it with SIGKILL, which its journal and checkpoints must survive.
//
//	worker -kinesis http://127.0.0.1:4567 -dynamodb http://127.0.0.1:4568 \
//	  -stream s -table app -id w0.1 -journal w0.1.journal
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/shardflow/shardflow/checkpoint"
	"github.com/shardflow/shardflow/consumer"
	"github.com/shardflow/shardflow/internal/chaos"
	"github.com/shardflow/shardflow/lease"
)

func main() {
	var (
		kinesisEP = flag.String("kinesis", "", "Kinesis endpoint (required)")
		dynamoEP  = flag.String("dynamodb", "", "DynamoDB endpoint (required)")
		stream    = flag.String("stream", "", "stream name (required)")
		table     = flag.String("table", "", "lease table and application name (required)")
		id        = flag.String("id", "", "worker id (required)")
		path      = flag.String("journal", "", "journal file (required)")
		failover  = flag.Duration("failover", 3*time.Second, "lease FailoverTime")
		syncEvery = flag.Duration("shard-sync", time.Second, "ShardSyncInterval")
		idle      = flag.Duration("idle", consumer.MinIdleTimeBetweenReads, "IdleTimeBetweenReads")
		stopWait  = flag.Duration("shutdown-timeout", time.Minute, "bound on graceful shutdown")
		work      = flag.Duration("work", 0, "time each batch takes between being journaled and checkpointed")
		handoff   = flag.Duration("handoff-timeout", 0, "lease HandoffTimeout (0 default, negative steals outright)")
		renew     = flag.Duration("renew", 0, "lease RenewInterval (0: the default, from -failover)")
		take      = flag.Duration("take", 0, "lease TakeInterval (0: the default, from -failover)")
		expiry    = flag.Duration("expiry-scan", 0, "lease ExpiryScanInterval (0: the default, from -failover)")
	)
	flag.Parse()
	if *kinesisEP == "" || *dynamoEP == "" || *stream == "" || *table == "" || *id == "" || *path == "" {
		flag.Usage()
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("worker", *id)
	lc := lease.Config{FailoverTime: *failover, HandoffTimeout: *handoff, RenewInterval: *renew, TakeInterval: *take, ExpiryScanInterval: *expiry}
	if err := run(log, *kinesisEP, *dynamoEP, *stream, *table, *id, *path, lc, *syncEvery, *idle, *stopWait, *work); err != nil {
		log.Error("worker failed", "err", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger, kinesisEP, dynamoEP, stream, table, id, path string, lc lease.Config, syncEvery, idle, stopWait, work time.Duration) error {
	j, err := openJournal(path)
	if err != nil {
		return err
	}
	defer j.f.Close()
	if err := j.write(chaos.Entry{Kind: chaos.Start, Data: strconv.Itoa(os.Getpid())}); err != nil {
		return err
	}

	awsCfg := func(ep string) aws.Config {
		return aws.Config{
			Region:       "us-east-1",
			Credentials:  credentials.NewStaticCredentialsProvider("AKIAEXAMPLE", "secret", ""),
			BaseEndpoint: aws.String(ep),
		}
	}
	ctx := context.Background()
	store, err := lease.NewDynamoStore(ctx, dynamodb.NewFromConfig(awsCfg(dynamoEP)), table, lease.WithLogger(log))
	if err != nil {
		return err
	}
	var procs atomic.Int64
	factory := consumer.ProcessorFactoryFunc(func(shardID string) consumer.RecordProcessor {
		return &processor{j: j, proc: fmt.Sprintf("%s/%d", id, procs.Add(1)), shard: shardID, log: log, work: work}
	})
	c, err := consumer.New(kinesis.NewFromConfig(awsCfg(kinesisEP)), store, factory, consumer.Config{
		ApplicationName:         table,
		StreamName:              stream,
		WorkerID:                id,
		InitialPosition:         consumer.InitialPosition{Type: consumer.TrimHorizon},
		IdleTimeBetweenReads:    idle,
		ShardSyncInterval:       syncEvery,
		ParentShardPollInterval: 500 * time.Millisecond,
		ThrottleBackoff:         consumer.Backoff{Initial: 50 * time.Millisecond, Max: time.Second},
		ProcessorRetryBackoff:   consumer.Backoff{Initial: 50 * time.Millisecond, Max: time.Second},
		Logger:                  log,
		Metrics:                 leaseMetrics{j: j},
		Lease:                   lc,
	})
	if err != nil {
		return err
	}

	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, os.Interrupt)
	runErr := make(chan error, 1)
	go func() { runErr <- c.Run(ctx) }()
	select {
	case err := <-runErr:
		return fmt.Errorf("consumer stopped on its own: %w", err)
	case <-term:
	}
	sctx, cancel := context.WithTimeout(ctx, stopWait)
	defer cancel()
	if err := c.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-runErr; err != nil {
		return fmt.Errorf("run after shutdown: %w", err)
	}
	if err := j.write(chaos.Entry{Kind: chaos.Stopped}); err != nil {
		return err
	}
	return j.sync()
}

// journal appends entries with one write(2) each, straight to the file (no
// user-space buffer), so a SIGKILL loses nothing already written; sync
// makes it durable before a checkpoint depends on it.
type journal struct {
	mu  sync.Mutex
	f   *os.File
	buf []byte
}

func openJournal(path string) (*journal, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	return &journal{f: f}, nil
}

func (j *journal) write(es ...chaos.Entry) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	now := time.Now()
	j.buf = j.buf[:0]
	for _, e := range es {
		if e.Time.IsZero() {
			e.Time = now
		}
		j.buf = chaos.AppendEntry(j.buf, e)
	}
	if _, err := j.f.Write(j.buf); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

func (j *journal) sync() error {
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("journal: fsync: %w", err)
	}
	return nil
}

// mustWrite writes entries whose loss would make the journal lie; a
// journal that cannot be written ends the process (the test then sees a
// worker that died, not a wrong reconciliation).
func (j *journal) mustWrite(es ...chaos.Entry) {
	if err := j.write(es...); err == nil {
		err = j.sync()
		if err == nil {
			return
		}
	}
	fmt.Fprintln(os.Stderr, "journal write failed; exiting")
	os.Exit(3)
}

// processor journals and checkpoints after each batch. It retries a failed
// checkpoint write itself (until the lease is lost), so a batch is never
// handed back to the consumer and redelivered within one ownership.
type processor struct {
	j     *journal
	proc  string
	shard string
	log   *slog.Logger
	work  time.Duration
}

func (p *processor) entry(k chaos.Kind, pos checkpoint.Position) chaos.Entry {
	return chaos.Entry{Kind: k, Proc: p.proc, Shard: p.shard, Pos: pos}
}

func (p *processor) Initialize(_ context.Context, in consumer.InitializeInput) error {
	p.j.mustWrite(p.entry(chaos.Init, in.StartingPosition))
	return nil
}

func (p *processor) ProcessRecords(ctx context.Context, in consumer.ProcessRecordsInput) error {
	if len(in.Records) == 0 {
		return nil
	}
	es := make([]chaos.Entry, len(in.Records))
	for i, r := range in.Records {
		es[i] = p.entry(chaos.Record, r.Position())
		es[i].Key, es[i].Data = r.PartitionKey, string(r.Data)
	}
	p.j.mustWrite(es...) // fsynced before the checkpoint below
	if p.work > 0 {
		// The rest of the batch's work: a kill now leaves processed records
		// past the checkpoint, which the next owner must redeliver.
		t := time.NewTimer(p.work)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	last := in.Records[len(in.Records)-1].Position()
	return p.checkpoint(ctx, func(ctx context.Context) error { return in.Checkpointer.CheckpointAt(ctx, last) }, last, chaos.Checkpoint)
}

// checkpoint calls write until it succeeds, then journals kind at pos.
func (p *processor) checkpoint(ctx context.Context, write func(context.Context) error, pos checkpoint.Position, kind chaos.Kind) error {
	delay := 50 * time.Millisecond
	for {
		err := write(ctx)
		if err == nil {
			p.j.mustWrite(p.entry(kind, pos))
			return nil
		}
		if errors.Is(err, checkpoint.ErrLeaseLost) || errors.Is(err, checkpoint.ErrShutdown) || ctx.Err() != nil {
			return err
		}
		p.log.Warn("checkpoint failed; retrying", "shard", p.shard, "err", err)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, time.Second)
	}
}

func (p *processor) LeaseLost(context.Context, consumer.LeaseLostInput) {
	p.j.mustWrite(p.entry(chaos.Lost, checkpoint.Position{}))
}

func (p *processor) ShardEnded(ctx context.Context, in consumer.ShardEndedInput) error {
	p.j.mustWrite(p.entry(chaos.EndBegin, checkpoint.Position{}))
	return p.checkpoint(ctx, in.Checkpointer.Checkpoint, checkpoint.ShardEnd, chaos.Ended)
}

func (p *processor) ShutdownRequested(ctx context.Context, in consumer.ShutdownRequestedInput) error {
	// Every batch was checkpointed before ProcessRecords returned, so
	// "everything delivered" is everything processed.
	err := in.Checkpointer.Checkpoint(ctx)
	if err != nil {
		return err
	}
	p.j.mustWrite(p.entry(chaos.Shutdown, in.Checkpointer.Last()))
	return nil
}

// leaseMetrics journals lease hand-overs as the consumer reports them.
type leaseMetrics struct {
	consumer.NopMetrics
	j *journal
}

func (m leaseMetrics) LeaseTaken(shardID string) {
	_ = m.j.write(chaos.Entry{Kind: chaos.Taken, Shard: shardID})
}

func (m leaseMetrics) LeaseLost(shardID string) {
	_ = m.j.write(chaos.Entry{Kind: chaos.Dropped, Shard: shardID})
}
