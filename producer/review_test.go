package producer

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/aggregation"
	"github.com/shardflow/shardflow/kinesistest"
)

// TestListShardsFailsForeverRecordsExpire: when the shard map can never be
// read (a transient error on every ListShards), records put before any map
// exists still get their outcome at RecordTTL, without Flush or Close.
func TestListShardsFailsForeverRecordsExpire(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := newBubbleClock()
		srv, stream := newFake(t, 2, kinesistest.Options{Clock: clk})
		srv.SetHook(func(ctx context.Context, op string) error {
			if op == kinesistest.OpListShards {
				return kinesistest.ErrInternalFailure
			}
			return nil
		})
		p := newProducer(t, srv, stream, Config{Clock: clk, Logger: discardLogger(), RecordTTL: 5 * time.Second})
		waitParked(t, p)
		t0 := clk.Now() // the records' batch starts no later
		puts := putN(t, p, "nomap", 10)
		driveUntil(t, clk, 100*time.Millisecond, func() bool { r, _ := p.Outstanding(); return r == 0 })
		for _, pu := range puts {
			require.ErrorIs(t, pu.f.Result().Err, ErrRecordExpired)
		}
		require.Less(t, clk.Now().Sub(t0), 6*time.Second)
	})
}

// TestCanceledWhileWaitingForMap: a record whose Put context ends while no
// shard map is loaded fails with ErrCanceled well before its TTL.
func TestCanceledWhileWaitingForMap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := newBubbleClock()
		srv, stream := newFake(t, 2, kinesistest.Options{Clock: clk})
		srv.SetHook(func(ctx context.Context, op string) error {
			if op == kinesistest.OpListShards {
				return kinesistest.ErrInternalFailure
			}
			return nil
		})
		p := newProducer(t, srv, stream, Config{Clock: clk, Logger: discardLogger()})
		waitParked(t, p)
		ctx, cancel := context.WithCancel(context.Background())
		t0 := clk.Now() // the record's batch starts no later
		f, err := p.Put(ctx, "k", []byte("x"))
		require.NoError(t, err)
		cancel()
		driveUntil(t, clk, 100*time.Millisecond, func() bool { return f.Result() != nil })
		require.ErrorIs(t, f.Result().Err, ErrCanceled)
		require.Less(t, clk.Now().Sub(t0), DefaultRecordTTL)
	})
}

// limitsClient checks every PutRecords call against the service limits.
type limitsClient struct {
	Client
	aggMax int
	mu     sync.Mutex
	errs   []string
}

func (c *limitsClient) PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, o ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	total := 0
	var bad []string
	if len(in.Records) > MaxPutRecordsCount {
		bad = append(bad, fmt.Sprintf("%d entries", len(in.Records)))
	}
	for _, e := range in.Records {
		n := len(e.Data) + len(*e.PartitionKey)
		total += n
		if n > MaxRecordSize {
			bad = append(bad, fmt.Sprintf("record of %d bytes", n))
		}
		if e.ExplicitHashKey != nil && len(e.Data) > c.aggMax && len(e.Data) > 4 && string(e.Data[:4]) == "\xf3\x89\x9a\xc2" {
			bad = append(bad, fmt.Sprintf("aggregate of %d bytes", len(e.Data)))
		}
	}
	if total > MaxPutRecordsSize {
		bad = append(bad, fmt.Sprintf("call of %d bytes", total))
	}
	if len(bad) > 0 {
		c.mu.Lock()
		c.errs = append(c.errs, bad...)
		c.mu.Unlock()
	}
	return c.Client.PutRecords(ctx, in, o...)
}

