package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/checkpoint"
	"github.com/shardflow/shardflow/consumer"
	"github.com/shardflow/shardflow/internal/itest"
	"github.com/shardflow/shardflow/kinesistest"
	"github.com/shardflow/shardflow/lease"
	"github.com/shardflow/shardflow/producer"
)

// testLogger discards logs unless SHARDFLOW_TEST_LOG is set (to a level:
// debug, info, warn).
func testLogger(t testing.TB) *slog.Logger {
	lv := os.Getenv("SHARDFLOW_TEST_LOG")
	if lv == "" {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(lv))
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// tracker reconciles what was produced with what the processors saw.
// Record data is "id/key/n": n counts the records of key in Put order.
//
// A record can be stored twice in the stream, at two positions: a Put
// whose response was lost (a timeout on a slow emulator) is retried and
// both copies land. That is the producer's documented ambiguity, not a
// consumer fault, so the tracker tells deliveries apart by position: the
// same position delivered twice by one processor is a fault; another copy
// of a record is a stored duplicate.
type tracker struct {
	mu         sync.Mutex
	target     int
	deliverer  map[int]int64                 // id -> processor instance that first delivered it
	byPosition map[checkpoint.Position]int64 // position -> processor instance that last delivered it
	nextN      map[string]int
	unique     int
	total      int
	legalDups  int
	storedDups int      // deliveries of a second stored copy of a record
	problems   []string // illegal duplicates and order violations (the first 20)
	nProblems  int
	progress   chan struct{}
}

func newTracker(target int) *tracker {
	return &tracker{target: target, deliverer: make(map[int]int64), byPosition: make(map[checkpoint.Position]int64), nextN: make(map[string]int), progress: make(chan struct{})}
}

func (tr *tracker) add(inst int64, r consumer.Record) {
	data := r.Data
	parts := strings.Split(string(data), "/")
	if len(parts) != 3 {
		tr.problem("malformed record %q", data)
		return
	}
	id, _ := strconv.Atoi(parts[0])
	n, _ := strconv.Atoi(parts[2])
	key := parts[1]
	pos := r.Position()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.total++
	prevAtPos, seenAtPos := tr.byPosition[pos]
	tr.byPosition[pos] = inst
	if _, ok := tr.deliverer[id]; ok {
		switch {
		case seenAtPos && prevAtPos == inst:
			tr.addProblemLocked("record %d at %s delivered twice by processor %d (no lease move)", id, pos, inst)
		case !seenAtPos:
			tr.storedDups++ // another stored copy (an ambiguous Put retried)
		default:
			tr.legalDups++
		}
		return
	}
	tr.deliverer[id] = inst
	if want := tr.nextN[key]; n != want {
		tr.addProblemLocked("key %s: record n=%d first delivered while n=%d was expected", key, n, want)
	}
	tr.nextN[key] = n + 1
	tr.unique++
	close(tr.progress)
	tr.progress = make(chan struct{})
}

func (tr *tracker) problem(format string, a ...any) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.addProblemLocked(format, a...)
}

func (tr *tracker) addProblemLocked(format string, a ...any) {
	tr.nProblems++
	if len(tr.problems) < 20 {
		tr.problems = append(tr.problems, fmt.Sprintf(format, a...))
	}
}

// waitUnique blocks until n distinct records were delivered.
func (tr *tracker) waitUnique(ctx context.Context, n int) error {
	for {
		tr.mu.Lock()
		u, ch := tr.unique, tr.progress
		tr.mu.Unlock()
		if u >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d unique records, have %d: %w", n, u, ctx.Err())
		case <-ch:
		}
	}
}

func (tr *tracker) counts() (unique, total, dups, stored int, problems []string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.unique, tr.total, tr.legalDups, tr.storedDups, append([]string(nil), tr.problems...)
}

// testProc is the processors' implementation: it records every record and
// checkpoints after each batch. fail, when set, may fail a call.
type testProc struct {
	h     *harness
	inst  int64
	shard string
	calls int
}

