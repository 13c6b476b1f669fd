// Command agent tails log or CSV files into a Kinesis stream through the
// shardflow producer, like the Amazon Kinesis Agent: it follows a glob of
// files through rotation and truncation, sends each new line as a record,
// and saves its read positions so a restart neither loses nor resends
// confirmed lines.
//
// In-memory stream (nothing to set up; records are counted at exit):
//
//	go run . -files '/var/log/app/*.log'
//
// Real Kinesis (credentials and region from the environment):
//
//	go run . -target aws -stream app-logs -files '/var/log/app/*.log' -offsets /var/lib/agent/offsets.json
//
// CSV lines converted to JSON, keyed by their first column:
//
//	go run . -files 'data/*.csv' -key csv:1 -csv-fields id,name,score
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/shardflow/shardflow/aggregation"
	"github.com/shardflow/shardflow/kinesistest"
	"github.com/shardflow/shardflow/producer"
)

// options are the command's flags.
type options struct {
	files, stream, target, region, endpoint string
	keySpec, csvFields, csvDelim            string
	offsets, initial                        string
	poll, checkpointEvery, progress         time.Duration
	closeInactive, shutdownTimeout          time.Duration
	maxInFlight, maxBuffered                int64
	shards                                  int
	noAggregation                           bool
}

func main() {
	var o options
	var verbose bool
	flag.StringVar(&o.files, "files", "", "glob of the files to tail, like the Kinesis Agent's filePattern (required)")
	flag.StringVar(&o.stream, "stream", "agent", "Kinesis stream name")
	flag.StringVar(&o.target, "target", "memory", "memory (an in-process stream) or aws (Kinesis)")
	flag.StringVar(&o.region, "region", "", "AWS region (default from the environment)")
	flag.StringVar(&o.endpoint, "endpoint", "", "Kinesis endpoint URL, e.g. http://localhost:4567 for kinesalite (default AWS)")
	flag.IntVar(&o.shards, "shards", 2, "memory target: number of shards")
	flag.StringVar(&o.keySpec, "key", "random", "partition key per line: random, fixed:VALUE or csv:N (column N, from 1)")
	flag.StringVar(&o.csvFields, "csv-fields", "", "convert CSV lines to JSON objects with these field names (a,b,c)")
	flag.StringVar(&o.csvDelim, "csv-delimiter", ",", "CSV column separator (one character; \\t for tab)")
	flag.StringVar(&o.offsets, "offsets", "agent-offsets.json", "file where confirmed read positions are kept (empty: none)")
	flag.StringVar(&o.initial, "initial-position", "start", "where to start files found at first start without an offset: start or end")
	flag.DurationVar(&o.poll, "poll", time.Second, "how often files are checked for new lines and rotation")
	flag.DurationVar(&o.checkpointEvery, "checkpoint-interval", time.Second, "how often changed offsets are saved")
	flag.DurationVar(&o.progress, "progress", 30*time.Second, "how often progress is logged")
	flag.DurationVar(&o.closeInactive, "close-inactive", 5*time.Second, "how long a rotated-away file stays open after its last write")
	flag.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long to wait for records in flight on stop")
	flag.Int64Var(&o.maxInFlight, "max-in-flight-bytes", 16<<20, "data read but not yet confirmed; reading pauses at this bound")
	flag.Int64Var(&o.maxBuffered, "max-buffered-bytes", 32<<20, "producer buffer; Put blocks when it is full")
	flag.BoolVar(&o.noAggregation, "no-aggregation", false, "send each line as its own Kinesis record instead of KPL aggregates")
	flag.BoolVar(&verbose, "v", false, "debug logging")
	flag.Parse()

	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, log); err != nil {
		log.Error("agent", "err", err)
		os.Exit(1)
	}
}

