package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"math/big"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/checkpoint"
	"github.com/shardflow/shardflow/clock"
	"github.com/shardflow/shardflow/consumer"
	"github.com/shardflow/shardflow/examples/internal/target"
	"github.com/shardflow/shardflow/kinesistest"
	"github.com/shardflow/shardflow/lease"
	"github.com/shardflow/shardflow/producer"
)

// e2eKinesis is what the end-to-end scenario needs from a Kinesis: the
// consumer's and producer's calls, SplitShard and MergeShards. *kinesis.Client (for
// kinesalite) and *kinesistest.Server satisfy it.
type e2eKinesis interface {
	consumer.Kinesis
	producer.Client
	SplitShard(ctx context.Context, in *kinesis.SplitShardInput, optFns ...func(*kinesis.Options)) (*kinesis.SplitShardOutput, error)
	MergeShards(ctx context.Context, in *kinesis.MergeShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.MergeShardsOutput, error)
}

type e2eEnv struct {
	kinesis e2eKinesis
	store   lease.Store
	stream  string // already created with 2 shards
	app     string
	// records per phase (before the crash, after the reshard)
	phase1, phase2 int
}

func TestEndToEndCrashAndReshard(t *testing.T) {
	srv := kinesistest.New(kinesistest.Options{})
	t.Cleanup(func() { srv.Close() })
	srv.MustCreateStream("orders", 2)
	runE2E(t, e2eEnv{kinesis: srv, store: lease.NewMemoryStore(), stream: "orders", app: "lake-test", phase1: 1500, phase2: 3000})
}

const e2eSchema = "id:bigint,name:string,ts:timestamp"