func (p *testProc) Initialize(context.Context, consumer.InitializeInput) error { return nil }

func (p *testProc) ProcessRecords(ctx context.Context, in consumer.ProcessRecordsInput) error {
	p.calls++
	if f := p.h.fail; f != nil {
		if err := f(p.shard, p.calls, in.Records); err != nil {
			return err
		}
	}
	for _, r := range in.Records {
		p.h.tr.add(p.inst, r)
	}
	return in.Checkpointer.Checkpoint(ctx)
}

func (p *testProc) LeaseLost(context.Context, consumer.LeaseLostInput) { p.h.leaseLost.Add(1) }

func (p *testProc) ShardEnded(ctx context.Context, in consumer.ShardEndedInput) error {
	p.h.shardsEnded.Add(1)
	return in.Checkpointer.Checkpoint(ctx)
}

func (p *testProc) ShutdownRequested(ctx context.Context, in consumer.ShutdownRequestedInput) error {
	p.h.shutdowns.Add(1)
	return in.Checkpointer.Checkpoint(ctx)
}

// harness runs workers of one application against one in-memory stream.
type harness struct {
	t      *testing.T
	srv    *kinesistest.Server
	kc     consumer.Kinesis
	store  lease.Store
	stream string
	arn    string
	tr     *tracker
	cfg    consumer.Config
	fail   func(shard string, call int, recs []consumer.Record) error

	instances   atomic.Int64
	leaseLost   atomic.Int64
	shardsEnded atomic.Int64
	shutdowns   atomic.Int64

	producer *producer.Producer
	perKey   map[string]int
	nextID   int
	keys     int
}

type worker struct {
	c      *consumer.Consumer
	cancel context.CancelFunc
	done   chan error
}

func newHarness(t *testing.T, srv *kinesistest.Server, kc consumer.Kinesis, shards, records int) *harness {
	t.Helper()
	arn := srv.MustCreateStream("e2e", shards)
	h := newHarnessOn(t, kc, srv, lease.NewMemoryStore(), "e2e", records)
	h.srv, h.arn = srv, arn
	return h
}

// newHarnessOn runs against any Kinesis (the stream must exist) and store.
func newHarnessOn(t *testing.T, kc consumer.Kinesis, pc producer.Client, store lease.Store, stream string, records int) *harness {
	t.Helper()
	h := &harness{
		t:      t,
		kc:     kc,
		store:  store,
		stream: stream,
		tr:     newTracker(records),
		perKey: make(map[string]int),
		keys:   500,
	}
	h.cfg = consumer.Config{
		ApplicationName:         "e2e-app",
		StreamName:              h.stream,
		InitialPosition:         consumer.InitialPosition{Type: consumer.TrimHorizon},
		IdleTimeBetweenReads:    consumer.MinIdleTimeBetweenReads,
		FailoverTime:            time.Second,
		ShardSyncInterval:       2 * time.Second,
		ParentShardPollInterval: 200 * time.Millisecond,
		ProcessorRetryBackoff:   consumer.Backoff{Initial: 10 * time.Millisecond, Max: 100 * time.Millisecond},
		ThrottleBackoff:         consumer.Backoff{Initial: 10 * time.Millisecond, Max: 200 * time.Millisecond},
		Logger:                  testLogger(t),
	}
	// Every Put must succeed however slow the machine or emulator: records
	// live (and calls may take) far longer than any test runs. A call
	// that times out anyway is retried and may store a record twice,
	// which the tracker tells apart.
	p, err := producer.New(pc, h.stream, producer.Config{
		OrderedByPartitionKey: true,
		RecordTTL:             time.Hour,
		RequestTimeout:        time.Minute,
		Logger:                testLogger(t),
	})
	require.NoError(t, err)
	h.producer = p
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return h
}

func (h *harness) factory() consumer.ProcessorFactory {
	return consumer.ProcessorFactoryFunc(func(shardID string) consumer.RecordProcessor {
		return &testProc{h: h, inst: h.instances.Add(1), shard: shardID}
	})
}