// TestRequestLimits: mixed record sizes (up to 1 MiB with multi-byte keys)
// never produce a call, record or aggregate over the limits.
func TestRequestLimits(t *testing.T) {
	for _, agg := range []bool{true, false} {
		t.Run(fmt.Sprintf("aggregation=%v", agg), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv, stream := newFake(t, 2, kinesistest.Options{})
				lc := &limitsClient{Client: srv, aggMax: 4096}
				cfg := fastConfig()
				cfg.DisableAggregation = !agg
				cfg.AggregationMaxSize = 4096
				cfg.RateLimit = 100000
				cfg.RecordMaxBufferedTime = 50 * time.Millisecond
				p := newProducer(t, lc, stream, cfg)
				key := strings.Repeat("é", 256) // 512 bytes
				sizes := []int{1, 100, 4096 - 600, 4096, 50000, MaxRecordSize - len(key), 3000, 1 << 19}
				var puts []put
				for i := 0; i < 80; i++ {
					sz := sizes[i%len(sizes)]
					d := []byte(fmt.Sprintf("r%d-", i))
					d = append(d, make([]byte, max(0, sz-len(d)))...)
					k := fmt.Sprintf("%s%d", key[:len(key)-4], i%10)
					f, err := p.Put(context.Background(), k, d)
					require.NoError(t, err)
					puts = append(puts, put{k, string(d), f})
				}
				require.NoError(t, p.Flush(context.Background()))
				require.Empty(t, reconcile(t, srv, stream, puts, false))
				lc.mu.Lock()
				defer lc.mu.Unlock()
				require.Empty(t, lc.errs)
			})
		})
	}
}

// TestCallbackPutsWhileBufferFull: callbacks that Put (blocking, no
// deadline) while other goroutines keep the buffer full must not deadlock
// the producer.
func TestCallbackPutsWhileBufferFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, stream := newFake(t, 2, kinesistest.Options{})
		cfg := fastConfig()
		cfg.MaxBufferedRecords = 4
		cfg.MaxConnections = 1
		p := newProducer(t, srv, stream, cfg)
		ctx := context.Background()
		var chained atomic.Int64
		var wg sync.WaitGroup
		var cb func(*Result)
		cb = func(r *Result) {
			if chained.Add(1) > 2000 {
				return
			}
			if _, err := p.PutRecord(ctx, Record{PartitionKey: "cb", Data: []byte("chained")}, cb); err != nil && !errors.Is(err, ErrClosed) {
				t.Error(err)
			}
		}
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 300; i++ {
					if _, err := p.PutRecord(ctx, Record{PartitionKey: fmt.Sprint(g, i), Data: []byte("x")}, cb); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		<-done // a deadlock hangs here, and go test -timeout shows where
		require.NoError(t, p.Flush(ctx))
	})
}

// waitParked waits until the dispatcher has done its first pass and the
// first shard map read has ended: in a bubble, until every goroutine waits.
func waitParked(t testing.TB, _ *Producer) {
	t.Helper()
	synctest.Wait()
}