// runE2E produces records (some malformed), runs the sink with two
// workers, kills one between an upload and its checkpoint, splits a shard,
// produces more, merges the two children, produces more, and then reads every object back and queries the lake with
// DuckDB: every good record exactly once, every bad one in the error prefix.
func runE2E(t *testing.T, env e2eEnv) {
	ctx, cancelAll := context.WithCancel(t.Context()) // go test -timeout is the only bound
	defer cancelAll()
	client := fakeS3(t, bucket)
	schema, err := ParseSchema(e2eSchema)
	require.NoError(t, err)

	var (
		mu   sync.Mutex
		good = map[int64]bool{}  // ids of good records produced
		bad  = map[string]bool{} // raw data of bad records produced
		next int64
	)
	produce := func(n int) {
		// KPL aggregates of up to 25 user records, so keys and cuts involve
		// sub-sequence numbers.
		p, err := producer.New(env.kinesis, env.stream, producer.Config{AggregationMaxCount: 25, Logger: quietLogger()})
		require.NoError(t, err)
		pad := strings.Repeat("p", 300)
		for range n {
			mu.Lock()
			id := next
			next++
			var data string
			switch {
			case id%41 == 40:
				data = "garbage " + strconv.FormatInt(id, 10)
				bad[data] = true
			case id%41 == 20:
				data = fmt.Sprintf(`{"id":"not-a-number-%d","name":"x"}`, id)
				bad[data] = true
			default:
				data = fmt.Sprintf(`{"id":%d,"name":"n%d","ts":"2026-12-01T07:00:00Z","pad":%q}`, id, id, pad)
				good[id] = true
			}
			mu.Unlock()
			_, err := p.Put(ctx, strconv.FormatInt(id%97, 10), []byte(data))
			require.NoError(t, err)
		}
		require.NoError(t, p.Close(ctx))
	}
	produce(env.phase1)

	// Two workers, each with its own sink, S3 wrapper and clock. Worker 1
	// dies right after its first data object landed once both workers hold
	// a shard: the upload is in S3,
	// the checkpoint is not, and from then on it does nothing.
	type worker struct {
		sink   *Sink
		cs     *countingS3
		clk    *clock.Fake
		c      *consumer.Consumer
		cancel context.CancelFunc
		done   chan error
	}
	var (
		crashMu    sync.Mutex
		armed      bool // set once both workers hold a shard
		crashed    bool
		crashedKey string
	)
	newWorker := func(id string, crash bool) *worker {
		w := &worker{cs: &countingS3{S3: client}, clk: clock.NewFake(time.Now()), done: make(chan error, 1)}
		wctx, cancel := context.WithCancel(ctx)
		w.cancel = cancel
		if crash {
			w.cs.before = func(op, key string) error {
				crashMu.Lock()
				defer crashMu.Unlock()
				if crashed {
					return errS3Down // a dead worker reaches nothing
				}
				return nil
			}
			w.cs.after = func(op, key string) error {
				crashMu.Lock()
				defer crashMu.Unlock()
				if op == "PutObject" && strings.HasSuffix(key, ".parquet") && armed && !crashed {
					crashed, crashedKey = true, key
					cancel()
					return fmt.Errorf("worker %s killed after uploading %s", id, key)
				}
				return nil
			}
		}
		var err error
		w.sink, err = NewSink(w.cs, Config{Bucket: bucket, Partitioning: PartitionHive, Schema: schema,
			BufferSize: MinBufferSize, BufferInterval: MinBufferInterval, Clock: w.clk, Logger: quietLogger()})
		require.NoError(t, err)
		w.c, err = consumer.New(env.kinesis, env.store, w.sink.Factory(), ConsumerConfig(consumer.Config{
			ApplicationName:         env.app,
			StreamName:              env.stream,
			WorkerID:                id,
			InitialPosition:         consumer.InitialPosition{Type: consumer.TrimHorizon},
			MaxRecords:              40,
			IdleTimeBetweenReads:    consumer.MinIdleTimeBetweenReads,
			FailoverTime:            2 * time.Second,
			ShardSyncInterval:       time.Second,
			ParentShardPollInterval: 500 * time.Millisecond,
			ProcessorRetryBackoff:   consumer.Backoff{Initial: 50 * time.Millisecond, Max: 200 * time.Millisecond},
			Logger:                  quietLogger(),
		}))
		require.NoError(t, err)
		go func() { w.done <- w.c.Run(wctx) }()
		return w
	}
	w1 := newWorker("worker-1", true)
	w2 := newWorker("worker-2", false)
	t.Cleanup(func() { w1.cancel(); w2.cancel(); <-w1.done; <-w2.done })
	held := target.WaitBalanced(ctx, []*consumer.Consumer{w1.c, w2.c}, 2, 0)
	require.Equal(t, []int{1, 1}, held, "each worker holds a shard before the crash")
	// Only now: a cut before the balance (records on both sides of an hour
	// boundary) would kill worker 1 before worker 2 held any shard, and
	// WaitBalanced would wait forever.
	crashMu.Lock()
	armed = true
	crashMu.Unlock()

	// tick advances both workers' clocks past the buffer interval, so every
	// shard with buffered records cuts at its next batch: cut points that
	// depend on when the worker looked, the hard case for exactly-once.
	tick := func() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out: %v", ctx.Err())
		case <-time.After(150 * time.Millisecond):
		}
		w1.clk.Advance(MinBufferInterval)
		w2.clk.Advance(MinBufferInterval)
	}
	for {
		crashMu.Lock()
		c := crashed
		crashMu.Unlock()
		if c {
			break
		}
		tick()
	}
	require.ErrorIs(t, <-w1.done, context.Canceled)
	w1.done <- nil // for the cleanup

	// Reshard while worker 2 takes worker 1's shards over: split the first
	// open shard at the middle of its hash range, then produce more.
	shards, err := env.kinesis.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(env.stream)})
	require.NoError(t, err)
	parent := shards.Shards[0]
	lo, _ := new(big.Int).SetString(aws.ToString(parent.HashKeyRange.StartingHashKey), 10)
	hi, _ := new(big.Int).SetString(aws.ToString(parent.HashKeyRange.EndingHashKey), 10)
	mid := new(big.Int).Rsh(new(big.Int).Add(lo, hi), 1)
	_, err = env.kinesis.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String(env.stream),
		ShardToSplit: parent.ShardId, NewStartingHashKey: aws.String(mid.String())})
	require.NoError(t, err)
	waitActive(t, ctx, env.kinesis, env.stream)
	produce(env.phase2)

	// Then merge the two children back: a child with two parents.
	after, err := env.kinesis.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(env.stream)})
	require.NoError(t, err)
	var kids []types.Shard
	for _, s := range after.Shards {
		if aws.ToString(s.ParentShardId) == aws.ToString(parent.ShardId) && s.SequenceNumberRange.EndingSequenceNumber == nil {
			kids = append(kids, s)
		}
	}
	require.Len(t, kids, 2)
	slices.SortFunc(kids, func(a, b types.Shard) int {
		x, _ := new(big.Int).SetString(aws.ToString(a.HashKeyRange.StartingHashKey), 10)
		y, _ := new(big.Int).SetString(aws.ToString(b.HashKeyRange.StartingHashKey), 10)
		return x.Cmp(y)
	})
	_, err = env.kinesis.MergeShards(ctx, &kinesis.MergeShardsInput{StreamName: aws.String(env.stream),
		ShardToMerge: kids[0].ShardId, AdjacentShardToMerge: kids[1].ShardId})
	require.NoError(t, err)
	waitActive(t, ctx, env.kinesis, env.stream)
	produce(env.phase2 / 2)

	// Run until every record is in the lake.
	for {
		rows, errs := lakeContents(t, client)
		if len(rows) >= len(good) && len(errs) >= len(bad) {
			break
		}
		tick()
	}
	require.NoError(t, w2.c.Shutdown(context.Background())) // go test -timeout is the only bound
	require.NoError(t, <-w2.done)
	w2.done <- nil

	// Every good record exactly once, every bad one exactly once in the
	// error prefix, nothing else.
	rows, errs := lakeContents(t, client)
	seen := map[int64]int{}
	for _, r := range rows {
		seen[r.id]++
	}
	for id := range good {
		require.Equal(t, 1, seen[id], "record %d", id)
	}
	require.Len(t, seen, len(good), "no record that was not produced")
	require.Len(t, rows, len(good), "no record twice")
	errSeen := map[string]int{}
	for _, e := range errs {
		errSeen[e]++
	}
	for raw := range bad {
		require.Equal(t, 1, errSeen[raw], "bad record %q", raw)
	}
	require.Len(t, errs, len(bad))

	// No two objects of a shard overlap, the crashed upload is one of them
	// (rewritten by worker 2 in place), and the child shards were written.
	objs := listAll(t, client, bucket, "")
	checkNoOverlap(t, objs)
	crashMu.Lock()
	require.True(t, slices.ContainsFunc(objs, func(o object) bool { return o.Key == crashedKey }), "crashed upload %s kept", crashedKey)
	crashMu.Unlock()
	require.Positive(t, w2.sink.Stats().Recovered, "worker 2 cut where worker 1 had planned")
	children := map[string]bool{}
	for _, o := range objs {
		shard, _, _ := parseKey(t, o.Key)
		if !slices.ContainsFunc(shards.Shards, func(s types.Shard) bool { return aws.ToString(s.ShardId) == shard }) {
			children[shard] = true
		}
	}
	require.Len(t, children, 3, "objects from the split's two children and the merge's child")
	t.Logf("objects %d (child shards %v), rows %d, bad %d; worker 1 %+v; worker 2 %+v", len(objs), slices.Sorted(maps.Keys(children)), len(rows), len(errs), w1.sink.Stats(), w2.sink.Stats())

	// Query the lake like an Athena user: DuckDB over the Hive partitions.
	dir := t.TempDir()
	for _, o := range objs {
		p := filepath.Join(dir, filepath.FromSlash(o.Key))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, o.Body, 0o644))
	}
	perPartition := map[string]int{}
	for _, r := range rows {
		perPartition[r.partition]++
	}
	q := queryLake(t, dir)
	require.Equal(t, perPartition, q.rowsPerPartition, "rows per partition, DuckDB against the objects' keys")
	require.EqualValues(t, len(good), q.distinctIDs)
	require.EqualValues(t, len(good), q.rows)
	require.EqualValues(t, len(bad), q.errorRecords)
}

