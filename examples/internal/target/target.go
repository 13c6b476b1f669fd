// Package target opens the Kinesis stream and lease table that the example
// programs run against: the in-memory default (kinesistest and a memory lease
// store) or real endpoints from the default AWS configuration, which honours
// AWS_ENDPOINT_URL_KINESIS and AWS_ENDPOINT_URL_DYNAMODB (so kinesalite,
// dynalite or LocalStack work too).
//
//	t, err := target.Open(ctx, target.Options{Target: "memory", App: "demo"})
//	err = t.EnsureStream(ctx, "demo", 4)
//	p, err := producer.New(t.Kinesis, "demo", producer.Config{})
package target

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardflow/shardflow/consumer"
	"github.com/shardflow/shardflow/kinesistest"
	"github.com/shardflow/shardflow/lease"
	"github.com/shardflow/shardflow/producer"
)

// Kinesis is what the examples need from a target's Kinesis: the producer's
// and consumer's calls plus stream creation. Both *kinesis.Client and
// *kinesistest.Server satisfy it.
type Kinesis interface {
	consumer.Kinesis
	producer.Client
	CreateStream(ctx context.Context, in *kinesis.CreateStreamInput, optFns ...func(*kinesis.Options)) (*kinesis.CreateStreamOutput, error)
	DescribeStream(ctx context.Context, in *kinesis.DescribeStreamInput, optFns ...func(*kinesis.Options)) (*kinesis.DescribeStreamOutput, error)
}

// Options selects a target.
type Options struct {
	// Target is "memory" (the default) or "aws".
	Target string
	// App names the lease table on the aws target.
	App string
	// Limits enforces Kinesis's per-shard limits on the memory target.
	Limits bool
	// NoLeaseTable skips opening the lease table (producer-only runs).
	NoLeaseTable bool
}

// Target is an opened stream service and lease table.
type Target struct {
	Kinesis Kinesis     // *kinesis.Client or *kinesistest.Server
	Store   lease.Store // nil with Options.NoLeaseTable
}

// Open connects to the target the options name.
func Open(ctx context.Context, o Options) (*Target, error) {
	switch o.Target {
	case "", "memory":
		t := &Target{Kinesis: kinesistest.New(kinesistest.Options{Limits: o.Limits})}
		if !o.NoLeaseTable {
			t.Store = lease.NewMemoryStore()
		}
		return t, nil
	case "aws":
		cfg, err := config.LoadDefaultConfig(ctx)
		if err != nil {
			return nil, fmt.Errorf("load AWS configuration: %w", err)
		}
		t := &Target{Kinesis: kinesis.NewFromConfig(cfg)}
		if !o.NoLeaseTable {
			store, err := lease.NewDynamoStore(ctx, dynamodb.NewFromConfig(cfg), o.App)
			if err != nil {
				return nil, fmt.Errorf("lease table %s: %w", o.App, err)
			}
			t.Store = store
		}
		return t, nil
	}
	return nil, fmt.Errorf("unknown target %q (memory or aws)", o.Target)
}

// EnsureStream creates the stream with the given shard count when it is
// missing, waits until it is ACTIVE, and returns its open shard count (which
// differs from shards when the stream already existed).
func (t *Target) EnsureStream(ctx context.Context, stream string, shards int) (int, error) {
	_, err := t.Kinesis.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(stream), ShardCount: aws.Int32(int32(shards))})
	var inUse *types.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return 0, fmt.Errorf("create stream %s: %w", stream, err)
	}
	w := kinesis.NewStreamExistsWaiter(t.Kinesis, func(wo *kinesis.StreamExistsWaiterOptions) {
		wo.MinDelay, wo.MaxDelay = 100*time.Millisecond, 2*time.Second
	})
	if err := w.Wait(ctx, &kinesis.DescribeStreamInput{StreamName: aws.String(stream)}, 5*time.Minute); err != nil {
		return 0, fmt.Errorf("stream %s: %w", stream, err)
	}
	sum, err := t.Kinesis.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
	if err != nil {
		return 0, fmt.Errorf("describe stream %s: %w", stream, err)
	}
	return int(aws.ToInt32(sum.StreamDescriptionSummary.OpenShardCount)), nil
}

// WaitBalanced waits until the consumers hold all shards between them with
// shares that differ by at most one, or until timeout (none if zero) or ctx
// ends, and returns how many shards each holds. Examples call it before producing so
// their figures show steady state rather than the initial lease hand-out.
func WaitBalanced(ctx context.Context, cs []*consumer.Consumer, shards int, timeout time.Duration) []int {
	var deadline <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		deadline = t.C
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		held := make([]int, len(cs))
		total, lo, hi := 0, shards, 0
		for i, c := range cs {
			held[i] = len(c.Shards())
			total += held[i]
			lo, hi = min(lo, held[i]), max(hi, held[i])
		}
		if total >= shards && hi-lo <= 1 {
			return held
		}
		select {
		case <-ctx.Done():
			return held
		case <-deadline:
			return held
		case <-tick.C:
		}
	}
}

// RunUntilDone runs c until ctx ends, calling progress every interval (and
// once at the end), then shuts it down gracefully within shutdownTimeout:
// processors finish and checkpoint what they completed and leases are
// released. Run itself gets a context that is never cancelled, so that the
// shutdown, not ctx, decides when processing stops. It returns Run's or
// Shutdown's error; ctx ending is not an error.
func RunUntilDone(ctx context.Context, c *consumer.Consumer, interval, shutdownTimeout time.Duration, progress func()) error {
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				progress()
			}
		}
	}()
	runErr := make(chan error, 1)
	go func() { runErr <- c.Run(context.WithoutCancel(ctx)) }()
	var err error
	select {
	case err = <-runErr:
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		err = c.Shutdown(sctx)
		cancel()
		if rerr := <-runErr; err == nil {
			err = rerr
		}
	}
	<-progressDone
	progress()
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		err = nil
	}
	return err
}

// ProduceDemo puts n JSON records ({"id","name","ts"}) into stream, every
// 50th malformed so that the examples' error paths (dead-letter table,
// error prefix) show, and waits for every outcome.
func ProduceDemo(ctx context.Context, kc producer.Client, stream string, n int, log *slog.Logger) error {
	if n <= 0 {
		return nil
	}
	p, err := producer.New(kc, stream, producer.Config{Logger: log})
	if err != nil {
		return err
	}
	base := rand.Int64N(1 << 40)
	for i := range n {
		data := fmt.Appendf(nil, `{"id":%d,"name":"demo-%d","ts":%q}`, base+int64(i), i, time.Now().UTC().Format(time.RFC3339Nano))
		if i%50 == 49 {
			data = []byte("not json " + strconv.Itoa(i))
		}
		if _, err := p.Put(ctx, strconv.Itoa(i), data); err != nil {
			_ = p.Close(ctx)
			return err
		}
	}
	if err := p.Close(ctx); err != nil {
		return fmt.Errorf("demo producer: %w", err)
	}
	log.Info("demo records produced", "records", n, "stream", stream)
	return nil
}
