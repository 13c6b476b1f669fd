package producer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/clock"
	"github.com/shardflow/shardflow/kinesistest"
)

func newFake(t testing.TB, shards int, opts kinesistest.Options) (*kinesistest.Server, string) {
	srv := kinesistest.New(opts)
	name := "stream"
	srv.MustCreateStream(name, shards)
	return srv, name
}

func newProducer(t testing.TB, c Client, stream string, cfg Config) *Producer {
	t.Helper()
	p, err := New(c, stream, cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		if t.Failed() {
			cancel() // give up at once: nothing may move the test's clock any more
		}
		defer cancel()
		_ = p.Close(ctx)
	})
	return p
}

func TestRoundTrip(t *testing.T) {
	for _, agg := range []bool{true, false} {
		t.Run(fmt.Sprintf("aggregation=%v", agg), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv, stream := newFake(t, 4, kinesistest.Options{})
				cfg := fastConfig()
				cfg.DisableAggregation = !agg
				cfg.RateLimit = 100000
				p := newProducer(t, srv, stream, cfg)
				puts := putN(t, p, "rt", 5000)
				require.NoError(t, p.Flush(context.Background()))
				require.Empty(t, reconcile(t, srv, stream, puts, false))
				r, b := p.Outstanding()
				require.Zero(t, r)
				require.Zero(t, b)
				shards := map[string]bool{}
				for _, pu := range puts {
					shards[pu.f.Result().ShardID] = true
				}
				require.Len(t, shards, 4)
				if agg {
					// Aggregation must have packed many records per Kinesis record.
					n := 0
					for _, sh := range srv.ShardIDs(stream) {
						n += len(srv.Records(stream, sh))
					}
					require.Less(t, n, 500)
				}
			})
		})
	}
}

func TestStreamARN(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := kinesistest.New(kinesistest.Options{})
		arn := srv.MustCreateStream("by-arn", 2)
		p := newProducer(t, srv, arn, fastConfig())
		puts := putN(t, p, "arn", 100)
		require.NoError(t, p.Flush(context.Background()))
		require.Empty(t, reconcile(t, srv, "by-arn", puts, false))
	})
}

func TestThrottlingAndPartialFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, stream := newFake(t, 4, kinesistest.Options{Seed: 7})
		srv.FailRecords(0.3, "ProvisionedThroughputExceededException")
		srv.Throttle(kinesistest.OpPutRecords, 0.2)
		cfg := fastConfig()
		cfg.DisableAggregation = true // many entries per call, so partial failures are exercised
		cfg.RateLimit = 100000
		p := newProducer(t, srv, stream, cfg)
		puts := putN(t, p, "thr", 3000)
		require.NoError(t, p.Flush(context.Background()))
		require.Empty(t, reconcile(t, srv, stream, puts, false))
		retried := 0
		for _, pu := range puts {
			a := pu.f.Result().Attempts
			if len(a) > 1 {
				retried++
				require.NotEmpty(t, a[0].ErrorCode)
				require.NotZero(t, a[0].Time)
			}
		}
		require.Greater(t, retried, 500)
	})
}

func TestInternalFailuresWithAggregation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, stream := newFake(t, 4, kinesistest.Options{Seed: 3})
		srv.FailRecords(0.5, "InternalFailure")
		cfg := fastConfig()
		cfg.RateLimit = 100000
		p := newProducer(t, srv, stream, cfg)
		puts := putN(t, p, "if", 5000)
		require.NoError(t, p.Flush(context.Background()))
		require.Empty(t, reconcile(t, srv, stream, puts, false))
	})
}

func TestNetworkErrorsRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, stream := newFake(t, 2, kinesistest.Options{})
		srv.FailNext(kinesistest.OpPutRecords, 4, errors.New("read tcp: connection reset by peer"))
		srv.FailNext(kinesistest.OpPutRecords, 2, nil) // InternalFailure (500)
		p := newProducer(t, srv, stream, fastConfig())
		puts := putN(t, p, "net", 1000)
		require.NoError(t, p.Flush(context.Background()))
		require.Empty(t, reconcile(t, srv, stream, puts, false))
		codes := map[string]bool{}
		for _, pu := range puts {
			for _, a := range pu.f.Result().Attempts {
				codes[a.ErrorCode] = true
			}
		}
		require.True(t, codes["NetworkError"], "%v", codes)
	})
}

func TestLostResponseIsAtLeastOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, stream := newFake(t, 2, kinesistest.Options{})
		srv.FailNextAfterApply(kinesistest.OpPutRecords, 1, nil)
		p := newProducer(t, srv, stream, fastConfig())
		puts := putN(t, p, "lost", 500)
		require.NoError(t, p.Flush(context.Background()))
		require.Empty(t, reconcile(t, srv, stream, puts, true))
	})
}

func TestFailIfThrottled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, stream := newFake(t, 2, kinesistest.Options{})
		srv.FailRecords(1, "ProvisionedThroughputExceededException")
		cfg := fastConfig()
		cfg.FailIfThrottled = true
		p := newProducer(t, srv, stream, cfg)
		puts := putN(t, p, "fit", 200)
		require.NoError(t, p.Flush(context.Background()))
		failed := reconcile(t, srv, stream, puts, false)
		require.Len(t, failed, 200)
		for _, pu := range failed {
			res := pu.f.Result()
			require.ErrorIs(t, res.Err, ErrThrottled)
			require.Len(t, res.Attempts, 1)
			var re *RecordError
			require.ErrorAs(t, res.Err, &re)
			require.Equal(t, "ProvisionedThroughputExceededException", re.Code)
		}
	})
}

func TestNonRetryableErrorsFailAtOnce(t *testing.T) {
	cases := []struct {
		name  string
		err   error
		code  string
		check func(t *testing.T, err error)
	}{
		{"access denied", &types.AccessDeniedException{Message: aws.String("no")}, "", func(t *testing.T, err error) {
			var ad *types.AccessDeniedException
			require.ErrorAs(t, err, &ad)
		}},
		{"not found", &types.ResourceNotFoundException{Message: aws.String("gone")}, "", func(t *testing.T, err error) {
			var nf *types.ResourceNotFoundException
			require.ErrorAs(t, err, &nf)
		}},
		{"kms entry", nil, "KMSAccessDeniedException", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv, stream := newFake(t, 2, kinesistest.Options{})
				if tc.err != nil {
					srv.FailNext(kinesistest.OpPutRecords, 1000, tc.err)
				} else {
					srv.FailRecords(1, tc.code)
				}
				p := newProducer(t, srv, stream, fastConfig())
				puts := putN(t, p, "nr", 100)
				require.NoError(t, p.Flush(context.Background()))
				failed := reconcile(t, srv, stream, puts, false)
				require.Len(t, failed, 100)
				for _, pu := range failed {
					res := pu.f.Result()
					require.ErrorIs(t, res.Err, ErrRejected)
					require.Len(t, res.Attempts, 1)
					if tc.check != nil {
						tc.check(t, res.Err)
					}
				}
			})
		})
	}
}

func TestPutValidation(t *testing.T) {
	srv, stream := newFake(t, 1, kinesistest.Options{})
	p := newProducer(t, srv, stream, fastConfig())
	ctx := context.Background()
	big := make([]byte, MaxRecordSize)
	cases := []struct {
		rec  Record
		want error
	}{
		{Record{PartitionKey: "", Data: []byte("x")}, ErrEmptyPartitionKey},
		{Record{PartitionKey: strings.Repeat("k", 257)}, ErrPartitionKeyTooLong},
		{Record{PartitionKey: strings.Repeat("é", 257)}, ErrPartitionKeyTooLong},
		// Kinesis counts UTF-16 code units: 129 emoji are 258 of them.
		{Record{PartitionKey: strings.Repeat("😀", 129)}, ErrPartitionKeyTooLong},
		{Record{PartitionKey: "k", Data: big}, ErrRecordTooLarge},
		{Record{PartitionKey: "k", ExplicitHashKey: "abc"}, ErrInvalidExplicitHashKey},
		{Record{PartitionKey: "k", ExplicitHashKey: "-1"}, ErrInvalidExplicitHashKey},
		{Record{PartitionKey: "k", ExplicitHashKey: "340282366920938463463374607431768211456"}, ErrInvalidExplicitHashKey},
		{Record{PartitionKey: "k", ExplicitHashKey: "1e5"}, ErrInvalidExplicitHashKey},
		{Record{PartitionKey: "k", ExplicitHashKey: "007"}, ErrInvalidExplicitHashKey},
	}
	for _, tc := range cases {
		_, err := p.PutRecord(ctx, tc.rec, nil)
		require.ErrorIs(t, err, tc.want)
		require.ErrorIs(t, err, ErrInvalidRecord)
	}
	r, _ := p.Outstanding()
	require.Zero(t, r, "nothing enqueued")
	okCases := []Record{
		{PartitionKey: strings.Repeat("é", 256), Data: []byte("a")},
		{PartitionKey: strings.Repeat("😀", 128), Data: []byte("e")},
		{PartitionKey: "k", ExplicitHashKey: "340282366920938463463374607431768211455", Data: []byte("b")},
		{PartitionKey: "k", ExplicitHashKey: "0", Data: []byte("c")},
		{PartitionKey: "k", Data: big[:MaxRecordSize-1]},
	}
	var puts []put
	for _, rec := range okCases {
		f, err := p.PutRecord(ctx, rec, nil)
		require.NoError(t, err)
		puts = append(puts, put{rec.PartitionKey, string(rec.Data), f})
	}
	require.NoError(t, p.Flush(ctx))
	require.Empty(t, reconcile(t, srv, stream, puts, false))
}