func (h *harness) start(id string, mod func(*consumer.Config)) *worker {
	h.t.Helper()
	cfg := h.cfg
	cfg.WorkerID = id
	if mod != nil {
		mod(&cfg)
	}
	c, err := consumer.New(h.kc, h.store, h.factory(), cfg)
	require.NoError(h.t, err)
	ctx, cancel := context.WithCancel(context.Background())
	w := &worker{c: c, cancel: cancel, done: make(chan error, 1)}
	go func() { w.done <- c.Run(ctx) }()
	h.t.Cleanup(func() {
		cancel()
		<-w.done
	})
	return w
}

// produce puts n more records (spread over the keys, in order per key) and
// flushes them; every Put must succeed.
func (h *harness) produce(ctx context.Context, n int) {
	h.t.Helper()
	futures := make([]*producer.Future, 0, n)
	for i := 0; i < n; i++ {
		id := h.nextID
		h.nextID++
		key := "k" + strconv.Itoa(id%h.keys)
		seq := h.perKey[key]
		h.perKey[key] = seq + 1
		f, err := h.producer.Put(ctx, key, []byte(fmt.Sprintf("%d/%s/%d", id, key, seq)))
		require.NoError(h.t, err)
		futures = append(futures, f)
	}
	require.NoError(h.t, h.producer.Flush(ctx))
	for _, f := range futures {
		_, err := f.Wait(ctx)
		require.NoError(h.t, err)
	}
}

// finish waits for every produced record, shuts the given workers down and
// reconciles: nothing lost, no order violations, duplicates only after a
// lease moved.
func (h *harness) finish(ctx context.Context, workers ...*worker) (dups int) {
	h.t.Helper()
	if err := h.tr.waitUnique(ctx, h.nextID); err != nil {
		h.dumpLeases()
		h.t.Fatal(err)
	}
	for _, w := range workers {
		require.NoError(h.t, w.c.Shutdown(ctx))
		require.NoError(h.t, <-w.done)
		w.done <- nil // for the cleanup
	}
	unique, total, dups, stored, problems := h.tr.counts()
	require.Empty(h.t, problems, "%d problems", h.tr.nProblems)
	require.Equal(h.t, h.nextID, unique, "lost = %d", h.nextID-unique)
	h.t.Logf("produced=%d consumed=%d unique=%d lost=%d duplicates=%d stored-twice=%d processors=%d leaseLost=%d shardsEnded=%d",
		h.nextID, total, unique, h.nextID-unique, dups, stored, h.instances.Load(), h.leaseLost.Load(), h.shardsEnded.Load())
	return dups
}

func (h *harness) dumpLeases() {
	ls, err := h.store.List(context.Background())
	if err != nil {
		h.t.Logf("list leases: %v", err)
		return
	}
	for _, l := range ls {
		h.t.Logf("lease %s owner=%q counter=%d checkpoint=%s parents=%v", l.Key, l.Owner, l.Counter, l.Checkpoint, l.ParentShardIDs)
	}
}

// owners returns the owner of each lease that still needs processing.
func (h *harness) owners() map[string]string {
	ls, err := h.store.List(context.Background())
	require.NoError(h.t, err)
	m := make(map[string]string)
	for _, l := range ls {
		if !l.Finished() {
			m[l.Key] = l.Owner
		}
	}
	return m
}

// recordCount scales an end-to-end test's record count: a tenth under
// -short, three times on the soak path (itest.Soak, CI's long step).
func recordCount(full int) int {
	switch {
	case itest.Soak():
		return 3 * full
	case testing.Short():
		return full / 10
	}
	return full
}

var errInjected = errors.New("injected processor failure")

// waitFor polls cond until it holds, however long that takes: a slow
// machine makes it wait longer, never fail. A condition that never holds
// is reported by the test binary's -timeout, with every goroutine's stack.
func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	for !cond() {
		time.Sleep(time.Millisecond)
	}
}
