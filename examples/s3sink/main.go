// Command s3sink delivers a Kinesis stream to S3 as partitioned, Snappy
// compressed Parquet, like Kinesis Data Firehose's S3 delivery with record
// format conversion, but exactly once: every record lands in exactly one
// object, also when workers crash and shards split or merge. See README.md.
//
// In memory (a Kinesis stream, a lease table and an S3 server in the
// process; demo records, some malformed, are produced first):
//
//	go run . -demo 5000 -duration 10s -out ./lake
//
// Real Kinesis, DynamoDB and S3 (AWS_ENDPOINT_URL_KINESIS,
// AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 aim it at emulators):
//
//	go run . -target aws -stream orders -app orders-to-lake -bucket my-lake \
//	    -prefix orders/ -partitioning hive -schema id:bigint,customer:string,total:double,ts:timestamp
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/shardflow/shardflow/consumer"
	"github.com/shardflow/shardflow/examples/internal/target"
	"github.com/shardflow/shardflow/kinesistest"
	"github.com/shardflow/shardflow/lease"
)

type options struct {
	target, stream, app, workerID string
	bucket, prefix, errorPrefix   string
	partitioning, schema          string
	s3Endpoint, out, initialPos   string
	bufferMiB                     int
	bufferInterval                time.Duration
	demo, shards                  int
	duration, progress            time.Duration
	failoverTime, idleTimeReads   time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.target, "target", "memory", "memory (in-process Kinesis, lease table and S3) or aws (Kinesis, DynamoDB and S3 from the default AWS configuration)")
	flag.StringVar(&o.stream, "stream", "events", "stream name")
	flag.StringVar(&o.app, "app", "s3sink", "application name: the DynamoDB lease table")
	flag.StringVar(&o.workerID, "worker-id", "", "worker id in the lease table (default host:pid:random)")
	flag.StringVar(&o.bucket, "bucket", "lake", "S3 bucket")
	flag.StringVar(&o.prefix, "prefix", "", "prefix of data objects (\"\" or ending in /)")
	flag.StringVar(&o.errorPrefix, "error-prefix", DefaultErrorPrefix, "prefix of objects holding records that failed conversion")
	flag.StringVar(&o.partitioning, "partitioning", string(PartitionDefault), "default (YYYY/MM/DD/HH/) or hive (dt=YYYY-MM-DD/hour=HH/)")
	flag.StringVar(&o.schema, "schema", "id:bigint,name:string,ts:timestamp", "columns as name[=jsonField]:type,... (types: string bigint int double float boolean timestamp date)")
	flag.IntVar(&o.bufferMiB, "buffer-mib", DefaultBufferSize>>20, "buffering hint: cut a shard's file at this many MiB of input (1-128)")
	flag.DurationVar(&o.bufferInterval, "buffer-interval", DefaultBufferInterval, "buffering hint: cut a shard's file this long after its first record (60s-900s)")
	flag.StringVar(&o.s3Endpoint, "s3-endpoint", "", "S3 endpoint URL (default AWS, or $AWS_ENDPOINT_URL_S3); path-style addressing is used for any endpoint")
	flag.StringVar(&o.initialPos, "initial-position", "trim_horizon", "where shards without a checkpoint start: trim_horizon or latest")
	flag.StringVar(&o.out, "out", "", "memory target: copy every object written into this directory at the end (to query it with DuckDB)")
	flag.IntVar(&o.demo, "demo", 1000, "memory target: produce this many demo records (every 50th malformed) before consuming")
	flag.IntVar(&o.shards, "shards", 2, "memory target: number of shards")
	flag.DurationVar(&o.duration, "duration", 0, "stop after this long, flushing every buffer (0: until interrupted)")
	flag.DurationVar(&o.progress, "progress", 10*time.Second, "how often to log progress")
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
		log.Error("s3sink", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, log *slog.Logger) error {
	schema, err := ParseSchema(o.schema)
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

	var (
		kc     consumer.Kinesis
		store  lease.Store
		client *s3.Client
	)
	switch o.target {
	case "memory":
		srv := kinesistest.New(kinesistest.Options{})
		defer srv.Close()
		srv.MustCreateStream(o.stream, o.shards)
		if err := target.ProduceDemo(ctx, srv, o.stream, o.demo, log); err != nil {
			return err
		}
		s3srv := httptest.NewServer(gofakes3.New(s3mem.New(), gofakes3.WithLogger(gofakes3.DiscardLog())).Server())
		defer s3srv.Close()
		client = newS3Client(aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("memory", "memory", "")}, s3srv.URL)
		if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(o.bucket)}); err != nil {
			return fmt.Errorf("in-memory S3: %w", err)
		}
		kc, store = srv, lease.NewMemoryStore()
	case "aws":
		cfg, err := config.LoadDefaultConfig(ctx)
		if err != nil {
			return fmt.Errorf("aws config: %w", err)
		}
		kc = kinesis.NewFromConfig(cfg)
		if store, err = lease.NewDynamoStore(ctx, dynamodb.NewFromConfig(cfg), o.app); err != nil {
			return err
		}
		client = newS3Client(cfg, o.s3Endpoint)
	default:
		return fmt.Errorf("-target %q: want memory or aws", o.target)
	}

	sink, err := NewSink(client, Config{
		Bucket: o.bucket, Prefix: o.prefix, ErrorPrefix: o.errorPrefix, Partitioning: Partitioning(o.partitioning),
		Schema: schema, BufferSize: int64(o.bufferMiB) << 20, BufferInterval: o.bufferInterval, Logger: log,
	})
	if err != nil {
		return err
	}
	c, err := consumer.New(kc, store, sink.Factory(), ConsumerConfig(consumer.Config{
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
	}))
	if err != nil {
		return err
	}
	// Run until the context ends, then shut down gracefully.
	err = target.RunUntilDone(ctx, c, o.progress, 60*time.Second, func() { logStats(log, sink.Stats()) })
	if err == nil && o.out != "" {
		err = copyOut(context.Background(), client, o.bucket, o.out)
	}
	return err
}

// ConsumerConfig sets what the sink needs from the consumer: empty batches
// are delivered, so a quiet shard's buffer is still cut when
// BufferInterval has passed.
func ConsumerConfig(c consumer.Config) consumer.Config {
	c.CallProcessRecordsEvenForEmptyList = true
	return c
}

func logStats(log *slog.Logger, s Stats) {
	log.Info("s3sink: progress", "objects", s.Objects, "records", s.Records, "error_objects", s.ErrorObjects,
		"bad_records", s.BadRecords, "bytes_in", s.BytesIn, "bytes_out", s.BytesOut, "recovered_cuts", s.Recovered)
}

// copyOut downloads every object of bucket into dir, keeping the keys as
// paths, so a local engine can read the lake.
func copyOut(ctx context.Context, c *s3.Client, bucket, dir string) error {
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list s3://%s: %w", bucket, err)
		}
		for _, o := range page.Contents {
			if err := copyObject(ctx, c, bucket, aws.ToString(o.Key), dir); err != nil {
				return err
			}
		}
	}
	return nil
}

func copyObject(ctx context.Context, c *s3.Client, bucket, key, dir string) error {
	path := filepath.Join(dir, filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return fmt.Errorf("get s3://%s/%s: %w", bucket, key, err)
	}
	defer out.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, out.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// initialTakeDelay is the consumer's LeaseInitialTakeDelay: -1 (every shard
// in the first pass) on the in-memory target, the default on AWS.
func initialTakeDelay(target string) time.Duration {
	if target == "memory" {
		return -1
	}
	return 0
}
