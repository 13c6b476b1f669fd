//go:build integration

package chaos_test

import (
	"context"
	"fmt"
	"math/big"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/shardflow/shardflow/internal/chaos"
	"github.com/shardflow/shardflow/internal/itest"
	"github.com/shardflow/shardflow/lease"
	"github.com/shardflow/shardflow/producer"
)

// chaosPlan sizes a run. Nothing in it is a deadline: the run ends when
// every produced record was processed, or fails when the test's own
// deadline (go test -timeout) is near, with a diagnosis.
type chaosPlan struct {
	produceFor    time.Duration // the producer runs this long; the split at 1/3, the merge at 2/3
	ratePerSecond int
	keys          int
	killEvery     time.Duration // mean time between two kills (uniform in [1/2, 3/2] of it)
	restartAfter  time.Duration // a killed slot is restarted after this
}

var (
	shortPlan = chaosPlan{produceFor: 40 * time.Second, ratePerSecond: 250, keys: 48, killEvery: 5 * time.Second, restartAfter: time.Second}
	soakPlan  = chaosPlan{produceFor: 6 * time.Minute, ratePerSecond: 300, keys: 96, killEvery: 6 * time.Second, restartAfter: time.Second}
)

// TestChaosWorkers runs three real worker processes (internal/chaos/worker)
// on kinesalite and dynalite while the producer writes with per-key
// counters: one worker is killed with SIGKILL every few seconds and
// restarted, one shard is split and two are merged, and at the end every
// worker is shut down gracefully. Their journals must show every produced
// record processed, in order per key within each ownership of a shard, no
// child shard started before its parents ended, and every duplicate
// explained by a crash. SHARDFLOW_SOAK=1 runs the long plan (needs
// -timeout 30m).
func TestChaosWorkers(t *testing.T) {
	plan := shortPlan
	if itest.Soak() {
		plan = soakPlan
	}
	kinesisEP, dynamoEP := itest.Endpoint(t, itest.Kinesalite), itest.Endpoint(t, itest.Dynalite)
	kc := itest.Kinesis(t, itest.Kinesalite)
	ddb := itest.DynamoDB(t)

	// The guard against a hang: the test's deadline less time to report.
	ctx, cancel := context.WithCancel(context.Background())
	if dl, ok := t.Deadline(); ok {
		ctx, cancel = context.WithDeadline(context.Background(), dl.Add(-45*time.Second))
	}
	defer cancel()

	stream, table := itest.Name("chaos"), itest.Name("chaos-leases")
	itest.CreateStream(t, kc, stream, 4)
	store, err := lease.NewDynamoStore(ctx, ddb, table) // created once, before the workers race to
	require.NoError(t, err)

	const failover = 3 * time.Second
	fleet := chaos.NewFleet(t, chaos.WorkerConfig{
		KinesisEndpoint: kinesisEP, DynamoDBEndpoint: dynamoEP, Stream: stream, Table: table,
		FailoverTime: failover,
		BatchWork:    100 * time.Millisecond, // widens the window in which a kill leaves work past the checkpoint
	})
	slots := []string{"w0", "w1", "w2"}
	for _, s := range slots {
		_, err := fleet.Start(s)
		require.NoError(t, err)
	}

	p, err := producer.New(kc, stream, producer.Config{OrderedByPartitionKey: true, RecordTTL: 5 * time.Minute})
	require.NoError(t, err)
	seed := uint64(time.Now().UnixNano())
	t.Logf("plan %+v, seed %d, journals in %s", plan, seed, fleet.Dir())
	rng := rand.New(rand.NewPCG(seed, 1))

	var puts []put
	stop := make(chan struct{})
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return produceLoop(ctx, gctx, p, plan.keys, plan.ratePerSecond, stop, &puts) }) // owned by g
	kills := 0
	g.Go(func() error { // the killer, owned by g
		for {
			d := plan.killEvery/2 + time.Duration(rng.Int64N(int64(plan.killEvery)))
			select {
			case <-stop:
				return nil
			case <-gctx.Done():
				return gctx.Err()
			case <-time.After(d):
			}
			running := fleet.Running()
			slot := running[rng.IntN(len(running))]
			if _, err := fleet.Kill(slot); err != nil {
				return err
			}
			kills++
			select {
			case <-gctx.Done():
				return gctx.Err()
			case <-time.After(plan.restartAfter):
			}
			if _, err := fleet.Start(slot); err != nil {
				return err
			}
		}
	})
	g.Go(func() error { // the resharding timeline, then the end of production
		defer close(stop)
		if err := pause(gctx, plan.produceFor/3); err != nil {
			return err
		}
		if err := splitFirst(gctx, kc, stream); err != nil {
			return err
		}
		if err := pause(gctx, plan.produceFor/3); err != nil {
			return err
		}
		if err := mergeLastTwo(gctx, kc, stream); err != nil {
			return err
		}
		return pause(gctx, plan.produceFor/3)
	})
	require.NoError(t, g.Wait())
	produced := results(ctx, t, p, puts)
	t.Logf("%d kills", kills)
	finishRun(ctx, t, fleet, store, kc, stream, produced, failover)
}

