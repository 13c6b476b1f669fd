package consumer_test

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/checkpoint"
	"github.com/shardflow/shardflow/consumer"
	"github.com/shardflow/shardflow/kinesistest"
	"github.com/shardflow/shardflow/lease"
	"github.com/shardflow/shardflow/producer"
)

// msCountingStore counts lease store calls, for the lease cost figures.
type msCountingStore struct {
	lease.Store
	lists, gets, writes, creates, deletes atomic.Int64
}

func (s *msCountingStore) List(ctx context.Context) ([]lease.Lease, error) {
	s.lists.Add(1)
	return s.Store.List(ctx)
}
func (s *msCountingStore) Get(ctx context.Context, k string) (lease.Lease, error) {
	s.gets.Add(1)
	return s.Store.Get(ctx, k)
}
func (s *msCountingStore) Create(ctx context.Context, l lease.Lease) (bool, error) {
	s.creates.Add(1)
	return s.Store.Create(ctx, l)
}
func (s *msCountingStore) Delete(ctx context.Context, k string) error {
	s.deletes.Add(1)
	return s.Store.Delete(ctx, k)
}
func (s *msCountingStore) Renew(ctx context.Context, l lease.Lease) (lease.Lease, error) {
	s.writes.Add(1)
	return s.Store.Renew(ctx, l)
}
func (s *msCountingStore) Take(ctx context.Context, l lease.Lease, o string) (lease.Lease, error) {
	s.writes.Add(1)
	return s.Store.Take(ctx, l, o)
}
func (s *msCountingStore) Release(ctx context.Context, l lease.Lease) (lease.Lease, error) {
	s.writes.Add(1)
	return s.Store.Release(ctx, l)
}
func (s *msCountingStore) UpdateCheckpoint(ctx context.Context, l lease.Lease, p checkpoint.Position) (lease.Lease, error) {
	s.writes.Add(1)
	return s.Store.UpdateCheckpoint(ctx, l, p)
}

// msHarness runs workers of one multi-stream application. Record data is
// "id/stream.key/n", so the tracker reconciles every stream at once (ids
// are unique across streams, order is per key and so per shard) and each
// processor checks that the stream it was told (ProcessRecordsInput.Stream)
// is the one the record was written to.
type msHarness struct {
	t     *testing.T
	kc    consumer.Kinesis
	pc    producer.Client
	store *msCountingStore
	tr    *tracker
	cfg   consumer.Config

	mu        sync.Mutex
	set       []consumer.StreamConfig
	producers map[string]*producer.Producer
	perKey    map[string]int
	nextID    int
	keys      int
	produced  map[string]int

	// removed are the streams untracked; their records delivered after
	// that are re-deliveries (every one was processed before) and count
	// in afterRemoval, not in the tracker; lease losses of their leases
	// (deleted by the former-stream policy) count in removedLost.
	removed map[string]bool
	// streamCalls counts each worker's Streams calls (stream syncs).
	streamCalls map[string]int

	instances    atomic.Int64
	leaseLost    atomic.Int64
	removedLost  atomic.Int64
	afterRemoval atomic.Int64
	wrongSteam   atomic.Int64
}

func newMSHarness(t *testing.T, kc consumer.Kinesis, pc producer.Client, store lease.Store) *msHarness {
	h := &msHarness{t: t, kc: kc, pc: pc, store: &msCountingStore{Store: store}, tr: newTracker(0),
		producers: map[string]*producer.Producer{}, perKey: map[string]int{}, keys: 100, produced: map[string]int{},
		removed: map[string]bool{}, streamCalls: map[string]int{}}
	h.cfg = consumer.Config{
		ApplicationName:         "ms-app",
		Streams:                 h.streams,
		StreamSyncInterval:      200 * time.Millisecond,
		InitialPosition:         consumer.InitialPosition{Type: consumer.TrimHorizon},
		IdleTimeBetweenReads:    consumer.MinIdleTimeBetweenReads,
		FailoverTime:            time.Second,
		ShardSyncInterval:       time.Second,
		ParentShardPollInterval: 200 * time.Millisecond,
		ProcessorRetryBackoff:   consumer.Backoff{Initial: 10 * time.Millisecond, Max: 100 * time.Millisecond},
		ThrottleBackoff:         consumer.Backoff{Initial: 10 * time.Millisecond, Max: 200 * time.Millisecond},
		Logger:                  testLogger(t),
	}
	return h
}

