package lease

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/checkpoint"
	"github.com/shardflow/shardflow/clock"
)

// manual builds a coordinator driven pass by pass (no Run) on a fake clock.
func manual(t *testing.T, store Store, cfg Config) (*Coordinator, *clock.Fake) {
	t.Helper()
	clk := clock.NewFake(time.Time{})
	if cfg.WorkerID == "" {
		cfg.WorkerID = "w1"
	}
	cfg.Clock = clk
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	c, err := NewCoordinator(store, cfg)
	require.NoError(t, err)
	return c, clk
}

func seed(t *testing.T, s Store, keys ...string) {
	t.Helper()
	for _, k := range keys {
		_, err := s.Create(context.Background(), Lease{Key: k, Checkpoint: checkpoint.TrimHorizon})
		require.NoError(t, err)
	}
}

// queued returns the events still in c's queue (Run is not running).
func queued(c *Coordinator) []Event {
	c.events.mu.Lock()
	defer c.events.mu.Unlock()
	return append([]Event(nil), c.events.q...)
}

func acquiredWriter(t *testing.T, c *Coordinator, key string) *LeaseWriter {
	t.Helper()
	for _, ev := range queued(c) {
		if ev.Type == Acquired && ev.Lease.Key == key {
			return ev.Writer
		}
	}
	t.Fatalf("no Acquired for %s", key)
	return nil
}

// LeaseWriter.check read the held lease's key without the lease's lock
// while another write replaced the lease under it (go test -race).
func TestLeaseWriterConcurrentUseIsRaceFree(t *testing.T) {
	ctx := context.Background()
	store := NewMemoryStore()
	seed(t, store, "k")
	c, _ := manual(t, store, Config{})
	c.takePass(ctx, true)
	w := acquiredWriter(t, c, "k")
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				_ = w.WritePendingCheckpoint(ctx, "k", checkpoint.At("1", int64(g*100+i)), nil)
			}
		}()
	}
	wg.Wait()
	require.Len(t, c.Held(), 1)
}

// gateStore blocks Take until the gate opens.
type gateStore struct {
	Store
	entered chan struct{}
	gate    chan struct{}
}

func (s *gateStore) Take(ctx context.Context, l Lease, owner string) (Lease, error) {
	select {
	case s.entered <- struct{}{}:
	default:
	}
	<-s.gate
	return s.Store.Take(ctx, l, owner)
}

type takePassSignal struct{ c chan TakeStats }

func (takePassSignal) RenewPass(RenewStats)   {}
func (m takePassSignal) TakePass(s TakeStats) { m.c <- s }

// A take in flight when ReleaseAll is called must not leave this worker
// holding (and owning in the table) a lease after ReleaseAll returned.
func TestReleaseAllWaitsForInFlightTake(t *testing.T) {
	mem := NewMemoryStore()
	seed(t, mem, "k")
	gs := &gateStore{Store: mem, entered: make(chan struct{}, 1), gate: make(chan struct{})}
	passes := takePassSignal{c: make(chan TakeStats, 16)}
	c, _ := manual(t, gs, Config{Metrics: passes})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	go func() {
		for range c.Events() {
		}
	}()
	<-gs.entered // the first take pass is taking "k"

	released := make(chan error, 1)
	go func() { released <- c.ReleaseAll(context.Background()) }()
	waitFor(t, c.drain.Load)
	close(gs.gate)
	require.NoError(t, <-released) // a hang is reported by -timeout
	<-passes.c                     // the take pass finished
	require.Empty(t, c.Held(), "nothing held after ReleaseAll")
	l, err := mem.Get(context.Background(), "k")
	require.NoError(t, err)
	require.Equal(t, "", l.Owner, "the lease is unowned in the table after ReleaseAll")
	cancel()
	require.NoError(t, <-done)
}

// DynamoDB rejects empty and duplicate string sets; an empty set must be
// omitted (not NULL), like an empty pendingCheckpointState.
func TestMarshalItemOmitsEmptySetsAndDedupes(t *testing.T) {
	av, err := MarshalItem(Lease{
		Key: "k", Checkpoint: checkpoint.TrimHorizon,
		ParentShardIDs: []string{}, ChildShardIDs: []string{}, PendingCheckpointState: []byte{},
	})
	require.NoError(t, err)
	require.Equal(t, map[string]string{
		"leaseKey": "S", "leaseCounter": "N", "ownerSwitchesSinceCheckpoint": "N",
		"checkpoint": "S", "checkpointSubSequenceNumber": "N",
	}, typesOf(av))

	av, err = MarshalItem(Lease{Key: "k", Checkpoint: checkpoint.TrimHorizon, ParentShardIDs: []string{"b", "a", "b"}})
	require.NoError(t, err)
	ss, ok := av[AttrParentShardID].(*types.AttributeValueMemberSS)
	require.True(t, ok)
	require.ElementsMatch(t, []string{"a", "b"}, ss.Value)

	// Both stores store the same lease for such input.
	in := Lease{Key: "k", Checkpoint: checkpoint.TrimHorizon, ParentShardIDs: []string{"b", "a", "b"}, PendingCheckpointState: []byte{}}
	back, err := UnmarshalItem(mustMarshal(t, in))
	require.NoError(t, err)
	require.Equal(t, normalize(in.Clone()), back)
}