type put struct {
	rec chaos.Produced
	f   *producer.Future
}

// produceLoop writes rate records a second with per-key counters over keys
// keys until stop is closed. Its Puts use ctx, not gctx: the loop ends with
// its errgroup, which would cancel records not yet sent.
func produceLoop(ctx, gctx context.Context, p *producer.Producer, keys, rate int, stop <-chan struct{}, puts *[]put) error {
	counters := make([]int, keys)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	perTick := max(1, rate/50)
	for i := 0; ; {
		select {
		case <-stop:
			return nil
		case <-gctx.Done():
			return gctx.Err()
		case <-tick.C:
		}
		for range perTick {
			k := i % keys
			i++
			counters[k]++
			key := fmt.Sprintf("k%03d", k)
			id := fmt.Sprintf("%s:%d", key, counters[k])
			f, err := p.Put(ctx, key, []byte(id))
			if err != nil {
				return fmt.Errorf("put %s: %w", id, err)
			}
			*puts = append(*puts, put{rec: chaos.Produced{ID: id, Key: key, Counter: counters[k]}, f: f})
		}
	}
}

// results closes the producer and returns what was produced, where.
func results(ctx context.Context, t *testing.T, p *producer.Producer, puts []put) []chaos.Produced {
	require.NoError(t, p.Close(ctx))
	produced := make([]chaos.Produced, len(puts))
	failed := 0
	for i, pt := range puts {
		res := pt.f.Result()
		produced[i] = pt.rec
		if res.Err != nil {
			produced[i].Failed = true
			failed++
			t.Logf("put %s failed: %v", pt.rec.ID, res.Err)
			continue
		}
		produced[i].ShardID, produced[i].SequenceNumber = res.ShardID, res.SequenceNumber
	}
	t.Logf("produced %d records (%d failed puts); waiting until every one is processed", len(produced), failed)
	return produced
}

// finishRun waits until every produced record was processed (the fleet
// keeps running), shuts the fleet down gracefully, reconciles the journals
// and reports every broken promise as a test error.
func finishRun(ctx context.Context, t *testing.T, fleet *chaos.Fleet, store lease.Store, kc *kinesis.Client, stream string, produced []chaos.Produced, failover time.Duration) *chaos.Report {
	for {
		js, err := fleet.Journals()
		require.NoError(t, err)
		missing := chaos.Missing(produced, js)
		if len(missing) == 0 {
			break
		}
		if exited := fleet.Exited(); len(exited) > 0 {
			t.Fatalf("workers exited on their own: %v", exited)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d records still unprocessed when the test's deadline approached (a hang): e.g. %v\n%s",
				len(missing), missing[:min(5, len(missing))], diagnose(context.Background(), store, fleet, missing))
		case <-time.After(time.Second):
		}
	}
	require.NoError(t, fleet.StopAll(ctx), "graceful shutdown")

	js, err := fleet.Journals()
	require.NoError(t, err)
	rep := chaos.Reconcile(chaos.Input{Produced: produced, Journals: js, Killed: fleet.Killed(), Parents: parents(ctx, t, kc, stream), FailoverTime: failover})
	t.Logf("chaos run: %s", rep.Summary())
	if ls, err := store.List(ctx); err == nil {
		var held []string
		for _, l := range ls {
			if l.Owner != "" {
				held = append(held, l.Key+" by "+l.Owner)
			}
		}
		t.Logf("leases still owned after the graceful shutdown: %d %v", len(held), held)
	}
	for _, p := range rep.Problems() {
		t.Error(p)
	}
	return rep
}

