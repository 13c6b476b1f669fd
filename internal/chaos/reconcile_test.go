package chaos

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/checkpoint"
)

var t0 = time.Unix(1_700_000_000, 0)

// at is t0 plus n milliseconds.
func at(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }

// run builds journals in a few words.
type run struct {
	produced []Produced
	journals map[string]*Journal
	order    []string
	killed   map[string]time.Time
	parents  map[string][]string
}

func newRun() *run {
	return &run{journals: map[string]*Journal{}, killed: map[string]time.Time{}, parents: map[string][]string{}}
}

// put records that key's counter-th record was stored at shard/seq.
func (r *run) put(key string, counter int, shard string, seq int) Produced {
	p := Produced{ID: fmt.Sprintf("%s:%d", key, counter), Key: key, Counter: counter, ShardID: shard, SequenceNumber: fmt.Sprint(seq)}
	r.produced = append(r.produced, p)
	return p
}

func (r *run) add(proc string, e Entry) {
	worker := strings.Split(proc, "/")[0]
	j := r.journals[worker]
	if j == nil {
		j = &Journal{Worker: worker}
		r.journals[worker] = j
		r.order = append(r.order, worker)
	}
	e.Proc = proc
	j.Entries = append(j.Entries, e)
}

func (r *run) init(proc, shard string, t int) {
	r.add(proc, Entry{Time: at(t), Kind: Init, Shard: shard, Pos: checkpoint.TrimHorizon})
}

func (r *run) rec(proc string, p Produced, t int) {
	r.add(proc, Entry{Time: at(t), Kind: Record, Shard: p.ShardID, Pos: checkpoint.At(p.SequenceNumber, 0), Key: p.Key, Data: p.ID})
}

func (r *run) ckpt(proc string, p Produced, t int) {
	r.add(proc, Entry{Time: at(t), Kind: Checkpoint, Shard: p.ShardID, Pos: checkpoint.At(p.SequenceNumber, 0)})
}

func (r *run) event(proc, shard string, k Kind, t int) {
	r.add(proc, Entry{Time: at(t), Kind: k, Shard: shard})
}

func (r *run) reconcile() *Report {
	in := Input{Produced: r.produced, Killed: r.killed, Parents: r.parents}
	for _, w := range r.order {
		in.Journals = append(in.Journals, *r.journals[w])
	}
	return Reconcile(in)
}

func TestReconcileCleanRun(t *testing.T) {
	r := newRun()
	a, b := r.put("k1", 1, "s0", 10), r.put("k1", 2, "s0", 20)
	r.init("w0.1/1", "s0", 0)
	r.rec("w0.1/1", a, 1)
	r.rec("w0.1/1", b, 1)
	r.ckpt("w0.1/1", b, 2)
	r.event("w0.1/1", "s0", Shutdown, 3)
	rep := r.reconcile()
	require.Empty(t, rep.Problems(), rep.Summary())
	require.Equal(t, 2, rep.Processed)
	require.Empty(t, rep.Duplicates)
}

func TestReconcileMissingAndUnknown(t *testing.T) {
	r := newRun()
	a, b := r.put("k1", 1, "s0", 10), r.put("k1", 2, "s0", 20)
	failed := r.put("k1", 3, "s0", 0)
	r.produced[2].Failed = true
	r.init("w0.1/1", "s0", 0)
	r.rec("w0.1/1", a, 1)
	// b stored at 20 but only an extra copy at 25 was processed: still missing.
	extra := b
	extra.SequenceNumber = "25"
	r.rec("w0.1/1", extra, 2)
	r.rec("w0.1/1", Produced{ID: "nobody:1", Key: "nobody", ShardID: "s0", SequenceNumber: "30"}, 3)
	_ = failed
	rep := r.reconcile()
	require.Equal(t, []string{"k1:2 stored at s0@20"}, rep.Missing)
	require.Len(t, rep.Unknown, 1)
	require.Equal(t, 1, rep.FailedPuts)
	require.Len(t, rep.Problems(), 2)
}

// A worker processes a and b, checkpoints a, is killed; the next owner
// starts after the kill from a's checkpoint and processes b again.
func crashRun(nextInit int) *run {
	r := newRun()
	a, b := r.put("k1", 1, "s0", 10), r.put("k1", 2, "s0", 20)
	r.init("w0.1/1", "s0", 0)
	r.rec("w0.1/1", a, 1)
	r.ckpt("w0.1/1", a, 2)
	r.rec("w0.1/1", b, 3)
	r.killed["w0.1"] = at(100)
	r.init("w1.1/1", "s0", nextInit)
	r.rec("w1.1/1", b, 3300)
	r.ckpt("w1.1/1", b, 3301)
	return r
}