func TestConfigValidation(t *testing.T) {
	srv, stream := newFake(t, 1, kinesistest.Options{})
	for _, cfg := range []Config{
		{CollectionMaxCount: 501},
		{AggregationMaxSize: 2 << 20},
		{RecordTTL: time.Millisecond},
		{MaxConnections: -1},
		{MaxBufferedBytes: 10},
		{RateLimit: -5},
	} {
		_, err := New(srv, stream, cfg)
		require.ErrorIs(t, err, ErrInvalidConfig, "%+v", cfg)
	}
	_, err := New(nil, stream, Config{})
	require.ErrorIs(t, err, ErrInvalidConfig)
}

func TestCallbackAndPutSync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, stream := newFake(t, 2, kinesistest.Options{})
		p := newProducer(t, srv, stream, fastConfig())
		ctx := context.Background()
		var mu sync.Mutex
		var got []*Result
		for i := 0; i < 10; i++ {
			_, err := p.PutRecord(ctx, Record{PartitionKey: fmt.Sprint(i), Data: []byte{byte(i)}}, func(r *Result) {
				mu.Lock()
				got = append(got, r)
				mu.Unlock()
			})
			require.NoError(t, err)
		}
		res, err := p.PutSync(ctx, Record{PartitionKey: "sync", Data: []byte("s")})
		require.NoError(t, err)
		require.NotEmpty(t, res.SequenceNumber)
		require.NoError(t, p.Flush(ctx))
		mu.Lock()
		require.Len(t, got, 10)
		mu.Unlock()
	})
}

func TestCloseIdempotentAndPutAfterClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, stream := newFake(t, 2, kinesistest.Options{})
		p, err := New(srv, stream, fastConfig())
		require.NoError(t, err)
		puts := putN(t, p, "close", 300)
		require.NoError(t, p.Close(context.Background()))
		require.Empty(t, reconcile(t, srv, stream, puts, false))
		require.NoError(t, p.Close(context.Background()))
		_, err = p.Put(context.Background(), "k", []byte("x"))
		require.ErrorIs(t, err, ErrClosed)
	})
}

func TestCloseWithRecordsInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, stream := newFake(t, 2, kinesistest.Options{})
		release := make(chan struct{})
		entered := make(chan struct{}, 100)
		srv.SetHook(func(ctx context.Context, op string) error {
			if op != kinesistest.OpPutRecords {
				return nil
			}
			entered <- struct{}{}
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		p, err := New(srv, stream, fastConfig())
		require.NoError(t, err)
		puts := putN(t, p, "inflight", 500)
		<-entered // a call is in flight
		closed := make(chan error)
		go func() { closed <- p.Close(context.Background()) }()
		close(release)
		require.NoError(t, <-closed)
		require.Empty(t, reconcile(t, srv, stream, puts, false))
	})
}