func mustMarshal(t *testing.T, l Lease) map[string]types.AttributeValue {
	av, err := MarshalItem(l)
	require.NoError(t, err)
	return av
}

// Skipping a renewal because a checkpoint moved the counter recently must
// never let the lease run out before the next pass, whatever RenewInterval.
func TestRenewSkipNeverLetsLeaseExpire(t *testing.T) {
	ctx := context.Background()
	store := NewMemoryStore()
	seed(t, store, "k")
	c, clk := manual(t, store, Config{FailoverTime: 10 * time.Second, RenewInterval: 8 * time.Second})
	c.takePass(ctx, true)
	w := acquiredWriter(t, c, "k")
	for range 5 {
		clk.Advance(5 * time.Second)
		require.NoError(t, w.WriteCheckpoint(ctx, "k", checkpoint.TrimHorizon))
		clk.Advance(3 * time.Second)
		c.renewPass(ctx)
		clk.Advance(8 * time.Second)
		c.renewPass(ctx)
		require.Len(t, c.Held(), 1, "lease kept by renewals every 8s")
	}
}

// landThenFailStore applies the next write of the armed op, then reports a
// transient error, as a timed-out request that reached DynamoDB does.
type landThenFailStore struct {
	Store
	armed atomic.Value // string
}

var errTimeout = errors.New("request timed out")

func (s *landThenFailStore) fire(op string, l Lease, err error) (Lease, error) {
	if err == nil && s.armed.CompareAndSwap(op, "") {
		return Lease{}, errTimeout
	}
	return l, err
}

func (s *landThenFailStore) Renew(ctx context.Context, l Lease) (Lease, error) {
	got, err := s.Store.Renew(ctx, l)
	return s.fire("renew", got, err)
}

func (s *landThenFailStore) UpdateCheckpoint(ctx context.Context, l Lease, p checkpoint.Position) (Lease, error) {
	got, err := s.Store.UpdateCheckpoint(ctx, l, p)
	return s.fire("checkpoint", got, err)
}

func (s *landThenFailStore) Release(ctx context.Context, l Lease) (Lease, error) {
	got, err := s.Store.Release(ctx, l)
	return s.fire("release", got, err)
}

// A write that landed but reported a transient error (a timeout) leaves
// the lease one counter ahead of what the worker holds. The next write of a
// different kind must recognise the worker's own write instead of dropping
// a lease nobody else touched.
func TestLandedButFailedWriteDoesNotLoseLease(t *testing.T) {
	ctx := context.Background()
	setup := func(t *testing.T) (*Coordinator, *clock.Fake, *landThenFailStore, *LeaseWriter) {
		s := &landThenFailStore{Store: NewMemoryStore()}
		s.armed.Store("")
		seed(t, s, "k")
		c, clk := manual(t, s, Config{})
		c.takePass(ctx, true)
		return c, clk, s, acquiredWriter(t, c, "k")
	}
	ri := 10*time.Second/3 - 25*time.Millisecond

	t.Run("checkpoint landed, then renew", func(t *testing.T) {
		c, clk, s, w := setup(t)
		s.armed.Store("checkpoint")
		err := w.WriteCheckpoint(ctx, "k", checkpoint.At("5", 0))
		require.ErrorIs(t, err, errTimeout)
		require.NotErrorIs(t, err, checkpoint.ErrLeaseLost)
		clk.Advance(ri)
		c.renewPass(ctx)
		require.Len(t, c.Held(), 1, "own landed write is not a loss")
		require.NoError(t, w.WriteCheckpoint(ctx, "k", checkpoint.At("6", 0)))
		l, err := s.Get(ctx, "k")
		require.NoError(t, err)
		require.Equal(t, checkpoint.At("6", 0), l.Checkpoint)
		require.Equal(t, "w1", l.Owner)
	})
	t.Run("renew landed, then checkpoint", func(t *testing.T) {
		c, clk, s, w := setup(t)
		s.armed.Store("renew")
		clk.Advance(ri)
		c.renewPass(ctx)
		require.Len(t, c.Held(), 1)
		require.NoError(t, w.WriteCheckpoint(ctx, "k", checkpoint.At("5", 0)))
		require.Len(t, c.Held(), 1)
	})
	t.Run("renew landed, then release hands the lease over", func(t *testing.T) {
		c, clk, s, _ := setup(t)
		s.armed.Store("renew")
		clk.Advance(ri)
		c.renewPass(ctx)
		require.NoError(t, c.ReleaseAll(ctx))
		l, err := s.Get(ctx, "k")
		require.NoError(t, err)
		require.Equal(t, "", l.Owner, "released, not left owned until failover")
	})
	t.Run("landed checkpoint is not overwritten by an older one", func(t *testing.T) {
		c, _, s, w := setup(t)
		s.armed.Store("checkpoint")
		require.ErrorIs(t, w.WriteCheckpoint(ctx, "k", checkpoint.At("20", 0)), errTimeout)
		err := w.WriteCheckpoint(ctx, "k", checkpoint.At("15", 0))
		require.ErrorIs(t, err, checkpoint.ErrPositionBackwards)
		l, gerr := s.Get(ctx, "k")
		require.NoError(t, gerr)
		require.Equal(t, checkpoint.At("20", 0), l.Checkpoint)
		require.Len(t, c.Held(), 1)
	})
	t.Run("someone else's write is still a loss", func(t *testing.T) {
		c, _, s, w := setup(t)
		s.armed.Store("checkpoint")
		require.ErrorIs(t, w.WriteCheckpoint(ctx, "k", checkpoint.At("5", 0)), errTimeout)
		cur, err := s.Get(ctx, "k")
		require.NoError(t, err)
		_, err = s.Take(ctx, cur, "w2")
		require.NoError(t, err)
		require.ErrorIs(t, w.WriteCheckpoint(ctx, "k", checkpoint.At("6", 0)), checkpoint.ErrLeaseLost)
		require.Empty(t, c.Held())
	})
}