func (h *msHarness) streams(context.Context) ([]consumer.StreamConfig, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.set), nil
}

func (h *msHarness) track(sc consumer.StreamConfig) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.set = append(h.set, sc)
}

// untrack removes a stream from the set and returns each worker's
// Streams call count at that moment.
func (h *msHarness) untrack(name string) map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.removed[name] = true
	h.set = slices.DeleteFunc(h.set, func(sc consumer.StreamConfig) bool { return sc.Name == name })
	return maps.Clone(h.streamCalls)
}

// syncedSince reports whether every worker of mark has called Streams at
// least twice since: its first stream sync after mark has finished.
func (h *msHarness) syncedSince(mark map[string]int) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, n := range mark {
		if h.streamCalls[id] < n+2 {
			return false
		}
	}
	return true
}

func (h *msHarness) producer(name string) *producer.Producer {
	if p := h.producers[name]; p != nil {
		return p
	}
	p, err := producer.New(h.pc, name, producer.Config{OrderedByPartitionKey: true, RecordTTL: time.Hour, RequestTimeout: time.Minute, Logger: testLogger(h.t)})
	require.NoError(h.t, err)
	h.t.Cleanup(func() { _ = p.Close(context.Background()) })
	h.producers[name] = p
	return p
}

// produce puts n records into each named stream and waits for them.
func (h *msHarness) produce(ctx context.Context, n int, streams ...string) {
	h.t.Helper()
	var futures []*producer.Future
	for _, st := range streams {
		p := h.producer(st)
		for range n {
			id := h.nextID
			h.nextID++
			key := st + "." + strconv.Itoa(id%h.keys)
			seq := h.perKey[key]
			h.perKey[key] = seq + 1
			f, err := p.Put(ctx, key, []byte(fmt.Sprintf("%d/%s/%d", id, key, seq)))
			require.NoError(h.t, err)
			futures = append(futures, f)
		}
		h.produced[st] += n
		require.NoError(h.t, p.Flush(ctx))
	}
	for _, f := range futures {
		_, err := f.Wait(ctx)
		require.NoError(h.t, err)
	}
}

type msProc struct {
	h    *msHarness
	inst int64
}

func (p *msProc) Initialize(context.Context, consumer.InitializeInput) error { return nil }
func (p *msProc) ProcessRecords(ctx context.Context, in consumer.ProcessRecordsInput) error {
	for _, r := range in.Records {
		if st, _, _ := strings.Cut(strings.Split(string(r.Data), "/")[1], "."); st != in.Stream.Name {
			p.h.wrongSteam.Add(1)
		}
		p.h.mu.Lock()
		removed := p.h.removed[in.Stream.Name]
		p.h.mu.Unlock()
		if removed {
			p.h.afterRemoval.Add(1)
			continue
		}
		p.h.tr.add(p.inst, r)
	}
	return in.Checkpointer.Checkpoint(ctx)
}
func (p *msProc) LeaseLost(_ context.Context, in consumer.LeaseLostInput) {
	p.h.mu.Lock()
	removed := p.h.removed[in.Stream.Name]
	p.h.mu.Unlock()
	if removed {
		p.h.removedLost.Add(1)
		return
	}
	p.h.leaseLost.Add(1)
}
func (p *msProc) ShardEnded(ctx context.Context, in consumer.ShardEndedInput) error {
	return in.Checkpointer.Checkpoint(ctx)
}
func (p *msProc) ShutdownRequested(ctx context.Context, in consumer.ShutdownRequestedInput) error {
	return in.Checkpointer.Checkpoint(ctx)
}