func TestCloseContextEndsWhileStalled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, stream := newFake(t, 2, kinesistest.Options{})
		entered := make(chan struct{}, 100)
		srv.SetHook(func(ctx context.Context, op string) error {
			if op == kinesistest.OpPutRecords {
				entered <- struct{}{}
				<-ctx.Done() // stalled endpoint
				return ctx.Err()
			}
			return nil
		})
		p, err := New(srv, stream, fastConfig())
		require.NoError(t, err)
		puts := putN(t, p, "stall", 500)
		<-entered
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		require.ErrorIs(t, p.Close(ctx), context.DeadlineExceeded)
		failed := 0
		waitAll(t, puts)
		for _, pu := range puts {
			res := pu.f.Result()
			require.ErrorIs(t, res.Err, ErrClosed)
			failed++
		}
		require.Equal(t, 500, failed)
		r, b := p.Outstanding()
		require.Zero(t, r)
		require.Zero(t, b)
	})
}

// TestStalledEndpoint: with a stalled endpoint memory stays at the limit,
// Put blocks or fails with ErrBufferFull, calls time out and records
// expire at their TTL with their attempt history. In a synctest bubble.
func TestStalledEndpoint(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := newBubbleClock()
		srv, stream := newFake(t, 2, kinesistest.Options{Clock: clk})
		stall(srv, kinesistest.OpPutRecords)
		cfg := Config{Clock: clk, Logger: discardLogger(), MaxBufferedRecords: 1000}
		p := newProducer(t, srv, stream, cfg)
		debugHook = p.debugState
		puts := putN(t, p, "stalled", 1000)

		// The buffer is full: Put blocks until its context ends, enqueuing
		// nothing.
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error)
		go func() {
			_, err := p.Put(ctx, "k", []byte("blocked"))
			errc <- err
		}()
		waitPutBlocked(p)
		cancel()
		require.ErrorIs(t, <-errc, context.Canceled)
		r, b := p.Outstanding()
		require.Equal(t, 1000, r)
		require.LessOrEqual(t, b, 1000*(2*32+recordOverhead))

		start := clk.Now()
		driveUntil(t, clk, 50*time.Millisecond, func() bool {
			r, _ := p.Outstanding()
			return r == 0
		})
		elapsed := clk.Now().Sub(start)
		require.GreaterOrEqual(t, elapsed, DefaultRecordTTL)
		// Every outcome by its TTL (to within one step of the test's clock): a
		// call in flight ends when its records' TTL does.
		require.LessOrEqual(t, elapsed, DefaultRecordTTL+50*time.Millisecond)
		for _, pu := range puts {
			res := pu.f.Result()
			require.ErrorIs(t, res.Err, ErrRecordExpired)
			require.NotEmpty(t, res.Attempts)
			for _, a := range res.Attempts {
				require.Equal(t, "RequestTimeout", a.ErrorCode)
				require.LessOrEqual(t, a.Duration, DefaultRequestTimeout)
			}
		}
		require.Empty(t, storedRecords(t, srv, stream))
	})
}

func TestCloseReleasesBlockedPut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, stream := newFake(t, 1, kinesistest.Options{})
		stall(srv, kinesistest.OpPutRecords)
		cfg := fastConfig()
		cfg.MaxBufferedRecords = 10
		p, err := New(srv, stream, cfg)
		require.NoError(t, err)
		puts := putN(t, p, "blocked", 10)
		errc := make(chan error)
		go func() {
			_, err := p.Put(context.Background(), "k", []byte("waits"))
			errc <- err
		}()
		waitPutBlocked(p)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		require.ErrorIs(t, p.Close(ctx), context.DeadlineExceeded)
		require.ErrorIs(t, <-errc, ErrClosed)
		waitAll(t, puts)
	})
}

func TestBufferFullFailsFast(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, stream := newFake(t, 1, kinesistest.Options{})
		stall(srv, kinesistest.OpPutRecords)
		cfg := fastConfig()
		cfg.MaxBufferedRecords = 10
		cfg.FailWhenBufferFull = true
		p, err := New(srv, stream, cfg)
		require.NoError(t, err)
		puts := putN(t, p, "full", 10)
		_, err = p.Put(context.Background(), "k", []byte("one too many"))
		require.ErrorIs(t, err, ErrBufferFull)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		require.ErrorIs(t, p.Close(ctx), context.DeadlineExceeded)
		waitAll(t, puts)
	})
}

