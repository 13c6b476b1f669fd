package producer

import (
	"context"
	"sync"
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