func TestFinishedIgnoresSentinelSubSequence(t *testing.T) {
	l, err := UnmarshalItem(map[string]types.AttributeValue{
		"leaseKey":                    &types.AttributeValueMemberS{Value: "k"},
		"leaseCounter":                &types.AttributeValueMemberN{Value: "1"},
		"checkpoint":                  &types.AttributeValueMemberS{Value: "SHARD_END"},
		"checkpointSubSequenceNumber": &types.AttributeValueMemberN{Value: "7"},
	})
	require.NoError(t, err)
	require.True(t, l.Finished())
}

// blockRenewStore blocks Renew until the gate opens.
type blockRenewStore struct {
	Store
	entered chan struct{}
	gate    chan struct{}
}

func (s *blockRenewStore) Renew(ctx context.Context, l Lease) (Lease, error) {
	s.entered <- struct{}{}
	<-s.gate
	return s.Store.Renew(ctx, l)
}

// Held must not wait for a lease's store write in flight (a slow renewal
// would otherwise stall whoever asks, e.g. a metrics exporter).
func TestHeldDoesNotWaitForStoreIO(t *testing.T) {
	ctx := context.Background()
	s := &blockRenewStore{Store: NewMemoryStore(), entered: make(chan struct{}, 1), gate: make(chan struct{})}
	seed(t, s, "k")
	c, clk := manual(t, s, Config{})
	c.takePass(ctx, true)
	clk.Advance(c.cfg.RenewInterval)
	renewed := make(chan struct{})
	go func() { c.renewPass(ctx); close(renewed) }()
	<-s.entered
	got := make(chan []Lease, 1)
	go func() { got <- c.Held() }()
	// Held returns while the renewal is still blocked (gate is closed
	// only after): blocking behind it would hang here.
	require.Equal(t, []string{"k"}, keys(<-got))
	close(s.gate)
	<-renewed
	require.Equal(t, int64(2), c.Held()[0].Counter)
}

// Expiry is watched on the local clock from the first sighting of a
// counter value: a lease owned by another worker and seen for the first
// time is live; it expires only strictly after FailoverTime unchanged.
func TestPlanExpiryEdges(t *testing.T) {
	c, clk := manual(t, NewMemoryStore(), Config{WorkerID: "me"})
	t0 := clk.Now()
	owned := Lease{Key: "a", Owner: "other", Counter: 7, Checkpoint: checkpoint.TrimHorizon}
	unowned := Lease{Key: "b", Counter: 3, Checkpoint: checkpoint.TrimHorizon}
	all := []Lease{owned, unowned}

	c.observe(all, t0)
	p := c.plan(all, t0, nil)
	require.Equal(t, []string{"b"}, keys(p.available), "first sighting: owned is live, unowned is available")
	require.Equal(t, 2, p.workers)

	at := t0.Add(c.cfg.FailoverTime)
	c.observe(all, at)
	p = c.plan(all, at, nil)
	require.Equal(t, []string{"b"}, keys(p.available), "exactly FailoverTime unchanged is not yet expired")

	at = at.Add(time.Nanosecond)
	c.observe(all, at)
	p = c.plan(all, at, nil)
	require.ElementsMatch(t, []string{"a", "b"}, keys(p.available), "strictly after FailoverTime it is")
	require.Equal(t, 1, p.workers, "an owner whose leases all expired is not a worker")

	// A counter change restarts the watch, on this worker's clock.
	owned.Counter++
	all = []Lease{owned, unowned}
	c.observe(all, at)
	p = c.plan(all, at.Add(c.cfg.FailoverTime), nil)
	require.Equal(t, []string{"b"}, keys(p.available))

	// So does a new owner at the same counter (a re-created lease).
	owned.Owner = "third"
	all = []Lease{owned, unowned}
	later := at.Add(c.cfg.FailoverTime)
	c.observe(all, later)
	p = c.plan(all, later.Add(c.cfg.FailoverTime), nil)
	require.Equal(t, []string{"b"}, keys(p.available))
}