func (h *msHarness) start(id string, mod func(*consumer.Config)) *worker {
	h.t.Helper()
	cfg := h.cfg
	cfg.WorkerID = id
	if mod != nil {
		mod(&cfg)
	}
	if cfg.Streams != nil {
		h.mu.Lock()
		h.streamCalls[id] = 0
		h.mu.Unlock()
		cfg.Streams = func(ctx context.Context) ([]consumer.StreamConfig, error) {
			h.mu.Lock()
			h.streamCalls[id]++
			h.mu.Unlock()
			return h.streams(ctx)
		}
	}
	f := consumer.ProcessorFactoryFunc(func(string) consumer.RecordProcessor {
		return &msProc{h: h, inst: h.instances.Add(1)}
	})
	c, err := consumer.New(h.kc, h.store, f, cfg)
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

// leasesOf returns the leases of each stream (by stream name).
func (h *msHarness) leasesOf() map[string][]lease.Lease {
	ls, err := h.store.Store.List(context.Background())
	require.NoError(h.t, err)
	m := map[string][]lease.Lease{}
	for _, l := range ls {
		id, err := lease.ParseStreamIdentifier(l.StreamID)
		require.NoError(h.t, err, "lease %s has no multi-stream identifier", l.Key)
		require.Equal(h.t, lease.MultiStreamKey(l.StreamID, l.ShardID), l.Key)
		m[id.StreamName] = append(m[id.StreamName], l)
	}
	return m
}

func (h *msHarness) finish(ctx context.Context, workers ...*worker) {
	h.t.Helper()
	require.NoError(h.t, h.tr.waitUnique(ctx, h.nextID))
	for _, w := range workers {
		require.NoError(h.t, w.c.Shutdown(ctx))
		require.NoError(h.t, <-w.done)
		w.done <- nil
	}
	unique, total, dups, stored, problems := h.tr.counts()
	require.Empty(h.t, problems, "%d problems", h.tr.nProblems)
	require.Equal(h.t, h.nextID, unique, "lost = %d", h.nextID-unique)
	require.Zero(h.t, h.wrongSteam.Load(), "records delivered with the wrong stream")
	if h.leaseLost.Load() == 0 {
		// Leases moved only by graceful handoff or release: no record is
		// delivered twice from one stored copy. (The removed stream's
		// re-deliveries, whatever the timing, are in afterRemoval.)
		require.Zero(h.t, dups, "duplicates without a lease loss")
	}
	h.t.Logf("produced=%d per stream=%v consumed=%d unique=%d lost=%d duplicates=%d stored-twice=%d processors=%d leaseLost=%d removed-stream: leaseLost=%d redelivered=%d",
		h.nextID, h.produced, total, unique, h.nextID-unique, dups, stored, h.instances.Load(), h.leaseLost.Load(), h.removedLost.Load(), h.afterRemoval.Load())
	h.t.Logf("lease store calls: list=%d get=%d create=%d delete=%d writes(renew/take/release/checkpoint)=%d",
		h.store.lists.Load(), h.store.gets.Load(), h.store.creates.Load(), h.store.deletes.Load(), h.store.writes.Load())
}

// runMultiStream is the multi-stream end-to-end scenario: n streams on one
// lease table and three workers; a stream added mid-run, a split in the
// first stream, then a stream removed (its leases deleted after
// FormerStreamsDeleteAfter). Every record of every stream is processed, in
// order per key, and each processor knows its stream.
func runMultiStream(t *testing.T, ctx context.Context, h *msHarness, create func(name string, shards int), split func(name string), prefix string, streams, shards, perStream int) {
	names := make([]string, streams)
	for i := range names {
		names[i] = fmt.Sprintf("%s%d", prefix, i)
		create(names[i], shards)
		h.track(consumer.StreamConfig{Name: names[i]})
	}
	mod := func(c *consumer.Config) { c.FormerStreamsDeleteAfter = 300 * time.Millisecond }
	ws := []*worker{h.start("w0", mod), h.start("w1", mod), h.start("w2", mod)}
	h.produce(ctx, perStream/3, names...)

	// Added mid-run.
	added := prefix + "added"
	create(added, shards)
	h.track(consumer.StreamConfig{Name: added})
	all := append(slices.Clone(names), added)
	h.produce(ctx, perStream/3, all...)

	// Resharding in the first stream.
	split(names[0])
	h.produce(ctx, perStream-2*(perStream/3), all...)
	require.NoError(t, h.tr.waitUnique(ctx, h.nextID))

	// Removed: every record of it was processed; its leases go once it has
	// been missing for FormerStreamsDeleteAfter on every worker's clock.
	// Whatever the timing (a worker whose stream sync is late may still
	// shard-sync the stream and recreate leases another worker deleted),
	// once every worker has synced the set without it, no one recreates
	// them: wait for that, then for the deletion. Its records delivered
	// again meanwhile are allowed (afterRemoval).
	removed := names[len(names)-1]
	mark := h.untrack(removed)
	waitFor(t, func() bool { return h.syncedSince(mark) })
	waitFor(t, func() bool { return len(h.leasesOf()[removed]) == 0 })

	h.finish(ctx, ws...)
	by := h.leasesOf()
	require.NotContains(t, by, removed)
	// The split stream has its two children's leases; the parent's may
	// have been cleaned up already (both children checkpointed).
	children := 0
	for _, l := range by[names[0]] {
		if len(l.ParentShardIDs) > 0 {
			children++
		}
	}
	require.Equal(t, 2, children, "split stream: 2 child leases")
	require.Contains(t, []int{shards + 1, shards + 2}, len(by[names[0]]))
	require.Len(t, by[added], shards)
	leases := 0
	for _, ls := range by {
		leases += len(ls)
	}
	t.Logf("streams=%d of %d shards (+1 added, -1 removed) leases at end=%d", streams, shards, leases)
}

func splitOn(t *testing.T, srv *kinesistest.Server) func(string) {
	return func(name string) {
		ctx := context.Background()
		out, err := srv.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(name)})
		require.NoError(t, err)
		s := out.Shards[0]
		mid := midpoint(t, aws.ToString(s.HashKeyRange.StartingHashKey), aws.ToString(s.HashKeyRange.EndingHashKey))
		_, err = srv.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String(name), ShardToSplit: s.ShardId, NewStartingHashKey: aws.String(mid)})
		require.NoError(t, err)
	}
}