func TestReconcileDuplicateExplainedByCrash(t *testing.T) {
	rep := crashRun(3200).reconcile()
	require.Empty(t, rep.Problems(), rep.Summary())
	require.Equal(t, map[string]int{DupCrash: 1}, rep.Duplicates)
	require.Equal(t, []time.Duration{3100 * time.Millisecond}, rep.Resume)
	require.Zero(t, rep.Overlaps)
}

func TestReconcileUnexplainedDuplicates(t *testing.T) {
	t.Run("next owner started before the kill", func(t *testing.T) {
		rep := crashRun(2).reconcile()
		require.Equal(t, map[string]int{DupBeforeKill: 1}, rep.Duplicates)
		require.Len(t, rep.Problems(), 1)
		require.Equal(t, 1, rep.Overlaps, "w1 started at 2 while w0 worked until 3")
	})
	t.Run("stolen from a live owner", func(t *testing.T) {
		r := crashRun(3200)
		delete(r.killed, "w0.1")
		r.event("w0.1/1", "s0", Lost, 3250)
		r.journals["w1.1"].Entries = append([]Entry{{Time: at(3000), Kind: Start}}, r.journals["w1.1"].Entries...)
		rep := r.reconcile()
		require.Equal(t, map[string]int{DupLeaseLost: 1}, rep.Duplicates)
		require.Len(t, rep.Unexplained, 1)
		require.Zero(t, rep.JoinSteals, "no FailoverTime given")
		in := Input{Produced: r.produced, Journals: []Journal{*r.journals["w0.1"], *r.journals["w1.1"]}, FailoverTime: time.Second}
		require.Equal(t, 1, Reconcile(in).JoinSteals, "w1 took the lease 200ms after it started")
		in.FailoverTime = 100 * time.Millisecond
		require.Zero(t, Reconcile(in).JoinSteals)
	})
	t.Run("resumed behind a checkpoint", func(t *testing.T) {
		r := crashRun(3200)
		b := r.produced[1]
		r.ckpt("w0.1/1", b, 4) // w0 had checkpointed b before it was killed
		rep := r.reconcile()
		require.Equal(t, map[string]int{DupBehindCkpt: 1}, rep.Duplicates)
	})
	t.Run("twice in one ownership", func(t *testing.T) {
		r := newRun()
		a := r.put("k1", 1, "s0", 10)
		r.init("w0.1/1", "s0", 0)
		r.rec("w0.1/1", a, 1)
		r.rec("w0.1/1", a, 2)
		rep := r.reconcile()
		require.Equal(t, map[string]int{DupSameOwnership: 1}, rep.Duplicates)
		require.NotEmpty(t, rep.OrderViolations, "the same position twice is not in order either")
	})
	t.Run("old owner still processing after the shard moved", func(t *testing.T) {
		r := newRun()
		a := r.put("k1", 1, "s0", 10)
		r.init("w0.1/1", "s0", 0)
		r.init("w1.1/1", "s0", 5) // took the lease from the live w0
		r.rec("w1.1/1", a, 6)
		r.ckpt("w1.1/1", a, 7)
		r.rec("w0.1/1", a, 8) // w0's batch in flight, delivered late
		r.event("w0.1/1", "s0", Lost, 9)
		rep := r.reconcile()
		require.Equal(t, map[string]int{DupStaleOwner: 1}, rep.Duplicates)
		require.Equal(t, 1, rep.Overlaps)
	})
	t.Run("after a graceful shutdown", func(t *testing.T) {
		r := crashRun(3200)
		delete(r.killed, "w0.1")
		r.event("w0.1/1", "s0", Shutdown, 50)
		rep := r.reconcile()
		require.Equal(t, map[string]int{DupAfterShutdown: 1}, rep.Duplicates)
	})
}

