// Status must not count a lease this worker has lost as held: with a
// processor slow to notice its context (a long batch), /status would show
// two workers processing the same shard.

package consumer_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/clock"
	"github.com/shardflow/shardflow/consumer"
	"github.com/shardflow/shardflow/kinesistest"
	"github.com/shardflow/shardflow/lease"
)

// slowProc blocks in ProcessRecords until released, as a long batch does.
type slowProc struct {
	in      chan struct{}
	release chan struct{}
}

func (p *slowProc) Initialize(context.Context, consumer.InitializeInput) error { return nil }
func (p *slowProc) ProcessRecords(_ context.Context, in consumer.ProcessRecordsInput) error {
	if len(in.Records) == 0 {
		return nil
	}
	p.in <- struct{}{}
	<-p.release
	return nil
}
func (p *slowProc) LeaseLost(context.Context, consumer.LeaseLostInput)         {}
func (p *slowProc) ShardEnded(context.Context, consumer.ShardEndedInput) error { return nil }
func (p *slowProc) ShutdownRequested(context.Context, consumer.ShutdownRequestedInput) error {
	return nil
}

type lostHook chan string

func (h lostHook) LeaseLost(key string) {
	select {
	case h <- key:
	default:
	}
}

// ShardReleased must not be called for a lost lease: LeaseLost was.
func (h lostHook) ShardReleased(key string) { panic("ShardReleased called for lost lease " + key) }

func TestStatusAfterLeaseLost(t *testing.T) {
	srv := kinesistest.New(kinesistest.Options{})
	srv.MustCreateStream("s", 1)
	store := lease.NewMemoryStore()
	clk := clock.NewFake(time.Unix(1_800_000_000, 0))
	p := &slowProc{in: make(chan struct{}, 1), release: make(chan struct{})}
	lost := make(lostHook, 1)
	c, err := consumer.New(srv, store, consumer.ProcessorFactoryFunc(func(string) consumer.RecordProcessor { return p }), consumer.Config{
		ApplicationName: "app", StreamName: "s", WorkerID: "w",
		InitialPosition:       consumer.InitialPosition{Type: consumer.TrimHorizon},
		IdleTimeBetweenReads:  consumer.MinIdleTimeBetweenReads,
		FailoverTime:          10 * time.Second,
		LeaseInitialTakeDelay: -1,
		Clock:                 clk,
		Metrics:               lost,
		Logger:                testLogger(t),
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { close(p.release); cancel(); <-done }()
	put(t, srv, "a")
	for len(p.in) == 0 {
		clk.Advance(100 * time.Millisecond)
		time.Sleep(time.Millisecond)
	}
	// Another worker takes the lease (as after a long pause of this one).
	ls, err := store.List(ctx)
	require.NoError(t, err)
	require.Len(t, ls, 1)
	_, err = store.Take(ctx, ls[0], "other")
	require.NoError(t, err)
	for len(lost) == 0 {
		clk.Advance(time.Second)
		time.Sleep(time.Millisecond)
	}
	st := c.Status()
	require.Zero(t, st.Leases, "the lease is other's now: %+v", st.Shards)
	require.Len(t, st.Shards, 1, "its pipeline still finishes its batch")
	require.Equal(t, consumer.ShardLost, st.Shards[0].State)
	require.Equal(t, "lost", st.Shards[0].State.String())
}
