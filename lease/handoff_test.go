package lease

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/checkpoint"
)

// recStore records every successful write: op, the lease key and who
// processes the lease after it (Processor), in order.
type recStore struct {
	Store
	mu  sync.Mutex
	ops []string
}

func (s *recStore) rec(op string, l Lease, err error) (Lease, error) {
	if err == nil {
		s.mu.Lock()
		s.ops = append(s.ops, fmt.Sprintf("%s %s owner=%s processor=%s", op, l.Key, l.Owner, l.Processor()))
		s.mu.Unlock()
	}
	return l, err
}

func (s *recStore) Renew(ctx context.Context, l Lease) (Lease, error) {
	got, err := s.Store.Renew(ctx, l)
	return s.rec("renew", got, err)
}

func (s *recStore) Take(ctx context.Context, l Lease, o string) (Lease, error) {
	got, err := s.Store.Take(ctx, l, o)
	return s.rec("take", got, err)
}

func (s *recStore) MarkHandoff(ctx context.Context, l Lease, next string) (Lease, error) {
	got, err := s.Store.MarkHandoff(ctx, l, next)
	return s.rec("mark", got, err)
}

func (s *recStore) UpdateCheckpoint(ctx context.Context, l Lease, pos checkpoint.Position) (Lease, error) {
	got, err := s.Store.UpdateCheckpoint(ctx, l, pos)
	return s.rec("checkpoint", got, err)
}

func (s *recStore) opsOn(key string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, op := range s.ops {
		var o, k string
		if _, err := fmt.Sscanf(op, "%s %s", &o, &k); err == nil && k == key {
			out = append(out, op)
		}
	}
	return out
}

// handoffFleet has w1 holding both leases of a 2-lease table, each
// checkpointed, and w2 joining: at w2's first balancing pass after watching
// the table for a failover time it asks for one lease. It returns the key
// of that lease once the mark is in the table.
func handoffFleet(t *testing.T, hold bool) (f *fleet, rs *recStore, key string) {
	return handoffFleetOn(t, NewMemoryStore(), hold)
}

func handoffFleetOn(t *testing.T, base Store, hold bool) (f *fleet, rs *recStore, key string) {
	rs = &recStore{Store: base}
	f = newFleet(t, rs, 2)
	f.holdHandoffs = hold
	w1 := f.start("w1")
	require.Len(t, w1.c.Held(), 2)
	for i, ev := range w1.eventsOf(Acquired) {
		require.NoError(t, ev.Writer.WriteCheckpoint(context.Background(), ev.Lease.Key, checkpoint.At(fmt.Sprint(10+i), 0)))
	}
	f.advance(time.Second)
	f.start("w2")
	f.advance(takeInterval)
	all, err := rs.List(context.Background())
	require.NoError(t, err)
	for _, l := range all {
		if l.InHandoff() {
			require.Empty(t, key, "one lease asked for")
			key = l.Key
			require.Equal(t, "w2", l.Owner)
			require.Equal(t, "w1", l.CheckpointOwner)
		}
	}
	if key == "" {
		// The holder may already have handed over within the same step.
		for _, l := range all {
			if l.Owner == "w2" {
				key = l.Key
			}
		}
	}
	require.NotEmpty(t, key, "w2 asked for a lease")
	return f, rs, key
}

// The holder finishes, checkpoints and hands over; the new owner starts
// from that checkpoint; the two never process the lease at once (every
// write of the old holder precedes the hand-over, every write of the new
// owner follows it).
func TestHandoffCompletes(t *testing.T) { testHandoffCompletes(t, NewMemoryStore()) }