// TestChaosEveryRecordOneOutcome: concurrent Puts (some with contexts
// canceled at random stages), throttling, partial failures, lost
// responses, request timeouts and a Close whose context ends mid-way:
// every accepted record gets exactly one outcome, through its Future and
// its callback, nothing stays outstanding and no goroutine survives.
func TestChaosEveryRecordOneOutcome(t *testing.T) {
	before := runtime.NumGoroutine()
	srv, stream := newFake(t, 3, kinesistest.Options{Seed: 7})
	srv.Throttle(kinesistest.OpPutRecords, 0.2)
	srv.FailRecords(0.2, "")
	srv.FailNextAfterApply(kinesistest.OpPutRecords, 3, nil)
	srv.FailNext(kinesistest.OpListShards, 1, nil)
	var stalls atomic.Int64
	srv.SetHook(func(ctx context.Context, op string) error {
		if op == kinesistest.OpPutRecords && stalls.Add(1)%7 == 0 {
			<-ctx.Done() // times out after RequestTimeout
			return ctx.Err()
		}
		return nil
	})
	cfg := fastConfig()
	cfg.MaxBufferedRecords = 300
	cfg.RequestTimeout = 20 * time.Millisecond
	cfg.RecordTTL = 300 * time.Millisecond
	cfg.AggregationMaxSize = 2048
	p, err := New(srv, stream, cfg)
	require.NoError(t, err)

	type rec struct {
		f     *Future
		calls atomic.Int32
	}
	var mu sync.Mutex
	var recs []*rec
	var wg sync.WaitGroup
	stop := make(chan struct{})
	enough := make(chan struct{})
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithCancel(context.Background())
				r := &rec{}
				f, err := p.PutRecord(ctx, Record{PartitionKey: fmt.Sprint(g, "-", i%50), Data: []byte(fmt.Sprint(g, "/", i))},
					func(*Result) { r.calls.Add(1) })
				if i%3 == 0 {
					cancel()
				} else {
					defer cancel()
				}
				if err != nil {
					if errors.Is(err, ErrClosed) {
						return
					}
					t.Error(err)
					return
				}
				r.f = f
				mu.Lock()
				recs = append(recs, r)
				if len(recs) == 3000 {
					close(enough)
				}
				mu.Unlock()
				if i%97 == 0 {
					fctx, fcancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
					_ = p.Flush(fctx)
					fcancel()
				}
			}
		}()
	}
	<-enough
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	_ = p.Close(ctx)
	close(stop)
	wg.Wait()
	require.NoError(t, p.Close(context.Background()))
	r, b := p.Outstanding()
	require.Zero(t, r)
	require.Zero(t, b)
	mu.Lock()
	defer mu.Unlock()
	require.NotEmpty(t, recs)
	for _, r := range recs {
		res := r.f.Result()
		require.NotNil(t, res, "record without outcome")
		require.EqualValues(t, 1, r.calls.Load(), "callback count")
		if res.Err != nil {
			var re *RecordError
			require.ErrorAs(t, res.Err, &re)
		} else {
			require.NotEmpty(t, res.SequenceNumber)
		}
	}
	// Close has waited for its goroutines; the runtime may take a moment
	// to retire them. A leak hangs here (go test -timeout shows it).
	for runtime.NumGoroutine() > before {
		runtime.Gosched()
	}
}

func TestExplicitHashKeyEdgeCases(t *testing.T) {
	for _, ehk := range []string{"+5", " 5", "5 ", "5\n", "00", "0x10", "1_000", "١٢", "3402823669209384634633746074317682114550",
		"340282366920938463463374607431768211456", "999999999999999999999999999999999999999"} {
		_, _, err := checkRecord("k", ehk, 1)
		require.ErrorIs(t, err, ErrInvalidExplicitHashKey, "%q", ehk)
	}
	for _, ehk := range []string{"0", "1", "340282366920938463463374607431768211455", "18446744073709551616"} {
		_, _, err := checkRecord("k", ehk, 1)
		require.NoError(t, err, "%q", ehk)
	}
	hi, lo, err := checkRecord("k", "18446744073709551616", 1) // 2^64
	require.NoError(t, err)
	require.Equal(t, [2]uint64{1, 0}, [2]uint64{hi, lo})
	// Key length is in characters, the size limit in bytes.
	_, _, err = checkRecord(strings.Repeat("日", 256), "", MaxRecordSize-3*256)
	require.NoError(t, err)
	_, _, err = checkRecord(strings.Repeat("日", 256), "", MaxRecordSize-3*256+1)
	require.ErrorIs(t, err, ErrRecordTooLarge)
}

func TestTokenBucket(t *testing.T) {
	t0 := time.Unix(0, 0)
	b := newTokenBucket(1000, t0)
	require.Zero(t, b.wait(1000, t0))
	b.take(1000)
	require.Equal(t, time.Second+time.Millisecond, b.wait(1000, t0))
	require.Zero(t, b.wait(500, t0.Add(500*time.Millisecond)))
	b.take(500)
	// Never more than one second of tokens.
	require.Zero(t, b.wait(1000, t0.Add(time.Hour)))
	require.InDelta(t, 1000, b.tokens, 0.001)
	// A request larger than the bucket goes once the bucket is full, and
	// leaves the debt to be paid back.
	require.Zero(t, b.wait(5000, t0.Add(time.Hour)))
	b.take(5000)
	require.Greater(t, b.wait(1, t0.Add(time.Hour+time.Second)), 3*time.Second)
	require.Zero(t, b.wait(1, t0.Add(time.Hour+5*time.Second)))
}

