package main

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/producer"
)

func TestRunMemoryReconciles(t *testing.T) {
	for _, aggregate := range []string{"true", "false"} {
		t.Run("aggregate="+aggregate, func(t *testing.T) {
			o, err := parseOptions([]string{
				"-records", "3000", "-shards", "2", "-producers", "2", "-workers", "1",
				"-report", "0", "-aggregate=" + aggregate, "-keys", "50", "-size", "64",
			}, io.Discard)
			require.NoError(t, err)
			ctx := t.Context() // go test -timeout is the only bound: a slow machine must not fail this
			var out bytes.Buffer
			s, err := run(ctx, o, &out)
			require.NoError(t, err)
			t.Log("\n" + out.String())

			require.True(t, s.Reconciled)
			require.Zero(t, s.Lost, "lost")
			require.Zero(t, s.Duplicates, "duplicates")
			require.Equal(t, int64(3000), s.Produced)
			require.Equal(t, int64(3000), s.Unique)
			require.Zero(t, s.Failed)
			require.Equal(t, int64(3000*64), s.ProducedBytes)
			require.Equal(t, uint64(3000), s.PutLatency.N)
			require.Equal(t, uint64(3000), s.E2ELatency.N)
			require.Positive(t, s.PutLatency.P50)
			require.LessOrEqual(t, s.PutLatency.P50, s.PutLatency.P99)
			require.LessOrEqual(t, s.PutLatency.P99, s.PutLatency.Max)
			require.Positive(t, s.AllocsPerRecord)
			require.Positive(t, s.PeakHeap)
			if aggregate == "true" {
				require.Less(t, s.KinesisRecords, int64(3000), "aggregation packs records")
			} else {
				require.Equal(t, int64(3000), s.KinesisRecords)
			}

			text := out.String()
			for _, re := range []string{
				`(?m)^config +target=memory mode=both .*aggregate=` + aggregate + ` size=64 keys=50 `,
				`(?m)^produce +records=3000 failed=0 put_errors=0 elapsed=\S+ rate=\d+ rec/s throughput=[\d.]+ MiB/s `,
				`(?m)^put_latency n=3000 p50=\S+ p99=\S+ max=\S+$`,
				`(?m)^consume +records=3000 unique=3000 `,
				`(?m)^e2e_latency n=3000 p50=\S+ p99=\S+ max=\S+$`,
				`(?m)^cost +records=3000 cpu=(\d+|n/a) ns/record allocs=[\d.]+/record peak_heap=[\d.]+ MiB `,
				`(?m)^failures +none$`,
				`(?m)^reconcile +lost=0 duplicates=0$`,
			} {
				require.Regexp(t, regexp.MustCompile(re), text)
			}
		})
	}
}

// cancelOnWrite cancels a context at the first progress line, standing in
// for a SIGINT in the middle of producing.
type cancelOnWrite struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	cancel context.CancelFunc
}

func (w *cancelOnWrite) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if bytes.HasPrefix(p, []byte("[")) {
		w.cancel()
	}
	return w.buf.Write(p)
}

func TestRunInterruptShutsDownGracefully(t *testing.T) {
	o, err := parseOptions([]string{
		"-records", "0", "-duration", "1h", "-rate", "5000", "-shards", "2",
		"-producers", "2", "-workers", "1", "-report", "50ms",
	}, io.Discard)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &cancelOnWrite{cancel: cancel}
	s, err := run(ctx, o, w)
	require.NoError(t, err)
	t.Log("\n" + w.buf.String())
	require.True(t, s.Interrupted)
	// Everything put before the interrupt is flushed by Close and drained
	// from the consumers: nothing is withdrawn, nothing lost.
	require.Zero(t, s.Failed)
	require.Zero(t, s.Lost)
	require.Equal(t, s.Produced, s.Unique)
}

func TestParseOptions(t *testing.T) {
	o, err := parseOptions(nil, io.Discard)
	require.NoError(t, err)
	require.Equal(t, "memory", o.target)
	require.Equal(t, "both", o.mode)
	require.Equal(t, int64(200_000), o.records)
	require.Equal(t, 30*time.Second, o.duration)
	require.Equal(t, 100, o.size)
	require.True(t, o.aggregate)

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-target", "gcp"}, "-target"},
		{[]string{"-mode", "read"}, "-mode"},
		{[]string{"-size", "10"}, "-size"},
		{[]string{"-records", "0", "-duration", "0"}, "never stop"},
		{[]string{"-mode", "consume", "-records", "0"}, "preloads"},
		{[]string{"-producers", "0"}, "at least 1"},
		{[]string{"-rate", "-1"}, "negative"},
		{[]string{"extra"}, "unexpected"},
	} {
		_, err := parseOptions(tc.args, io.Discard)
		require.ErrorContains(t, err, tc.want, "%q", tc.args)
	}
}

func TestHistogram(t *testing.T) {
	// Every value lands in a bucket whose midpoint is within 1/16 of it.
	r := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		v := r.Uint64() >> r.UintN(64)
		mid := bucketMid(bucketOf(v))
		diff := max(mid, v) - min(mid, v)
		require.LessOrEqual(t, diff, v/16+1, "v=%d mid=%d", v, mid)
	}
	require.Equal(t, histBuckets-1, bucketOf(^uint64(0)))

	var h histogram
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Millisecond)
	}
	c := h.snapshot()
	require.Equal(t, uint64(1000), c.total())
	require.InEpsilon(t, float64(500*time.Millisecond), float64(c.quantile(0.5)), 0.07)
	require.InEpsilon(t, float64(990*time.Millisecond), float64(c.quantile(0.99)), 0.07)
	require.Equal(t, int64(time.Second), h.max.Load())

	// An interval is the difference of two snapshots.
	for range 10 {
		h.record(5 * time.Second)
	}
	d := h.snapshot()
	iv := d.sub(&c)
	require.Equal(t, uint64(10), iv.total())
	require.InEpsilon(t, float64(5*time.Second), float64(iv.quantile(0.5)), 0.07)
	var empty histCounts
	require.Zero(t, empty.quantile(0.5))
}