func testHandoffCompletes(t *testing.T, base Store) {
	f, rs, key := handoffFleetOn(t, base, false)
	w1, w2 := f.workers["w1"], f.workers["w2"]
	f.advance(handoffTime)
	require.Equal(t, []string{key}, keys(w2.c.Held()))
	require.Len(t, w1.c.Held(), 1)
	f.requireConsistent()
	f.settle()

	require.Len(t, w1.eventsOf(HandoffRequested), 1, "%v", w1.events)
	waitFor(t, func() bool { return len(w1.eventsOf(Lost)) == 1 })
	lost := w1.eventsOf(Lost)[0]
	require.Equal(t, key, lost.Lease.Key)
	require.ErrorIs(t, lost.Err, ErrHandedOff)
	require.ErrorIs(t, lost.Err, ErrReleased)
	acq := w2.eventsOf(Acquired)
	require.Len(t, acq, 1)
	require.Equal(t, lost.Lease.Checkpoint, acq[0].Lease.Checkpoint, "starts from the holder's checkpoint")
	require.Zero(t, acq[0].Lease.OwnerSwitchesSinceCheckpoint, "completing a handoff is no owner switch (KCL 3.x)")

	ops := rs.opsOn(key)
	handover := -1
	for i, op := range ops {
		if op == fmt.Sprintf("take %s owner=w2 processor=w2", key) && handover < 0 {
			handover = i
		}
	}
	require.Positive(t, handover, "ops %v", ops)
	require.Contains(t, ops[handover-1:handover], fmt.Sprintf("renew %s owner=w2 processor=w1", key), "the holder renewed as checkpointOwner until it handed over: %v", ops)
	for _, op := range ops[:handover] {
		require.NotContains(t, op, "processor=w2", "w2 wrote nothing before the hand-over: %v", ops)
	}
	for _, op := range ops[handover:] {
		require.Contains(t, op, "processor=w2", "w1 wrote nothing after: %v", ops)
	}
	require.Equal(t, fmt.Sprintf("take %s owner=w2 processor=w2", key), ops[handover+1], "then w2 takes what was handed over")

	// Stable afterwards.
	f.advance(2 * takeInterval)
	require.Equal(t, map[string]int{"w1": 1, "w2": 1}, f.owners())
	require.Len(t, w1.eventsOf(Lost), 1)
}

// A holder that does not hand over (its processor never finishes) keeps the
// lease, renewing it, until HandoffTimeout after it noticed the mark; then it
// gives the lease up (ErrHandoffTimedOut: its pipeline is to stop) and stops
// renewing, and the new owner takes it only after that, at HandoffTimeout +
// FailoverTime after the mark: never while the holder still holds it.
func TestHandoffTimeoutFallsBackToTake(t *testing.T) {
	f, _, key := handoffFleet(t, true)
	w1, w2 := f.workers["w1"], f.workers["w2"]
	timeout := w2.c.Config().HandoffTimeout
	require.Equal(t, 30*time.Second, timeout, "KCL 3.x's default")
	f.advance(timeout - w1.c.Config().RenewInterval - time.Second)
	require.Empty(t, w2.c.Held(), "waits for the holder")
	require.Len(t, w1.c.Held(), 2, "the holder keeps it meanwhile")
	waitFor(t, func() bool { return len(w1.eventsOf(HandoffRequested)) == 1 })
	f.advance(w1.c.Config().RenewInterval + time.Second)
	require.NotContains(t, keys(w1.c.Held()), key, "the holder gave up at its deadline")
	waitFor(t, func() bool { return len(w1.eventsOf(Lost)) == 1 })
	require.ErrorIs(t, w1.eventsOf(Lost)[0].Err, ErrHandoffTimedOut, "given up, not handed over")
	require.Empty(t, w2.c.Held(), "the new owner waits a failover time more")
	f.advance(failover + time.Second)
	require.Equal(t, []string{key}, keys(w2.c.Held()))
	f.settle()
	f.requireConsistent()
}

// A holder that dies while handing over stops renewing: the lease expires
// and is taken after FailoverTime, well before HandoffTimeout.
func TestHandoffHolderDies(t *testing.T) {
	f, _, key := handoffFleet(t, true)
	f.advance(handoffTime)
	waitFor(t, func() bool { return len(f.workers["w1"].eventsOf(HandoffRequested)) == 1 })
	f.stop("w1")
	w2 := f.workers["w2"]
	f.advance(2*failover + time.Second)
	require.Less(t, handoffTime+2*failover+time.Second, w2.c.Config().HandoffTimeout)
	require.Contains(t, keys(w2.c.Held()), key)
	require.Len(t, w2.c.Held(), 2, "and the dead worker's other lease")
}