// TestBufferingDeadline: a lone record waits RecordMaxBufferedTime, then
// goes. In a synctest bubble.
func TestBufferingDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := newBubbleClock()
		srv, stream := newFake(t, 1, kinesistest.Options{Clock: clk})
		p := newProducer(t, srv, stream, Config{Clock: clk, Logger: discardLogger()})
		driveUntil(t, clk, 0, func() bool {
			p.mu.Lock()
			defer p.mu.Unlock()
			return p.lanes != nil
		})
		f, err := p.Put(context.Background(), "k", []byte("v"))
		require.NoError(t, err)
		t0 := clk.Now()
		synctest.Wait() // the dispatcher has armed the record's buffering deadline
		clk.Advance(DefaultRecordMaxBufferedTime - time.Millisecond)
		require.Nil(t, f.Result(), "sent before its buffering deadline")
		clk.Advance(time.Millisecond)
		_, err = f.Wait(context.Background())
		require.NoError(t, err)
		res := f.Result()
		require.NoError(t, res.Err)
		require.Equal(t, t0.Add(DefaultRecordMaxBufferedTime), res.Attempts[0].Time)
	})
}

// TestContextCancellation: canceling Put's context withdraws a record not
// yet sent.
func TestContextCancellation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := newBubbleClock()
		srv, stream := newFake(t, 1, kinesistest.Options{Clock: clk})
		p := newProducer(t, srv, stream, Config{Clock: clk, Logger: discardLogger(), RecordMaxBufferedTime: time.Second})
		waitMapped(t, clk, p)
		ctx, cancel := context.WithCancel(context.Background())
		gone, err := p.Put(ctx, "k", []byte("canceled"))
		require.NoError(t, err)
		kept, err := p.Put(context.Background(), "k2", []byte("kept"))
		require.NoError(t, err)
		cancel()
		driveUntil(t, clk, 100*time.Millisecond, func() bool { return gone.Result() != nil && kept.Result() != nil })
		require.ErrorIs(t, gone.Result().Err, ErrCanceled)
		require.ErrorIs(t, gone.Result().Err, context.Canceled)
		require.NoError(t, kept.Result().Err)
		st := storedRecords(t, srv, stream)
		require.Len(t, st, 1)
		require.Contains(t, st, "kept")
		_, err = p.Put(ctx, "k", []byte("x"))
		require.ErrorIs(t, err, context.Canceled)
	})
}

// TestRequestTimeoutThenSuccess: a slow call times out and the retry
// succeeds. In a synctest bubble.
func TestRequestTimeoutThenSuccess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := newBubbleClock()
		srv, stream := newFake(t, 1, kinesistest.Options{Clock: clk})
		var mu sync.Mutex
		var blocked atomic.Int64
		stalls := 1
		srv.SetHook(func(ctx context.Context, op string) error {
			mu.Lock()
			stall := op == kinesistest.OpPutRecords && stalls > 0
			if stall {
				stalls--
			}
			mu.Unlock()
			if stall {
				blocked.Add(1)
				defer blocked.Add(-1)
				<-ctx.Done()
				return ctx.Err()
			}
			return nil
		})
		p := newProducer(t, srv, stream, Config{Clock: clk, Logger: discardLogger()})
		puts := putN(t, p, "to", 100)
		driveUntil(t, clk, 100*time.Millisecond, func() bool { r, _ := p.Outstanding(); return r == 0 })
		require.Empty(t, reconcile(t, srv, stream, puts, false))
		a := puts[0].f.Result().Attempts
		require.Len(t, a, 2)
		require.Equal(t, "RequestTimeout", a[0].ErrorCode)
		require.True(t, a[1].Success())
	})
}