// TestRecordLargerThanRateBucket: with a low RateLimit a 1 MiB record
// exceeds the per-shard byte bucket; it is still sent.
func TestRecordLargerThanRateBucket(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := newBubbleClock()
		srv, stream := newFake(t, 1, kinesistest.Options{Clock: clk})
		p := newProducer(t, srv, stream, Config{Clock: clk, Logger: discardLogger(), RateLimit: 10})
		waitMapped(t, clk, p)
		d := make([]byte, MaxRecordSize-1)
		copy(d, "big")
		f, err := p.Put(context.Background(), "k", d)
		require.NoError(t, err)
		f2, err := p.Put(context.Background(), "k2", []byte("small"))
		require.NoError(t, err)
		driveUntil(t, clk, 100*time.Millisecond, func() bool { return f.Result() != nil && f2.Result() != nil })
		require.NoError(t, f.Result().Err)
		require.NoError(t, f2.Result().Err)
	})
}

func TestClassifyMore(t *testing.T) {
	cases := []struct {
		err  error
		want errClass
	}{
		{&smithy.GenericAPIError{Code: "ServiceUnavailable"}, classTransient},
		{&smithy.GenericAPIError{Code: "InternalFailure"}, classTransient},
		{&smithy.GenericAPIError{Code: "ThrottlingException"}, classTransient},
		{&types.LimitExceededException{}, classTransient},
		{&types.KMSDisabledException{}, classRejected},
		{&types.KMSNotFoundException{}, classRejected},
		{&types.KMSInvalidStateException{}, classRejected},
		{&types.KMSOptInRequired{}, classRejected},
		{&smithy.OperationError{ServiceID: "Kinesis", OperationName: "PutRecords", Err: &types.AccessDeniedException{}}, classRejected},
		{&smithy.OperationError{ServiceID: "Kinesis", OperationName: "PutRecords", Err: &types.ProvisionedThroughputExceededException{}}, classThrottled},
		{fmt.Errorf("%w: %w", ErrRequestTimeout, context.Canceled), classTransient},
		{fmt.Errorf("%w: %w", ErrClosed, context.Canceled), classTransient},
	}
	for _, c := range cases {
		class, _, _ := classifyErr(c.err)
		require.Equal(t, c.want, class, "%v", c.err)
	}
	class, code, _ := classifyErr(fmt.Errorf("%w: %w", ErrRequestTimeout, context.Canceled))
	require.Equal(t, classTransient, class)
	require.Equal(t, "RequestTimeout", code)
}

// TestSuccessAfterTTLAndCancelWhileInFlight: a record whose TTL passes or
// whose context ends while its call is in flight takes the call's outcome.
func TestSuccessAfterTTLAndCancelWhileInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := newBubbleClock()
		srv, stream := newFake(t, 1, kinesistest.Options{Clock: clk})
		entered, release := make(chan struct{}, 1), make(chan struct{})
		srv.SetHook(func(ctx context.Context, op string) error {
			if op == kinesistest.OpPutRecords {
				entered <- struct{}{}
				<-release
			}
			return nil
		})
		p := newProducer(t, srv, stream, Config{Clock: clk, Logger: discardLogger(), RecordTTL: time.Second, RequestTimeout: time.Minute})
		waitMapped(t, clk, p)
		ctx, cancel := context.WithCancel(context.Background())
		f, err := p.Put(ctx, "k", []byte("x"))
		require.NoError(t, err)
		f2, err := p.Put(context.Background(), "k2", []byte("y"))
		require.NoError(t, err)
		require.NoError(t, func() error { clk.Advance(time.Second / 2); <-entered; return nil }())
		cancel()
		clk.Advance(5 * time.Second)
		close(release)
		_, err = f.Wait(context.Background())
		require.NoError(t, err)
		_, err = f2.Wait(context.Background())
		require.NoError(t, err)
	})
}

