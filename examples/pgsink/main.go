// Command pgsink consumes a Kinesis stream into a PostgreSQL table exactly
// once: each batch is written in one transaction, keyed by (shard_id,
// sequence_number, sub_sequence_number) with ON CONFLICT DO NOTHING, and
// checkpointed only after the commit.
//
// In-memory stream (demo records are produced into it), local PostgreSQL:
//
//	go run . -dsn postgres://localhost/postgres -demo 1000
//
// Real Kinesis and DynamoDB (lease table named after -app):
//
//	go run . -target aws -stream orders -app orders-pg -dsn "$DATABASE_URL" \
//	    -table orders -columns id:bigint,customer:text,total:numeric,ts:timestamptz
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shardflow/shardflow/consumer"
	"github.com/shardflow/shardflow/examples/internal/target"
	"github.com/shardflow/shardflow/kinesistest"
	"github.com/shardflow/shardflow/lease"
)

type options struct {
	dsn, table, columns         string
	target, stream, app         string
	region, kinesisEndpoint     string
	dynamoEndpoint, initialPos  string
	demo                        int
	duration, progressInterval  time.Duration
	createTable                 bool
	workerID                    string
	shards                      int
	failoverTime, idleTimeReads time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.dsn, "dsn", envOr("DATABASE_URL", "postgres://localhost:5432/postgres"), "PostgreSQL connection string (default $DATABASE_URL)")
	flag.StringVar(&o.table, "table", "events", "target table (table or schema.table); bad records go to <table>_dead_letter")
	flag.StringVar(&o.columns, "columns", "id:bigint,name:text,ts:timestamptz", "JSON field to column mapping: column[=json.field]:type,...")
	flag.BoolVar(&o.createTable, "create-table", true, "create the table and the dead-letter table if missing")
	flag.StringVar(&o.target, "target", "memory", "memory (in-process Kinesis and lease table) or aws (Kinesis and DynamoDB)")
	flag.StringVar(&o.stream, "stream", "events", "stream name")
	flag.StringVar(&o.app, "app", "pgsink", "application name: the DynamoDB lease table")
	flag.StringVar(&o.workerID, "worker-id", "", "worker id in the lease table (default host:pid:random)")
	flag.StringVar(&o.region, "region", "", "AWS region (default from the environment)")
	flag.StringVar(&o.kinesisEndpoint, "kinesis-endpoint", "", "Kinesis endpoint URL (e.g. kinesalite); default AWS")
	flag.StringVar(&o.dynamoEndpoint, "dynamodb-endpoint", "", "DynamoDB endpoint URL (e.g. dynalite); default AWS")
	flag.StringVar(&o.initialPos, "initial-position", "trim_horizon", "where shards without a checkpoint start: trim_horizon or latest")
	flag.IntVar(&o.demo, "demo", 100, "memory target: produce this many demo records (every 50th is bad JSON) before consuming")
	flag.IntVar(&o.shards, "shards", 2, "memory target: number of shards")
	flag.DurationVar(&o.duration, "duration", 0, "stop after this long (0: run until interrupted)")
	flag.DurationVar(&o.progressInterval, "progress", 10*time.Second, "how often to log progress")
	flag.DurationVar(&o.failoverTime, "failover-time", 0, "lease failover time (default the consumer's, 10s)")
	flag.DurationVar(&o.idleTimeReads, "idle-time-between-reads", 0, "pause between GetRecords calls per shard (default 1.5s)")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if o.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	if err := run(ctx, o, log); err != nil {
		log.Error("pgsink", "err", err)
		os.Exit(1)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func run(ctx context.Context, o options, log *slog.Logger) error {
	cols, err := ParseColumns(o.columns)
	if err != nil {
		return err
	}
	pos := consumer.InitialPosition{Type: consumer.TrimHorizon}
	switch o.initialPos {
	case "trim_horizon":
	case "latest":
		pos.Type = consumer.Latest
	default:
		return fmt.Errorf("-initial-position %q: want trim_horizon or latest", o.initialPos)
	}

	pool, err := pgxpool.New(ctx, o.dsn)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	defer pool.Close()
	if err := pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	sink, err := NewSink(pool, SinkConfig{Table: o.table, Columns: cols, Logger: log})
	if err != nil {
		return err
	}
	if o.createTable {
		if err := sink.CreateTables(ctx); err != nil {
			return err
		}
	}

	var kc consumer.Kinesis
	var store lease.Store
	switch o.target {
	case "memory":
		srv := kinesistest.New(kinesistest.Options{})
		defer srv.Close()
		srv.MustCreateStream(o.stream, o.shards)
		if err := target.ProduceDemo(ctx, srv, o.stream, o.demo, log); err != nil {
			return err
		}
		kc, store = srv, lease.NewMemoryStore()
	case "aws":
		var loadOpts []func(*config.LoadOptions) error
		if o.region != "" {
			loadOpts = append(loadOpts, config.WithRegion(o.region))
		}
		awsCfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
		if err != nil {
			return fmt.Errorf("aws config: %w", err)
		}
		kc = kinesis.NewFromConfig(awsCfg, func(k *kinesis.Options) {
			if o.kinesisEndpoint != "" {
				k.BaseEndpoint = &o.kinesisEndpoint
			}
		})
		ddb := dynamodb.NewFromConfig(awsCfg, func(d *dynamodb.Options) {
			if o.dynamoEndpoint != "" {
				d.BaseEndpoint = &o.dynamoEndpoint
			}
		})
		if store, err = lease.NewDynamoStore(ctx, ddb, o.app); err != nil {
			return err
		}
	default:
		return fmt.Errorf("-target %q: want memory or aws", o.target)
	}

	c, err := consumer.New(kc, store, sink.Factory(), consumer.Config{
		ApplicationName:      o.app,
		StreamName:           o.stream,
		WorkerID:             o.workerID,
		InitialPosition:      pos,
		FailoverTime:         o.failoverTime,
		IdleTimeBetweenReads: o.idleTimeReads,
		// The in-memory target's lease table is this process's own: its
		// one worker is alone for certain and skips the start-up wait.
		// On a shared table it waits (it cannot tell it is alone).
		LeaseInitialTakeDelay: initialTakeDelay(o.target),
		Logger:                log,
	})
	if err != nil {
		return err
	}
	// Run until the context ends, then shut down gracefully.
	err = target.RunUntilDone(ctx, c, o.progressInterval, consumer.DefaultShutdownTimeout, func() { logStats(log, sink.Stats()) })
	return err
}

func logStats(log *slog.Logger, s SinkStats) {
	log.Info("pgsink: progress", "batches", s.Batches, "inserted", s.Inserted, "duplicates", s.Duplicates, "dead_lettered", s.DeadLettered)
}

// initialTakeDelay is the consumer's LeaseInitialTakeDelay: -1 (every shard
// in the first pass) on the in-memory target, the default on AWS.
func initialTakeDelay(target string) time.Duration {
	if target == "memory" {
		return -1
	}
	return 0
}