func TestReconcileOrder(t *testing.T) {
	r := newRun()
	a, b := r.put("k1", 1, "s0", 20), r.put("k1", 2, "s0", 10) // stored out of Put order
	r.init("w0.1/1", "s0", 0)
	r.rec("w0.1/1", b, 1)
	r.rec("w0.1/1", a, 1)
	rep := r.reconcile()
	require.Len(t, rep.OrderViolations, 1)
	require.Contains(t, rep.OrderViolations[0], "key k1 counter 1 after 2")

	r = newRun()
	a, b = r.put("k1", 1, "s0", 10), r.put("k2", 1, "s0", 20)
	r.init("w0.1/1", "s0", 0)
	r.rec("w0.1/1", b, 1)
	r.rec("w0.1/1", a, 1) // shard order broken, keys each in order
	rep = r.reconcile()
	require.Len(t, rep.OrderViolations, 1)
	require.Contains(t, rep.OrderViolations[0], "s0@10/0 after s0@20/0")

	// Across ownerships the counter may start over (a redelivery).
	r = crashRun(3200)
	require.Empty(t, r.reconcile().OrderViolations)
}

func TestReconcileChildren(t *testing.T) {
	build := func(childInit int) *Report {
		r := newRun()
		r.parents["s1"] = []string{"s0"}
		a, c := r.put("k1", 1, "s0", 10), r.put("k1", 2, "s1", 100)
		r.init("w0.1/1", "s0", 0)
		r.rec("w0.1/1", a, 5)
		r.ckpt("w0.1/1", a, 6)
		r.event("w0.1/1", "s0", EndBegin, 10)
		r.event("w0.1/1", "s0", Ended, 11)
		r.init("w1.1/1", "s1", childInit)
		r.rec("w1.1/1", c, childInit+1)
		return r.reconcile()
	}
	require.Empty(t, build(12).Problems())
	rep := build(7) // after the parent's last record, before it ended
	require.Len(t, rep.ChildBeforeParent, 1)
	require.Contains(t, rep.ChildBeforeParent[0], "first reached ShardEnded")
	rep = build(3) // before the parent's last record too
	require.Len(t, rep.ChildBeforeParent, 2)
}

func TestJournalRoundTripAndTornLine(t *testing.T) {
	es := []Entry{
		{Time: at(1), Kind: Start, Data: "123"},
		{Time: at(2), Kind: Init, Proc: "w0.1/1", Shard: "shardId-000000000000", Pos: checkpoint.TrimHorizon},
		{Time: at(3), Kind: Record, Proc: "w0.1/1", Shard: "shardId-000000000000", Pos: checkpoint.At("49590338271490256608559692538361571095921575989136588898", 7), Key: "k01", Data: "k01:17"},
		{Time: at(4), Kind: Ended, Proc: "w0.1/1", Shard: "shardId-000000000000", Pos: checkpoint.ShardEnd},
		{Time: at(5), Kind: Lost, Proc: "w0.1/2", Shard: "shardId-000000000001"},
	}
	var b []byte
	for _, e := range es {
		b = AppendEntry(b, e)
	}
	path := filepath.Join(t.TempDir(), "j")
	full := len(b)
	b = append(b, AppendEntry(nil, es[2])[:20]...) // torn by a SIGKILL mid-write
	require.NoError(t, os.WriteFile(path, b, 0o644))
	tl := &tail{path: path}
	got, err := tl.read()
	require.NoError(t, err)
	require.Len(t, got, len(es))
	for i := range es {
		require.True(t, es[i].Time.Equal(got[i].Time))
		got[i].Time = es[i].Time
	}
	require.Equal(t, es, got)
	require.EqualValues(t, full, tl.off, "the torn line is left for later")

	// What is appended later is read incrementally.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	require.NoError(t, err)
	_, err = f.Write(append(b[:full], AppendEntry(nil, es[0])...))
	require.NoError(t, err)
	require.NoError(t, f.Close())
	got, err = tl.read()
	require.NoError(t, err)
	require.Len(t, got, len(es)+1)
}

func TestReconcileHandoverTime(t *testing.T) {
	r := newRun()
	a, b := r.put("k1", 1, "s0", 10), r.put("k1", 2, "s0", 20)
	r.init("w0.1/1", "s0", 0)
	r.rec("w0.1/1", a, 1)
	r.ckpt("w0.1/1", a, 2)
	r.event("w0.1/1", "s0", Shutdown, 100) // handed over
	r.init("w1.1/1", "s0", 340)
	r.rec("w1.1/1", b, 341)
	r.ckpt("w1.1/1", b, 342)
	rep := r.reconcile()
	require.Empty(t, rep.Problems(), rep.Summary())
	require.Equal(t, []time.Duration{240 * time.Millisecond}, rep.Handover)
	require.Contains(t, rep.Summary(), "graceful hand-over")
	require.Zero(t, rep.Overlaps)
}