func TestTokenBucket(t *testing.T) {
	now := time.Unix(0, 0)
	b := newTokenBucket(1000, 10, func() time.Time { return now })
	require.Zero(t, b.reserve(10), "the burst is available at once")
	require.Equal(t, 10*time.Millisecond, b.reserve(10))
	require.Equal(t, 20*time.Millisecond, b.reserve(10), "reservations queue up")
	now = now.Add(25 * time.Millisecond)
	require.Equal(t, 5*time.Millisecond, b.reserve(10), "25 ms refilled 25 of the 30 owed")
	now = now.Add(time.Hour)
	require.Zero(t, b.reserve(10), "idle time refills up to the burst only")
	require.Equal(t, 10*time.Millisecond, b.reserve(10))

	require.Equal(t, 256, chunkFor(0))
	require.Equal(t, 1, chunkFor(10))
	require.Equal(t, 25, chunkFor(5000))
	require.Equal(t, 256, chunkFor(1e9))
}

func TestIDBitmap(t *testing.T) {
	var a, b idBitmap
	ids := []uint64{0, 63, 64, segmentIDs - 1, segmentIDs, 3*segmentIDs + 17}
	for _, id := range ids {
		require.True(t, a.add(id))
		require.False(t, a.add(id), "second add of %d", id)
		require.True(t, a.has(id))
	}
	require.False(t, a.has(1))
	require.False(t, a.has(5*segmentIDs))
	require.Equal(t, int64(len(ids)), a.countMissing(&b))
	b.add(63)
	b.add(segmentIDs)
	b.add(7) // not in a: does not count
	require.Equal(t, int64(len(ids)-2), a.countMissing(&b))
	require.Zero(t, b.countMissing(&b))
}

func TestClassify(t *testing.T) {
	require.Equal(t, "other", classify(io.EOF))
	require.Equal(t, "expired", classify(&producer.RecordError{Reason: producer.ErrRecordExpired}))
	require.Equal(t, "throttled/ProvisionedThroughputExceededException",
		classify(&producer.RecordError{Reason: producer.ErrThrottled, Code: throttleCode}))
	require.Regexp(t, `^[0-9a-f]{16}$`, randomKey())
}

func TestRunMemorySingleModes(t *testing.T) {
	for _, mode := range []string{"produce", "consume"} {
		t.Run(mode, func(t *testing.T) {
			o, err := parseOptions([]string{
				"-mode", mode, "-records", "2000", "-shards", "2", "-producers", "2",
				"-workers", "1", "-report", "0",
			}, io.Discard)
			require.NoError(t, err)
			ctx := t.Context() // go test -timeout is the only bound: a slow machine must not fail this
			var out bytes.Buffer
			s, err := run(ctx, o, &out)
			require.NoError(t, err)
			t.Log("\n" + out.String())
			require.False(t, s.Reconciled, "only -mode both reconciles")
			require.NotContains(t, out.String(), "reconcile")
			require.Equal(t, int64(2000), s.Produced) // the preload, in -mode consume
			require.Equal(t, int64(2000), s.Records)
			if mode == "produce" {
				require.Zero(t, s.Consumed)
				require.NotContains(t, out.String(), "e2e_latency")
			} else {
				require.Equal(t, int64(2000), s.Consumed)
				require.Equal(t, int64(2000), s.Unique)
				require.Contains(t, out.String(), "preload ")
			}
		})
	}
}

// lockedBuffer is the tool's output, read by the test while it runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// -metrics-addr serves /metrics and the health endpoints while the tool
// runs: lag per shard, records put and processed.
func TestMetricsAddr(t *testing.T) {
	o, err := parseOptions([]string{
		"-records", "0", "-duration", "1h", "-rate", "2000", "-shards", "2", "-workers", "1",
		"-report", "0", "-metrics-addr", "127.0.0.1:0",
	}, io.Discard)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out lockedBuffer
	done := make(chan error, 1)
	go func() {
		_, err := run(ctx, o, &out)
		done <- err
	}()
	addrRe := regexp.MustCompile(`metrics on http://(\S+)/metrics`)
	var addr string
	for addr == "" { // no deadline: go test's -timeout
		if m := addrRe.FindStringSubmatch(out.String()); m != nil {
			addr = m[1]
		}
		time.Sleep(time.Millisecond)
	}
	processed := regexp.MustCompile(`(?m)^shardflow_consumer_records_processed_total\{stream="shardflow-load",shard="shardId-00000000000[01]"\} [1-9]`)
	var body string
	for !processed.MatchString(body) {
		body = get(t, "http://"+addr+"/metrics")
		time.Sleep(10 * time.Millisecond)
	}
	require.Regexp(t, `(?m)^shardflow_producer_user_records_put_total\{stream="shardflow-load",shard="shardId-000000000000"\} \d+`, body)
	require.Regexp(t, `(?m)^shardflow_consumer_behind_latest_seconds\{stream="shardflow-load",shard="shardId-000000000001"\} \S+`, body)
	require.Equal(t, "ok\n", get(t, "http://"+addr+"/readyz"))
	require.Contains(t, get(t, "http://"+addr+"/status"), `"BufferedRecords"`)
	cancel()
	require.NoError(t, <-done)
}

func get(t *testing.T, url string) string {
	t.Helper()
	res, err := http.Get(url)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode, string(b))
	return string(b)
}