func TestE2EMultiStream(t *testing.T) {
	for _, streams := range []int{2, 5} {
		t.Run(strconv.Itoa(streams)+"streams", func(t *testing.T) {
			ctx := e2eContext(t)
			srv := kinesistest.New(kinesistest.Options{})
			h := newMSHarness(t, srv, srv, lease.NewMemoryStore())
			create := func(name string, shards int) { srv.MustCreateStream(name, shards) }
			runMultiStream(t, ctx, h, create, splitOn(t, srv), "s", streams, 2, recordCount(6000))
		})
	}
}

// Per-stream configuration: initial position per stream (TRIM_HORIZON,
// LATEST, AT_TIMESTAMP) and an enhanced fan-out consumer per stream, each
// registered on its stream under its configured name.
func TestMultiStreamPerStreamConfig(t *testing.T) {
	ctx := e2eContext(t)
	srv := kinesistest.New(kinesistest.Options{})
	kc := srv.Client()
	h := newMSHarness(t, kc, srv, lease.NewMemoryStore())
	for _, n := range []string{"trim", "latest", "ts"} {
		srv.MustCreateStream(n, 1)
	}
	// Records written before the consumer starts.
	h.produce(ctx, 50, "trim")
	before := h.nextID
	latest := consumer.InitialPosition{Type: consumer.Latest}
	atTS := consumer.InitialPosition{Type: consumer.AtTimestamp, Timestamp: time.Unix(1, 0)}
	h.track(consumer.StreamConfig{Name: "trim", ConsumerName: "efo-trim"})
	h.track(consumer.StreamConfig{Name: "latest", InitialPosition: &latest, ConsumerName: "efo-latest"})
	h.track(consumer.StreamConfig{Name: "ts", InitialPosition: &atTS})
	w := h.start("w0", func(c *consumer.Config) { c.EnhancedFanOut = true; c.ConsumerName = "efo-default" })
	waitFor(t, func() bool { return len(w.c.Shards()) == 3 })

	// Nothing was written to "latest" and "ts" yet: their leases still
	// hold the start position they were created with. "trim" was read from
	// the start (below).
	by := h.leasesOf()
	require.Equal(t, checkpoint.AtTimestamp, by["ts"][0].Checkpoint)
	require.Equal(t, checkpoint.Latest, by["latest"][0].Checkpoint)
	for st, name := range map[string]string{"trim": "efo-trim", "latest": "efo-latest", "ts": "efo-default"} {
		arn := *mustDescribe(t, srv, st).StreamARN
		_, err := srv.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{StreamARN: aws.String(arn), ConsumerName: aws.String(name)})
		require.NoError(t, err, "fan-out consumer %s on %s", name, st)
	}
	require.NoError(t, h.tr.waitUnique(ctx, before), "TRIM_HORIZON stream read from the start")

	// Status names each shard's stream.
	st := w.c.Status()
	require.Len(t, st.Shards, 3)
	streams := map[string]bool{}
	for _, sh := range st.Shards {
		require.Equal(t, sh.StreamID+":"+sh.ShardID, sh.LeaseKey)
		parts := strings.Split(sh.StreamID, ":")
		require.Len(t, parts, 3, sh.StreamID)
		streams[parts[1]] = true
	}
	require.Equal(t, map[string]bool{"trim": true, "latest": true, "ts": true}, streams)

	h.produce(ctx, 30, "trim", "ts")
	h.finish(ctx, w)
}