type lakeRow struct {
	id        int64
	partition string // "dt=.../hour=.."
}

// lakeContents reads every object back: the rows of the Parquet objects and
// the raw data of the records in the error prefix.
func lakeContents(t *testing.T, c *s3.Client) (rows []lakeRow, errs []string) {
	for _, o := range listAll(t, c, bucket, "") {
		if strings.HasPrefix(o.Key, DefaultErrorPrefix) {
			for _, l := range strings.Split(strings.TrimSpace(string(o.Body)), "\n") {
				var e errorLine
				require.NoError(t, json.Unmarshal([]byte(l), &e))
				raw, err := base64.StdEncoding.DecodeString(e.RawData)
				require.NoError(t, err)
				errs = append(errs, string(raw))
			}
			continue
		}
		require.True(t, strings.HasSuffix(o.Key, ".parquet"), o.Key)
		part := path.Dir(path.Dir(o.Key)) + "/" + path.Base(path.Dir(o.Key))
		for _, r := range readParquet(t, o.Body) {
			require.Equal(t, int64(1796108400000), r["ts"].Int64())
			rows = append(rows, lakeRow{id: r["id"].Int64(), partition: part})
		}
	}
	return rows, errs
}

// parseKey splits an object key into its shard and first and last
// positions.
func parseKey(t *testing.T, key string) (shard string, first, last checkpoint.Position) {
	base := strings.TrimSuffix(strings.TrimSuffix(path.Base(key), ".parquet"), ".json")
	i := strings.LastIndex(base, "-")
	j := strings.LastIndex(base[:i], "-")
	pos := func(s string) checkpoint.Position {
		sq, sub, ok := strings.Cut(s, ".")
		require.True(t, ok, key)
		n, err := strconv.ParseInt(sub, 10, 64)
		require.NoError(t, err)
		return checkpoint.At(sq, n)
	}
	return base[:j], pos(base[j+1 : i]), pos(base[i+1:])
}

// checkNoOverlap checks that no two data objects (and no two error
// objects) of one shard cover overlapping positions.
func checkNoOverlap(t *testing.T, objs []object) {
	type span struct {
		key         string
		first, last checkpoint.Position
	}
	byShard := map[string][]span{}
	for _, o := range objs {
		shard, first, last := parseKey(t, o.Key)
		kind := shard + path.Ext(o.Key)
		require.LessOrEqual(t, first.Compare(last), 0, o.Key)
		byShard[kind] = append(byShard[kind], span{o.Key, first, last})
	}
	for _, spans := range byShard {
		slices.SortFunc(spans, func(a, b span) int { return a.first.Compare(b.first) })
		for i := 1; i < len(spans); i++ {
			require.Positive(t, spans[i].first.Compare(spans[i-1].last), "%s overlaps %s", spans[i].key, spans[i-1].key)
		}
	}
}

func waitActive(t *testing.T, ctx context.Context, k e2eKinesis, stream string) {
	for {
		out, err := k.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
		require.NoError(t, err)
		if out.StreamDescriptionSummary.StreamStatus == types.StreamStatusActive {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("stream %s not active: %v", stream, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