// TestPartitionKeyNotUTF8: the SDK sends an invalid UTF-8 partition key
// with U+FFFD substituted, so Kinesis would hash another key than the
// producer predicted: such keys are refused by Put.
func TestPartitionKeyNotUTF8(t *testing.T) {
	_, _, err := checkRecord("ab\xffc", "", 1)
	require.ErrorIs(t, err, ErrInvalidRecord)
	_, _, err = checkRecord("ab\xffc", "5", 1)
	require.ErrorIs(t, err, ErrInvalidRecord)
	_, _, err = checkRecord("日本\u00e9", "", 1)
	require.NoError(t, err)
}

// TestListShardsStallsAfterSplit: an aggregate lands on a child shard the
// map does not know, and every ListShards after that hangs (a stalled
// endpoint that honours ctx). The held records still get an outcome,
// within their TTL plus a request timeout.
func TestListShardsStallsAfterSplit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := newBubbleClock()
		srv, stream := newFake(t, 1, kinesistest.Options{Clock: clk})
		p := newProducer(t, srv, stream, Config{Clock: clk, Logger: discardLogger(), RecordTTL: 10 * time.Second})
		waitMapped(t, clk, p)
		stall(srv, kinesistest.OpListShards)
		ctx := context.Background()
		_, err := srv.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: &stream, ShardToSplit: aws.String(srv.ShardIDs(stream)[0]),
			NewStartingHashKey: aws.String("170141183460469231731687303715884105728")})
		require.NoError(t, err)
		t0 := clk.Now() // the records' batch starts no later
		puts := putN(t, p, "held", 50)
		driveUntil(t, clk, 100*time.Millisecond, func() bool { r, _ := p.Outstanding(); return r == 0 })
		require.Less(t, clk.Now().Sub(t0), 10*time.Second+DefaultRequestTimeout+2*time.Second)
		errs := map[string]int{}
		for _, pu := range puts {
			res := pu.f.Result()
			require.NotNil(t, res)
			errs[fmt.Sprint(res.Err, len(res.Attempts))]++
		}
		t.Logf("after %v: %v", clk.Now().Sub(t0), errs)
	})
}

// TestOrderedUnderThrottling: whole-call and per-record throttling with
// many calls in flight across shards keep each key's records in order.
func TestOrderedUnderThrottling(t *testing.T) {
	for _, agg := range []bool{true, false} {
		t.Run(fmt.Sprintf("aggregation=%v", agg), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv, stream := newFake(t, 4, kinesistest.Options{Seed: 5})
				srv.Throttle(kinesistest.OpPutRecords, 0.3)
				srv.FailRecords(0.3, "")
				cfg := fastConfig()
				cfg.OrderedByPartitionKey = true
				cfg.DisableAggregation = !agg
				cfg.RateLimit = 100000
				cfg.AggregationMaxSize = 512
				p := newProducer(t, srv, stream, cfg)
				var puts []put
				for i := 0; i < 2000; i++ {
					k := fmt.Sprintf("key%d", i%37)
					d := fmt.Sprintf("%s/%06d", k, i)
					f, err := p.Put(context.Background(), k, []byte(d))
					require.NoError(t, err)
					puts = append(puts, put{k, d, f})
				}
				require.NoError(t, p.Flush(context.Background()))
				require.Empty(t, reconcile(t, srv, stream, puts, false))
				last := map[string]int{}
				for _, sh := range srv.ShardIDs(stream) {
					for _, r := range srv.Records(stream, sh) {
						recs, _ := aggregation.Deaggregate(nil, r.Data, aws.ToString(r.PartitionKey))
						for _, ur := range recs {
							k, n, _ := strings.Cut(string(ur.Data), "/")
							i, err := strconv.Atoi(n)
							require.NoError(t, err)
							prev, ok := last[k]
							require.True(t, !ok || i > prev, "key %s: %d stored after %d", k, i, prev)
							last[k] = i
						}
					}
				}
			})
		})
	}
}