func mustDescribe(t *testing.T, srv *kinesistest.Server, name string) *types.StreamDescriptionSummary {
	out, err := srv.DescribeStreamSummary(context.Background(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
	require.NoError(t, err)
	return out.StreamDescriptionSummary
}

// A table as KCL for Java's multi-stream mode leaves it (keys
// account:stream:epoch:shardId with an application-chosen epoch, streamName
// and shardId attributes, owned by a KCL worker that is gone, checkpoints
// mid-shard) is taken over exactly: each shard resumes right after its
// checkpoint, nothing before it is delivered and nothing after it is
// missed, and the items keep KCL's attributes.
func TestMultiStreamKCLTableTakeover(t *testing.T) {
	ctx := e2eContext(t)
	srv := kinesistest.New(kinesistest.Options{})
	const epoch = 1600000000 // chosen by the KCL application, not the creation time
	seqs := map[string][]string{}
	for _, st := range []string{"orders", "payments"} {
		srv.MustCreateStream(st, 1)
		for i := range 10 {
			out, err := srv.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String(st), PartitionKey: aws.String("k"), Data: []byte(fmt.Sprintf("%s-%d", st, i))})
			require.NoError(t, err)
			seqs[st] = append(seqs[st], aws.ToString(out.SequenceNumber))
		}
	}
	store := lease.NewMemoryStore()
	checkpointAt := map[string]int{"orders": 3, "payments": 7}
	for st, i := range checkpointAt {
		id := fmt.Sprintf("123456789012:%s:%d", st, epoch)
		l, err := lease.UnmarshalItem(map[string]ddbtypes.AttributeValue{
			"leaseKey":                     &ddbtypes.AttributeValueMemberS{Value: id + ":shardId-000000000000"},
			"leaseOwner":                   &ddbtypes.AttributeValueMemberS{Value: "kcl-worker-gone"},
			"leaseCounter":                 &ddbtypes.AttributeValueMemberN{Value: "311"},
			"ownerSwitchesSinceCheckpoint": &ddbtypes.AttributeValueMemberN{Value: "0"},
			"checkpoint":                   &ddbtypes.AttributeValueMemberS{Value: seqs[st][i]},
			"checkpointSubSequenceNumber":  &ddbtypes.AttributeValueMemberN{Value: "0"},
			"streamName":                   &ddbtypes.AttributeValueMemberS{Value: id},
			"shardId":                      &ddbtypes.AttributeValueMemberS{Value: "shardId-000000000000"},
		})
		require.NoError(t, err)
		_, err = store.Create(ctx, l)
		require.NoError(t, err)
	}

	var mu sync.Mutex
	got := map[string][]string{}
	total := make(chan struct{}, 100)
	logs := &captureLogs{mu: &sync.Mutex{}, out: new([]map[string]string)}
	met := &keyMetrics{keys: map[string]bool{}}
	c, err := consumer.New(srv, store, consumer.ProcessStreamRecord(func(ctx context.Context, st consumer.StreamRef, shardID string, r consumer.Record) error {
		mu.Lock()
		got[st.Name] = append(got[st.Name], string(r.Data))
		mu.Unlock()
		total <- struct{}{}
		return nil
	}), consumer.Config{
		ApplicationName: "kcl-app",
		Streams: func(context.Context) ([]consumer.StreamConfig, error) {
			return []consumer.StreamConfig{
				{Name: "orders", ID: lease.StreamIdentifier{AccountID: "123456789012", StreamName: "orders", CreationEpoch: epoch}},
				{Name: "payments", ID: lease.StreamIdentifier{AccountID: "123456789012", StreamName: "payments", CreationEpoch: epoch}},
			}, nil
		},
		WorkerID: "sf-1", FailoverTime: time.Second, IdleTimeBetweenReads: consumer.MinIdleTimeBetweenReads,
		LeaseInitialTakeDelay: -1, Logger: slog.New(logs), Metrics: met,
	})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	for range (10 - 4) + (10 - 8) {
		<-total
	}
	require.NoError(t, c.Shutdown(ctx))
	require.NoError(t, <-done)
	require.Equal(t, []string{"orders-4", "orders-5", "orders-6", "orders-7", "orders-8", "orders-9"}, got["orders"])
	require.Equal(t, []string{"payments-8", "payments-9"}, got["payments"])
	// Metrics get the lease key, logs a stream attribute.
	require.Equal(t, map[string]bool{
		"123456789012:orders:1600000000:shardId-000000000000":   true,
		"123456789012:payments:1600000000:shardId-000000000000": true,
	}, met.keysSeen())
	streamsLogged := map[string]bool{}
	for _, rec := range logs.records() {
		if rec["msg"] == "processing shard" {
			require.Equal(t, "shardId-000000000000", rec["shard"])
			streamsLogged[rec["stream"]] = true
		}
	}
	require.Equal(t, map[string]bool{"orders": true, "payments": true}, streamsLogged)

	ls, err := store.List(ctx)
	require.NoError(t, err)
	require.Len(t, ls, 2, "no lease created beside KCL's")
	for _, l := range ls {
		id, err := lease.ParseStreamIdentifier(l.StreamID)
		require.NoError(t, err)
		require.Equal(t, checkpoint.At(seqs[id.StreamName][9], 0), l.Checkpoint)
		av, err := lease.MarshalItem(l)
		require.NoError(t, err)
		require.Equal(t, &ddbtypes.AttributeValueMemberS{Value: l.StreamID}, av["streamName"])
		require.Equal(t, &ddbtypes.AttributeValueMemberS{Value: "shardId-000000000000"}, av["shardId"])
	}
}

