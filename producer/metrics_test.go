package producer

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/kinesistest"
)

type countMetrics struct {
	NopMetrics
	mu                                   sync.Mutex
	received, userPut, kinesisPut, fails int
	errors                               map[string]int
	buffering, retries, requests         int
}

func (m *countMetrics) UserRecordReceived(int) { m.mu.Lock(); m.received++; m.mu.Unlock() }
func (m *countMetrics) KinesisRecordPut(_ string, u, _, _ int) {
	m.mu.Lock()
	m.userPut += u
	m.kinesisPut++
	m.mu.Unlock()
}
func (m *countMetrics) UserRecordsFailed(_ string, n int, _ error) {
	m.mu.Lock()
	m.fails += n
	m.mu.Unlock()
}
func (m *countMetrics) ErrorsByCode(_, code string, n int) {
	m.mu.Lock()
	m.errors[code] += n
	m.mu.Unlock()
}
func (m *countMetrics) BufferingTime(string, time.Duration) {
	m.mu.Lock()
	m.buffering++
	m.mu.Unlock()
}
func (m *countMetrics) RetriesPerRecord(string, int) { m.mu.Lock(); m.retries++; m.mu.Unlock() }
func (m *countMetrics) RequestTime(time.Duration, int, error) {
	m.mu.Lock()
	m.requests++
	m.mu.Unlock()
}

func TestMetrics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, stream := newFake(t, 2, kinesistest.Options{})
		srv.FailNext(kinesistest.OpPutRecords, 1, nil)
		m := &countMetrics{errors: map[string]int{}}
		cfg := fastConfig()
		cfg.Metrics = m
		p := newProducer(t, srv, stream, cfg)
		puts := putN(t, p, "m", 1000)
		require.NoError(t, p.Flush(context.Background()))
		require.Empty(t, reconcile(t, srv, stream, puts, false))
		m.mu.Lock()
		defer m.mu.Unlock()
		require.Equal(t, 1000, m.received)
		require.Equal(t, 1000, m.userPut)
		require.Equal(t, 1000, m.buffering)
		require.Equal(t, 1000, m.retries)
		require.Zero(t, m.fails)
		require.Positive(t, m.errors["InternalFailure"]+m.errors["InternalFailureException"], "%v", m.errors)
		require.Less(t, m.kinesisPut, 100)
		require.GreaterOrEqual(t, m.requests, 2)
	})
}

func TestCallbackMayPut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, stream := newFake(t, 2, kinesistest.Options{})
		cfg := fastConfig()
		cfg.MaxBufferedRecords = 5
		p := newProducer(t, srv, stream, cfg)
		ctx := context.Background()
		var mu sync.Mutex
		var chained []*Future
		for i := 0; i < 5; i++ {
			_, err := p.PutRecord(ctx, Record{PartitionKey: "k", Data: []byte{byte(i)}}, func(r *Result) {
				f, err := p.Put(ctx, "chained", []byte("x"))
				if err == nil {
					mu.Lock()
					chained = append(chained, f)
					mu.Unlock()
				}
			})
			require.NoError(t, err)
		}
		require.NoError(t, p.Flush(ctx))
		require.NoError(t, p.Flush(ctx))
		mu.Lock()
		defer mu.Unlock()
		require.Len(t, chained, 5)
		for _, f := range chained {
			_, err := f.Wait(ctx)
			require.NoError(t, err)
		}
	})
}

func TestLargeRecordsWithMaxAggregation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, stream := newFake(t, 1, kinesistest.Options{})
		cfg := fastConfig()
		cfg.AggregationMaxSize = MaxRecordSize
		p := newProducer(t, srv, stream, cfg)
		var puts []put
		for i := 0; i < 6; i++ {
			data := make([]byte, 400<<10+i)
			data[0] = byte(i)
			f, err := p.Put(context.Background(), "same-key", data)
			require.NoError(t, err)
			puts = append(puts, put{"same-key", string(data), f})
		}
		require.NoError(t, p.Flush(context.Background()))
		require.Empty(t, reconcile(t, srv, stream, puts, false))
	})
}

// oneHook implements a single hook and nothing else: the shape every
// implementation written before a new hook existed has after it exists.
type oneHook struct{ n atomic.Int64 }