// A wanter that stops before the hand-over withdraws its request: the
// holder keeps the lease, never losing it.
func TestHandoffCancelledByStoppingWanter(t *testing.T) {
	f, rs, key := handoffFleet(t, true)
	w1, w2 := f.workers["w1"], f.workers["w2"]
	require.NoError(t, w2.c.ReleaseAll(context.Background()))
	f.stop("w2")
	l, err := rs.Get(context.Background(), key)
	require.NoError(t, err)
	require.Equal(t, "w1", l.Owner)
	require.False(t, l.InHandoff())
	f.advance(2 * takeInterval)
	require.Len(t, w1.c.Held(), 2)
	require.Empty(t, w1.eventsOf(Lost))
	f.requireConsistent()
}

// Two workers asking for the same lease: the first mark wins, the second
// fails its condition; neither takes it from the holder.
func TestHandoffTwoWanters(t *testing.T) {
	ctx := context.Background()
	s := NewMemoryStore()
	_, err := s.Create(ctx, Lease{Key: "k", Checkpoint: checkpoint.TrimHorizon})
	require.NoError(t, err)
	l, err := s.Get(ctx, "k")
	require.NoError(t, err)
	held, err := s.Take(ctx, l, "w1")
	require.NoError(t, err)
	_, err = s.MarkHandoff(ctx, held, "w2")
	require.NoError(t, err)
	_, err = s.MarkHandoff(ctx, held, "w3")
	require.ErrorIs(t, err, ErrConflict)
	cur, err := s.Get(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, "w2", cur.Owner)
	require.Equal(t, "w1", cur.Processor())
}

// A marked lease as KCL workers read it. KCL 3.x: leaseOwner is the next
// owner, checkpointOwner the holder (its shutdownRequested), counter
// unchanged. KCL 2.x (which knows neither checkpointOwner nor handoffs):
// owned by the next owner and live (the holder keeps moving the counter),
// so a KCL 2.x worker neither takes it nor counts it twice.
func TestHandoffItemAsKCLWorkersReadIt(t *testing.T) {
	ctx := context.Background()
	s := NewMemoryStore()
	_, err := s.Create(ctx, Lease{Key: "shardId-000000000001", Checkpoint: checkpoint.At("42", 0)})
	require.NoError(t, err)
	l, err := s.Get(ctx, "shardId-000000000001")
	require.NoError(t, err)
	held, err := s.Take(ctx, l, "w1")
	require.NoError(t, err)
	m, err := s.MarkHandoff(ctx, held, "w2")
	require.NoError(t, err)
	item, err := MarshalItem(m)
	require.NoError(t, err)
	require.Equal(t, &types.AttributeValueMemberS{Value: "w2"}, item[AttrLeaseOwner])
	require.Equal(t, &types.AttributeValueMemberS{Value: "w1"}, item[AttrCheckpointOwner])
	require.Equal(t, &types.AttributeValueMemberN{Value: "1"}, item[AttrLeaseCounter])
	require.Equal(t, &types.AttributeValueMemberS{Value: "42"}, item[AttrCheckpoint])

	// A KCL 2.x reader ignores checkpointOwner.
	kcl2 := map[string]types.AttributeValue{}
	for k, v := range item {
		if k != AttrCheckpointOwner {
			kcl2[k] = v
		}
	}
	back, err := UnmarshalItem(kcl2)
	require.NoError(t, err)
	require.Equal(t, "w2", back.Owner)
	require.False(t, back.InHandoff())

	// The holder's renewal moves the counter, which is all a KCL 2.x
	// worker looks at for expiry.
	r, err := s.Renew(ctx, m)
	require.NoError(t, err)
	require.Equal(t, int64(2), r.Counter)
	require.Equal(t, "w1", r.CheckpointOwner)
}
