package consumer_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/clock"
	"github.com/shardflow/shardflow/consumer"
	"github.com/shardflow/shardflow/kinesistest"
	"github.com/shardflow/shardflow/lease"
)

// Enhanced fan-out through the real SDK client and the event-stream wire
// protocol: same processing and checkpoints as polling, subscriptions
// renewed when the service ends them (5 minutes on the server's clock),
// resharding followed.
func TestE2EEnhancedFanOut(t *testing.T) {
	ctx := e2eContext(t)
	n := recordCount(e2eRecords) / 2
	fake := clock.NewFake(time.Now())
	srv := kinesistest.New(kinesistest.Options{Clock: fake})
	h := newHarness(t, srv, srv.Client(), 4, n)
	mod := func(c *consumer.Config) { c.EnhancedFanOut = true }
	var subscribes atomic.Int64
	srv.SetHook(func(_ context.Context, op string) error {
		if op == kinesistest.OpSubscribeToShard {
			subscribes.Add(1)
		}
		return nil
	})
	ws := []*worker{h.start("w0", mod), h.start("w1", mod)}

	h.produce(ctx, n/4)
	require.NoError(t, h.tr.waitUnique(ctx, n/8))
	// Every subscription reaches its 5-minute end and must be renewed from
	// where it stopped.
	fake.Advance(5*time.Minute + time.Second)
	reshard(ctx, t, h, n-n/4)
	h.finish(ctx, ws...)
	require.GreaterOrEqual(t, h.shardsEnded.Load(), int64(3), "parents ended over fan-out too")

	require.Greater(t, subscribes.Load(), int64(2*4), "subscriptions were renewed")
	out, err := srv.ListStreamConsumers(ctx, &kinesis.ListStreamConsumersInput{StreamARN: aws.String(h.arn)})
	require.NoError(t, err)
	require.Len(t, out.Consumers, 1, "both workers share one registered consumer")
}

func TestNewRejectsFanOutWithoutSubscribe(t *testing.T) {
	srv := kinesistest.New(kinesistest.Options{})
	// *kinesistest.Server has no SubscribeToShard: only its Client() has.
	_, err := consumer.New(srv, lease.NewMemoryStore(), consumer.ProcessRecord(nil), consumer.Config{
		ApplicationName: "app", StreamName: "s", EnhancedFanOut: true,
	})
	require.ErrorIs(t, err, consumer.ErrFanOutUnsupported)
}

// The consumer renews each subscription on its own clock before the
// service's 5-minute limit, from the last continuation sequence number,
// with nothing lost or delivered twice across the switch. Consumer and
// service share one fake clock, advanced to 4m31s: short of the limit, so
// only the consumer can have started the new subscriptions.
func TestFanOutResubscribesBeforeFiveMinuteLimit(t *testing.T) {
	const shards = 4
	ctx := e2eContext(t)
	n := 4000
	fake := clock.NewFake(time.Now())
	srv := kinesistest.New(kinesistest.Options{Clock: fake})
	h := newHarness(t, srv, srv.Client(), shards, n)
	var subscribes atomic.Int64
	resubscribed := make(chan struct{})
	srv.SetHook(func(_ context.Context, op string) error {
		if op == kinesistest.OpSubscribeToShard && subscribes.Add(1) == 2*shards {
			close(resubscribed)
		}
		return nil
	})
	w := h.start("w0", func(c *consumer.Config) {
		c.EnhancedFanOut = true
		c.Clock = fake
		c.FailoverTime = 30 * time.Minute // leases stay put across the jump
		c.LeaseInitialTakeDelay = -1      // every shard at once: the clock stands still
	})

	// Every shard has delivered records, so every subscription is being
	// read and its renewal timer is armed.
	h.produce(ctx, n/2)
	require.NoError(t, h.tr.waitUnique(ctx, n/2))
	require.Equal(t, int64(shards), subscribes.Load())

	// Switch while records flow: the renewal comes once part of the second
	// half was delivered, usually while the rest is still being put.
	advanced := make(chan error, 1)
	go func() {
		err := h.tr.waitUnique(ctx, n/2+n/8)
		fake.Advance(5*time.Minute - 29*time.Second)
		advanced <- err
	}()
	h.produce(ctx, n-n/2)
	require.NoError(t, <-advanced)
	select {
	case <-resubscribed:
	case <-ctx.Done():
		t.Fatalf("subscriptions not renewed before the 5-minute limit: %d calls", subscribes.Load())
	}
	dups := h.finish(ctx, w)
	require.Zero(t, dups, "no record delivered twice across the switch")
	require.Zero(t, h.leaseLost.Load())
	require.Equal(t, int64(2*shards), subscribes.Load(), "one planned renewal per shard, no retries")
}