// TestListShardsBackoffHoldsUnderRefreshRequests: refresh requests (from
// results on unexpected shards) do not defeat the backoff after
// ListShards errors.
func TestListShardsBackoffHoldsUnderRefreshRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := newBubbleClock()
		srv, stream := newFake(t, 1, kinesistest.Options{Clock: clk})
		var calls atomic.Int64
		srv.SetHook(func(ctx context.Context, op string) error {
			if op == kinesistest.OpListShards {
				calls.Add(1)
				return &types.LimitExceededException{Message: aws.String("Rate exceeded")}
			}
			return nil
		})
		p := newProducer(t, srv, stream, Config{Clock: clk, Logger: discardLogger()})
		waitParked(t, p)
		for i := 0; i < 600; i++ {
			p.requestRefresh()
			driveUntil(t, clk, 0, func() bool { return len(p.refreshCh) == 0 })
			clk.Advance(100 * time.Millisecond)
		}
		// 60 s with backoff 1, 2, 4, 8, 16, 30 s: about 7 calls, not 60.
		require.LessOrEqual(t, calls.Load(), int64(10))
	})
}

// TestPersistentPartialFailuresStayBounded: when every entry keeps failing,
// the records and bytes outstanding never pass the limits and every record
// expires with its attempts.
func TestPersistentPartialFailuresStayBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, stream := newFake(t, 2, kinesistest.Options{})
		srv.FailRecords(1, "")
		cfg := fastConfig()
		cfg.MaxBufferedRecords = 50
		cfg.RecordTTL = 200 * time.Millisecond
		cfg.RecordMaxBufferedTime = time.Millisecond
		p := newProducer(t, srv, stream, cfg)
		var fs []*Future
		for i := 0; i < 200; i++ {
			f, err := p.Put(context.Background(), fmt.Sprint(i), []byte("x"))
			require.NoError(t, err)
			fs = append(fs, f)
			r, _ := p.Outstanding()
			require.LessOrEqual(t, r, 50)
		}
		require.NoError(t, p.Flush(context.Background()))
		tried := 0
		for _, f := range fs {
			res := f.Result()
			require.ErrorIs(t, res.Err, ErrRecordExpired)
			for _, a := range res.Attempts {
				require.Equal(t, "ProvisionedThroughputExceededException", a.ErrorCode)
			}
			if len(res.Attempts) > 1 {
				tried++
			}
		}
		require.Positive(t, tried, "records retried")
	})
}

// TestAbortWithAggregateOnUnknownShard: Close's context ends while a call
// is in flight whose aggregate then lands on a shard the map does not know
// (and ListShards hangs): Close still returns at once, the records
// reported as stored, as abort does for aggregates already held.
func TestAbortWithAggregateOnUnknownShard(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := newBubbleClock()
		srv, stream := newFake(t, 1, kinesistest.Options{Clock: clk})
		p, err := New(srv, stream, Config{Clock: clk, Logger: discardLogger()})
		require.NoError(t, err)
		waitMapped(t, clk, p)
		entered, release := make(chan struct{}, 1), make(chan struct{})
		srv.SetHook(func(ctx context.Context, op string) error {
			switch op {
			case kinesistest.OpPutRecords:
				entered <- struct{}{}
				<-release // ignores ctx: the call goes through
			case kinesistest.OpListShards:
				<-ctx.Done()
				return ctx.Err()
			}
			return nil
		})
		ctx := context.Background()
		_, err = srv.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: &stream, ShardToSplit: aws.String(srv.ShardIDs(stream)[0]),
			NewStartingHashKey: aws.String("170141183460469231731687303715884105728")})
		require.NoError(t, err)
		puts := putN(t, p, "abort", 50)
		clk.Advance(DefaultRecordMaxBufferedTime)
		<-entered
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		closed := make(chan error, 1)
		go func() { closed <- p.Close(cctx) }()
		for aborting := false; !aborting; time.Sleep(time.Millisecond) {
			p.mu.Lock()
			aborting = p.aborting
			p.mu.Unlock()
		}
		close(release)
		// A Close that hangs on an aggregate held for a shard map hangs here.
		require.ErrorIs(t, <-closed, context.Canceled)
		for _, pu := range puts {
			res := pu.f.Result()
			require.NotNil(t, res)
			require.NoError(t, res.Err)
		}
	})
}
