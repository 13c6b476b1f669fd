package producer

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/aggregation"
	"github.com/shardflow/shardflow/clock"
	"github.com/shardflow/shardflow/kinesistest"
)

// fastConfig keeps real-clock tests quick.
func fastConfig() Config {
	return Config{
		RecordMaxBufferedTime: time.Millisecond,
		RetryBackoffBase:      time.Millisecond,
		RetryBackoffMax:       10 * time.Millisecond,
		Logger:                discardLogger(),
	}
}

type put struct {
	key, data string
	f         *Future
}

// putN puts n records with distinct keys and payloads.
func putN(t testing.TB, p *Producer, prefix string, n int) []put {
	t.Helper()
	out := make([]put, n)
	for i := range out {
		k, d := fmt.Sprintf("%s-k%d", prefix, i%997), fmt.Sprintf("%s-d%d", prefix, i)
		f, err := p.Put(context.Background(), k, []byte(d))
		require.NoError(t, err)
		out[i] = put{k, d, f}
	}
	return out
}

// waitAll waits until every future is done. It has no deadline of its
// own: a record without an outcome is a hang that go test's -timeout
// reports with every goroutine's stack, and a slow machine is not a
// failure.
func waitAll(t testing.TB, puts []put) {
	t.Helper()
	for _, p := range puts {
		<-p.f.Done()
	}
}

// bubbleClock is the clock inside a testing/synctest bubble: the real
// clock's API on the bubble's time, which moves only when every goroutine
// of the bubble waits. Tests on it are deterministic on any machine, and
// the producer needs no instrumentation to say when it is idle.
type bubbleClock struct{ clock.Clock }

func newBubbleClock() bubbleClock { return bubbleClock{clock.Real()} }