// run tails the files until ctx ends.
func run(ctx context.Context, o options, log *slog.Logger) error {
	key, err := ParseKeySpec(o.keySpec)
	if err != nil {
		return err
	}
	format := Formatter{Key: key}
	if o.csvFields != "" {
		format.CSVFields = strings.Split(o.csvFields, ",")
	}
	delim := o.csvDelim
	if delim == `\t` {
		delim = "\t"
	}
	if utf8.RuneCountInString(delim) != 1 {
		return fmt.Errorf("-csv-delimiter %q: want one character", o.csvDelim)
	}
	format.Delimiter, _ = utf8.DecodeRuneInString(delim)
	var pos InitialPosition
	switch o.initial {
	case "start":
	case "end":
		pos = EndOfFile
	default:
		return fmt.Errorf("-initial-position %q: want start or end", o.initial)
	}

	var client producer.Client
	var mem *kinesistest.Server
	switch o.target {
	case "memory":
		mem = kinesistest.New(kinesistest.Options{})
		defer mem.Close()
		mem.MustCreateStream(o.stream, max(o.shards, 1))
		client = mem
	case "aws":
		var opts []func(*config.LoadOptions) error
		if o.region != "" {
			opts = append(opts, config.WithRegion(o.region))
		}
		cfg, err := config.LoadDefaultConfig(ctx, opts...)
		if err != nil {
			return fmt.Errorf("aws config: %w", err)
		}
		client = kinesis.NewFromConfig(cfg, func(k *kinesis.Options) {
			if o.endpoint != "" {
				k.BaseEndpoint = &o.endpoint
			}
		})
	default:
		return fmt.Errorf("-target %q: want memory or aws", o.target)
	}

	prod, err := producer.New(client, o.stream, producer.Config{
		DisableAggregation: o.noAggregation,
		MaxBufferedBytes:   int(o.maxBuffered),
		Logger:             log,
	})
	if err != nil {
		return err
	}
	agent, err := New(Config{
		Files:              o.files,
		Sink:               ProducerSink{Producer: prod},
		Format:             format,
		OffsetsPath:        o.offsets,
		InitialPosition:    pos,
		PollInterval:       o.poll,
		CheckpointInterval: o.checkpointEvery,
		ProgressInterval:   o.progress,
		CloseInactive:      o.closeInactive,
		MaxInFlightBytes:   o.maxInFlight,
		ShutdownTimeout:    o.shutdownTimeout,
		IsPermanent:        IsPermanentProducerError,
		Logger:             log,
	})
	if err != nil {
		_ = prod.Close(context.WithoutCancel(ctx))
		return err
	}
	log.Info("agent: tailing", "files", o.files, "stream", o.stream, "target", o.target, "offsets", o.offsets)
	runErr := agent.Run(ctx)

	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.shutdownTimeout)
	defer cancel()
	if err := prod.Close(cctx); err != nil {
		log.Warn("agent: closing producer", "err", err)
	}
	if mem != nil {
		var kinesisRecords, userRecords int
		for _, sh := range mem.ShardIDs(o.stream) {
			for _, r := range mem.Records(o.stream, sh) {
				recs, _ := aggregation.Deaggregate(nil, r.Data, aws.ToString(r.PartitionKey))
				kinesisRecords++
				userRecords += len(recs)
			}
		}
		log.Info("agent: in-memory stream", "kinesis_records", kinesisRecords, "lines", userRecords)
	}
	return runErr
}

// ProducerSink adapts a shardflow producer to Sink.
type ProducerSink struct{ Producer *producer.Producer }

// Put implements Sink. The producer blocks while its buffer is full. When
// ctx ends, records not yet sent are withdrawn (their outcome is
// producer.ErrCanceled): the agent keeps them unconfirmed, so they are sent
// on the next start.
func (s ProducerSink) Put(ctx context.Context, key string, data []byte, done func(error)) error {
	_, err := s.Producer.PutRecord(ctx, producer.Record{PartitionKey: key, Data: data}, func(r *producer.Result) { done(r.Err) })
	return err
}

// Flush implements Sink.
func (s ProducerSink) Flush(ctx context.Context) error { return s.Producer.Flush(ctx) }

// IsPermanentProducerError reports outcomes that no retry can change: the
// record itself is invalid. Everything else is retried, including
// producer.ErrRejected: a missing stream or denied access is fixed by the
// operator, and skipping lines meanwhile would lose them. The agent's
// progress shows the retries and the growing lag.
func IsPermanentProducerError(err error) bool {
	return errors.Is(err, producer.ErrInvalidRecord)
}