func (m *oneHook) KinesisRecordPut(_ string, userRecords, _, _ int) { m.n.Add(int64(userRecords)) }

// A Metrics implementing one hook gets exactly that hook's calls; any
// value (even one with no hook) is accepted.
func TestMetricsSingleHook(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, stream := newFake(t, 2, kinesistest.Options{})
		m := &oneHook{}
		cfg := fastConfig()
		cfg.Metrics = m
		p := newProducer(t, srv, stream, cfg)
		puts := putN(t, p, "m", 300)
		require.NoError(t, p.Flush(context.Background()))
		require.Empty(t, reconcile(t, srv, stream, puts, false))
		require.EqualValues(t, 300, m.n.Load())

		cfg.Metrics = struct{}{} // no hook at all
		p2 := newProducer(t, srv, stream, cfg)
		require.False(t, p2.metricsOn)
		require.NoError(t, p2.Flush(context.Background()))
	})
}

func TestMetricHooksResolved(t *testing.T) {
	require.False(t, newMetricHooks(nil, slog.New(slog.DiscardHandler)).on)
	require.False(t, newMetricHooks(NopMetrics{}, slog.New(slog.DiscardHandler)).on, "NopMetrics implements no hook")
	require.True(t, newMetricHooks(&oneHook{}, slog.New(slog.DiscardHandler)).on)
	h := newMetricHooks(&countMetrics{}, slog.New(slog.DiscardHandler))
	require.True(t, h.on)
	_, isNop := h.pending.(nopHooks)
	require.True(t, isNop, "countMetrics has no UserRecordsPending")
	_, isNop = h.received.(nopHooks)
	require.False(t, isNop)
}

// BenchmarkPutMetrics is BenchmarkProducer's repeated-key Put with no
// Metrics, with one hook and with every hook set (counting into atomics):
// a hook costs its own work, and no allocation per call.
//
//	go test -run '^$' -bench PutMetrics -benchmem ./producer/
func BenchmarkPutMetrics(b *testing.B) {
	keys := benchKeySet("repeated")
	for _, c := range []struct {
		name string
		m    Metrics
	}{{"hooks=none", nil}, {"hooks=one", &oneHook{}}, {"hooks=all", &allHooks{}}} {
		b.Run(c.name, func(b *testing.B) {
			p, _ := benchProducer(b, Config{Metrics: c.m})
			data := make([]byte, benchDataSize)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := p.Put(ctx, keys[i%len(keys)], data); err != nil {
					b.Fatal(err)
				}
			}
			if err := p.Flush(ctx); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// allHooks implements every producer hook, with an atomic add each.
type allHooks struct{ n atomic.Int64 }

var (
	_ HookUserRecordReceived = (*allHooks)(nil)
	_ HookUserRecordsPending = (*allHooks)(nil)
	_ HookKinesisRecordPut   = (*allHooks)(nil)
	_ HookUserRecordsFailed  = (*allHooks)(nil)
	_ HookUserRecordsExpired = (*allHooks)(nil)
	_ HookBufferingTime      = (*allHooks)(nil)
	_ HookRetriesPerRecord   = (*allHooks)(nil)
	_ HookRequestTime        = (*allHooks)(nil)
	_ HookErrorsByCode       = (*allHooks)(nil)
)

func (m *allHooks) UserRecordReceived(int)                 { m.n.Add(1) }
func (m *allHooks) UserRecordsPending(int, int)            { m.n.Add(1) }
func (m *allHooks) KinesisRecordPut(string, int, int, int) { m.n.Add(1) }
func (m *allHooks) UserRecordsFailed(string, int, error)   { m.n.Add(1) }
func (m *allHooks) UserRecordsExpired(string, int)         { m.n.Add(1) }
func (m *allHooks) BufferingTime(string, time.Duration)    { m.n.Add(1) }
func (m *allHooks) RetriesPerRecord(string, int)           { m.n.Add(1) }
func (m *allHooks) RequestTime(time.Duration, int, error)  { m.n.Add(1) }
func (m *allHooks) ErrorsByCode(string, string, int)       { m.n.Add(1) }