// Advance lets d pass and returns once every goroutine woken meanwhile
// waits again.
func (bubbleClock) Advance(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

// driveUntil lets the bubble's time pass in steps until cond holds,
// checking it whenever every goroutine waits.
func driveUntil(t testing.TB, clk bubbleClock, step time.Duration, cond func() bool) {
	t.Helper()
	step = max(step, time.Nanosecond) // time moves only by sleeping
	for {
		synctest.Wait()
		if cond() {
			return
		}
		clk.Advance(step)
	}
}

// resent reports whether a record was sent again after an aggregate
// carrying it landed on a sibling shard (a known duplicate).
func resent(res *Result) bool {
	for _, a := range res.Attempts {
		if a.ErrorCode == "WrongShard" {
			return true
		}
	}
	return false
}

// ambiguous reports whether an attempt of the record may have been stored
// without the producer knowing: its call timed out or failed in transport
// (the response was lost), or its result entry was incomplete. Retrying
// such an attempt is what may store a record twice.
func ambiguous(res *Result) bool {
	for _, a := range res.Attempts {
		switch a.ErrorCode {
		case "RequestTimeout", "RequestCanceled", "NetworkError", codeIncompleteResult:
			return true
		}
	}
	return resent(res)
}

type stored struct {
	shard, seq string
	sub        int
}

// storedRecords deaggregates everything the fake holds for the stream,
// keyed by data.
func storedRecords(t testing.TB, srv *kinesistest.Server, stream string) map[string][]stored {
	t.Helper()
	out := map[string][]stored{}
	for _, sh := range srv.ShardIDs(stream) {
		for _, r := range srv.Records(stream, sh) {
			recs, _ := aggregation.Deaggregate(nil, r.Data, aws.ToString(r.PartitionKey))
			for i, ur := range recs {
				out[string(ur.Data)] = append(out[string(ur.Data)], stored{sh, aws.ToString(r.SequenceNumber), i})
			}
		}
	}
	return out
}

// reconcile checks every put has exactly one outcome and every success is
// stored exactly once where its Result says; it returns the failures.
func reconcile(t testing.TB, srv *kinesistest.Server, stream string, puts []put, allowDup bool) (failed []put) {
	t.Helper()
	waitAll(t, puts)
	st := storedRecords(t, srv, stream)
	seen := map[string]bool{}
	for _, p := range puts {
		require.False(t, seen[p.data], "payload reused in test")
		seen[p.data] = true
		res := p.f.Result()
		require.NotNil(t, res)
		require.NotEmpty(t, res.Attempts, "record %s has no attempts: %v", p.data, res.Err)
		if res.Err != nil {
			require.Empty(t, res.SequenceNumber)
			if !allowDup {
				require.Empty(t, st[p.data], "failed record %s was stored", p.data)
			}
			failed = append(failed, p)
			continue
		}
		require.True(t, res.Attempts[len(res.Attempts)-1].Success())
		copies := st[p.data]
		if !allowDup && !resent(res) {
			require.Len(t, copies, 1, "record %s stored %d times", p.data, len(copies))
		}
		found := false
		for _, c := range copies {
			if c.shard == res.ShardID && c.seq == res.SequenceNumber {
				found = true
			}
		}
		require.True(t, found, "record %s not at reported %s/%s: %v", p.data, res.ShardID, res.SequenceNumber, copies)
	}
	for d := range st {
		require.True(t, seen[d], "stored record %q was never put", d)
	}
	return failed
}

// countingClient only counts: PutRecords succeeds at once on a fixed set
// of shards routed by hash key.
type countingClient struct {
	shards    []types.Shard
	ranges    []shardRange
	calls     atomic.Int64
	entries   atomic.Int64
	wireBytes atomic.Int64
	ids       []*string
	seq       *string
	pool      sync.Pool
}

func newCountingClient(n int) *countingClient {
	c := &countingClient{seq: aws.String("49590338271490256608559692538361571095921575989136588898")}
	srv := kinesistest.New(kinesistest.Options{})
	srv.MustCreateStream("s", n)
	out, err := srv.ListShards(context.Background(), &kinesis.ListShardsInput{StreamName: aws.String("s")})
	if err != nil {
		panic(err)
	}
	c.shards = out.Shards
	for _, s := range out.Shards {
		r, _ := toRange(s)
		c.ranges = append(c.ranges, r)
		c.ids = append(c.ids, s.ShardId)
	}
	return c
}

func (c *countingClient) ListShards(context.Context, *kinesis.ListShardsInput, ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	return &kinesis.ListShardsOutput{Shards: c.shards}, nil
}

func (c *countingClient) PutRecords(_ context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	c.calls.Add(1)
	c.entries.Add(int64(len(in.Records)))
	out := &kinesis.PutRecordsOutput{Records: make([]types.PutRecordsResultEntry, len(in.Records))}
	var n int64
	for i, e := range in.Records {
		n += int64(len(e.Data) + len(*e.PartitionKey))
		hi, lo, _ := hashKey(*e.PartitionKey, aws.ToString(e.ExplicitHashKey))
		out.Records[i] = types.PutRecordsResultEntry{ShardId: c.ids[lookup(c.ranges, hi, lo)], SequenceNumber: c.seq}
	}
	c.wireBytes.Add(n)
	return out, nil
}

// stall makes every call of op block until its context ends (a stalled
// endpoint) and returns the number of calls blocked right now.
func stall(srv *kinesistest.Server, op string) *atomic.Int64 {
	blocked := new(atomic.Int64)
	srv.SetHook(func(ctx context.Context, o string) error {
		if o != op {
			return nil
		}
		blocked.Add(1)
		defer blocked.Add(-1)
		<-ctx.Done()
		return ctx.Err()
	})
	return blocked
}

// waitPutBlocked returns once some Put is waiting for buffer space.
func waitPutBlocked(p *Producer) {
	for {
		p.mu.Lock()
		w := p.waiting
		p.mu.Unlock()
		if w > 0 {
			return
		}
		time.Sleep(time.Millisecond) // a poll that lets a synctest bubble's time move
	}
}

// liveHeap returns a function that reports the bytes live on the heap
// after a GC, less those live (after a GC) when liveHeap was called.
func liveHeap() func() int64 {
	var ms runtime.MemStats
	live := func() int64 {
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return int64(ms.HeapAlloc)
	}
	base := live()
	return func() int64 { return live() - base }
}