func pause(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// openShards returns the open shards sorted by starting hash key.
func openShards(ctx context.Context, kc *kinesis.Client, stream string) ([]types.Shard, error) {
	var shards []types.Shard
	in := &kinesis.ListShardsInput{StreamName: aws.String(stream)}
	for {
		out, err := kc.ListShards(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list shards: %w", err)
		}
		shards = append(shards, out.Shards...)
		if out.NextToken == nil {
			break
		}
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
	open := shards[:0]
	for _, s := range shards {
		if s.SequenceNumberRange.EndingSequenceNumber == nil {
			open = append(open, s)
		}
	}
	sort.Slice(open, func(i, j int) bool {
		return hashKey(open[i].HashKeyRange.StartingHashKey).Cmp(hashKey(open[j].HashKeyRange.StartingHashKey)) < 0
	})
	return open, nil
}

func hashKey(s *string) *big.Int {
	n, _ := new(big.Int).SetString(aws.ToString(s), 10)
	return n
}

func splitFirst(ctx context.Context, kc *kinesis.Client, stream string) error {
	open, err := openShards(ctx, kc, stream)
	if err != nil {
		return err
	}
	s := open[0]
	mid := new(big.Int).Add(hashKey(s.HashKeyRange.StartingHashKey), hashKey(s.HashKeyRange.EndingHashKey))
	mid.Rsh(mid, 1)
	if _, err := kc.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String(stream), ShardToSplit: s.ShardId, NewStartingHashKey: aws.String(mid.String())}); err != nil {
		return fmt.Errorf("split %s: %w", aws.ToString(s.ShardId), err)
	}
	return waitActive(ctx, kc, stream)
}

func mergeLastTwo(ctx context.Context, kc *kinesis.Client, stream string) error {
	open, err := openShards(ctx, kc, stream)
	if err != nil {
		return err
	}
	a, b := open[len(open)-2], open[len(open)-1]
	if _, err := kc.MergeShards(ctx, &kinesis.MergeShardsInput{StreamName: aws.String(stream), ShardToMerge: a.ShardId, AdjacentShardToMerge: b.ShardId}); err != nil {
		return fmt.Errorf("merge %s and %s: %w", aws.ToString(a.ShardId), aws.ToString(b.ShardId), err)
	}
	return waitActive(ctx, kc, stream)
}

func waitActive(ctx context.Context, kc *kinesis.Client, stream string) error {
	for {
		d, err := kc.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
		if err != nil {
			return fmt.Errorf("describe stream: %w", err)
		}
		if d.StreamDescriptionSummary.StreamStatus == types.StreamStatusActive {
			return nil
		}
		if err := pause(ctx, 100*time.Millisecond); err != nil { // polling an external emulator
			return err
		}
	}
}

// parents maps every shard to its parents.
func parents(ctx context.Context, t *testing.T, kc *kinesis.Client, stream string) map[string][]string {
	t.Helper()
	out, err := kc.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	require.NoError(t, err)
	require.Nil(t, out.NextToken, "a handful of shards fits one page")
	m := map[string][]string{}
	for _, s := range out.Shards {
		for _, p := range []*string{s.ParentShardId, s.AdjacentParentShardId} {
			if p != nil {
				m[aws.ToString(s.ShardId)] = append(m[aws.ToString(s.ShardId)], aws.ToString(p))
			}
		}
	}
	return m
}

// diagnose says, for a run that did not finish, which shards the missing
// records are on and who holds those leases at what checkpoint.
func diagnose(ctx context.Context, store lease.Store, fleet *chaos.Fleet, missing []chaos.Produced) string {
	var b strings.Builder
	perShard := map[string]int{}
	for _, m := range missing {
		perShard[m.ShardID]++
	}
	fmt.Fprintf(&b, "missing per shard: %v\nrunning: %v\n", perShard, fleet.Running())
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ls, err := store.List(ctx)
	if err != nil {
		fmt.Fprintf(&b, "lease table unreadable: %v\n", err)
	}
	for _, l := range ls {
		fmt.Fprintf(&b, "lease %s owner=%q counter=%d checkpoint=%s parents=%v\n", l.Key, l.Owner, l.Counter, l.Checkpoint, l.ParentShardIDs)
	}
	fmt.Fprintf(&b, "worker logs and journals: %s", fleet.Dir())
	return b.String()
}