// TestRateLimitPerShard: the token bucket holds a shard to RateLimit % of
// 1,000 records/s. In a synctest bubble.
func TestRateLimitPerShard(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := newBubbleClock()
		srv, stream := newFake(t, 1, kinesistest.Options{Clock: clk})
		cc := &recordingClient{Client: srv, clk: clk}
		p := newProducer(t, cc, stream, Config{Clock: clk, Logger: discardLogger(), DisableAggregation: true, RateLimit: 100})
		puts := putN(t, p, "rl", 3000)
		driveUntil(t, clk, 10*time.Millisecond, func() bool { r, _ := p.Outstanding(); return r == 0 })
		for _, f := range reconcile(t, srv, stream, puts, false) {
			t.Fatal(f.f.Result().Err, f.f.Result().Attempts)
		}
		// No one-second window holds more than 1,000 (+ the initial burst of a
		// full bucket) records.
		times := cc.times()
		require.Len(t, times, 3000)
		for i := 2000; i < len(times); i++ {
			require.GreaterOrEqual(t, times[i].Sub(times[i-2000]), time.Second-10*time.Millisecond)
		}
		require.GreaterOrEqual(t, times[len(times)-1].Sub(times[0]), 1900*time.Millisecond)
	})
}

type recordingClient struct {
	Client
	clk clock.Clock
	mu  sync.Mutex
	ts  []time.Time
}

func (c *recordingClient) PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, o ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	now := c.clk.Now()
	c.mu.Lock()
	for range in.Records {
		c.ts = append(c.ts, now)
	}
	c.mu.Unlock()
	return c.Client.PutRecords(ctx, in, o...)
}

func (c *recordingClient) times() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Time(nil), c.ts...)
}

func waitMapped(t *testing.T, clk bubbleClock, p *Producer) {
	t.Helper()
	driveUntil(t, clk, 0, func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.lanes != nil
	})
}

// TestExpireWhileQueued: with the only connection stalled, records queued
// behind it expire at their TTL without ever being sent. In a synctest bubble.
func TestExpireWhileQueued(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := newBubbleClock()
		srv, stream := newFake(t, 1, kinesistest.Options{Clock: clk})
		stall(srv, kinesistest.OpPutRecords)
		p := newProducer(t, srv, stream, Config{Clock: clk, Logger: discardLogger(), MaxConnections: 1, DisableAggregation: true, CollectionMaxCount: 10})
		waitMapped(t, clk, p)
		puts := putN(t, p, "q", 200)
		driveUntil(t, clk, 100*time.Millisecond, func() bool { r, _ := p.Outstanding(); return r == 0 })
		neverSent := 0
		for _, pu := range puts {
			res := pu.f.Result()
			require.ErrorIs(t, res.Err, ErrRecordExpired)
			if len(res.Attempts) == 0 {
				neverSent++
			}
		}
		require.Greater(t, neverSent, 100)
	})
}

// TestListShardsFailures: the shard map is retried with backoff; records
// wait for it within their TTL.
func TestListShardsFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := newBubbleClock()
		srv, stream := newFake(t, 2, kinesistest.Options{Clock: clk})
		srv.FailNext(kinesistest.OpListShards, 3, nil)
		p := newProducer(t, srv, stream, Config{Clock: clk, Logger: discardLogger()})
		t0 := clk.Now() // the records' batch starts no later
		puts := putN(t, p, "ls", 100)
		driveUntil(t, clk, 100*time.Millisecond, func() bool { r, _ := p.Outstanding(); return r == 0 })
		require.Empty(t, reconcile(t, srv, stream, puts, false))
		require.Less(t, clk.Now().Sub(t0), 10*time.Second)
	})
}

// TestStreamNotFound: records for a stream that does not exist fail with
// ErrRejected wrapping the SDK's ResourceNotFoundException.
func TestStreamNotFound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := newBubbleClock()
		srv := kinesistest.New(kinesistest.Options{Clock: clk})
		p := newProducer(t, srv, "missing", Config{Clock: clk, Logger: discardLogger()})
		var puts []put
		for i := 0; i < 10; i++ {
			f, err := p.Put(context.Background(), "k", []byte{byte(i)})
			require.NoError(t, err)
			puts = append(puts, put{"k", string(rune(i)), f})
		}
		driveUntil(t, clk, 100*time.Millisecond, func() bool { r, _ := p.Outstanding(); return r == 0 })
		for _, pu := range puts {
			err := pu.f.Result().Err
			require.ErrorIs(t, err, ErrRejected)
			var nf *types.ResourceNotFoundException
			require.ErrorAs(t, err, &nf)
			require.Contains(t, err.Error(), "ResourceNotFoundException")
		}
		_, err := p.Put(context.Background(), "", nil)
		require.EqualError(t, err, "producer: invalid record: empty partition key")
	})
}