// keyMetrics records the shard identifiers Metrics receive.
type keyMetrics struct {
	consumer.NopMetrics
	mu   sync.Mutex
	keys map[string]bool
}

func (m *keyMetrics) RecordsProcessed(key string, _, _ int, _ time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.keys[key] = true
}

func (m *keyMetrics) keysSeen() map[string]bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.keys)
}

// captureLogs is a slog.Handler keeping each record's message and
// attributes (including those added With).
type captureLogs struct {
	mu    *sync.Mutex
	out   *[]map[string]string
	attrs []slog.Attr
}

func (h *captureLogs) Enabled(context.Context, slog.Level) bool { return true }
func (h *captureLogs) Handle(_ context.Context, r slog.Record) error {
	m := map[string]string{"msg": r.Message}
	for _, a := range h.attrs {
		m[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.String(); return true })
	h.mu.Lock()
	defer h.mu.Unlock()
	*h.out = append(*h.out, m)
	return nil
}
func (h *captureLogs) WithAttrs(as []slog.Attr) slog.Handler {
	return &captureLogs{mu: h.mu, out: h.out, attrs: append(slices.Clone(h.attrs), as...)}
}
func (h *captureLogs) WithGroup(string) slog.Handler { return h }
func (h *captureLogs) records() []map[string]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(*h.out)
}
