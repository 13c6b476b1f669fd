package otelmetrics

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/shardflow/shardflow/lease"
	"github.com/shardflow/shardflow/producer"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

const s0, s1 = "shardId-000000000000", "shardId-000000000001"

func newReader(t *testing.T) (*sdkmetric.ManualReader, *sdkmetric.MeterProvider) {
	t.Helper()
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	t.Cleanup(func() { _ = mp.Shutdown(t.Context()) })
	return r, mp
}

// collect reads every metric of our scope by name.
func collect(t *testing.T, r *sdkmetric.ManualReader) map[string]metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, r.Collect(t.Context(), &rm))
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		require.Equal(t, scope, sm.Scope.Name)
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

func set(kv ...attribute.KeyValue) attribute.Set { return attribute.NewSet(kv...) }

func stream(s string) attribute.KeyValue { return keyStream.String(s) }
func shard(s string) attribute.KeyValue  { return keyShard.String(s) }

// sum returns the value of a counter's (monotonic int sum) point with set.
func sum(t *testing.T, ms map[string]metricdata.Metrics, sp spec, set attribute.Set) int64 {
	t.Helper()
	m, ok := ms[sp.name]
	require.True(t, ok, "no %s", sp.name)
	require.Equal(t, sp.unit, m.Unit, sp.name)
	d, ok := m.Data.(metricdata.Sum[int64])
	require.True(t, ok, "%s is %T, not an int64 sum", sp.name, m.Data)
	require.True(t, d.IsMonotonic, sp.name)
	for _, p := range d.DataPoints {
		if p.Attributes.Equals(&set) {
			return p.Value
		}
	}
	t.Fatalf("%s has no point with %v", sp.name, set.ToSlice())
	return 0
}

func gauge[N int64 | float64](t *testing.T, ms map[string]metricdata.Metrics, sp spec) map[attribute.Distinct]N {
	t.Helper()
	m, ok := ms[sp.name]
	require.True(t, ok, "no %s", sp.name)
	require.Equal(t, sp.unit, m.Unit, sp.name)
	d, ok := m.Data.(metricdata.Gauge[N])
	require.True(t, ok, "%s is %T", sp.name, m.Data)
	out := map[attribute.Distinct]N{}
	for _, p := range d.DataPoints {
		out[p.Attributes.Equivalent()] = p.Value
	}
	return out
}

func hist[N int64 | float64](t *testing.T, ms map[string]metricdata.Metrics, sp spec, set attribute.Set) metricdata.HistogramDataPoint[N] {
	t.Helper()
	m, ok := ms[sp.name]
	require.True(t, ok, "no %s", sp.name)
	require.Equal(t, sp.unit, m.Unit, sp.name)
	d, ok := m.Data.(metricdata.Histogram[N])
	require.True(t, ok, "%s is %T", sp.name, m.Data)
	for _, p := range d.DataPoints {
		if p.Attributes.Equals(&set) {
			return p
		}
	}
	t.Fatalf("%s has no point with %v", sp.name, set.ToSlice())
	return metricdata.HistogramDataPoint[N]{}
}

func TestProducerInstruments(t *testing.T) {
	r, mp := newReader(t)
	p, err := NewProducer(mp, "orders")
	require.NoError(t, err)

	p.UserRecordReceived(100)
	p.UserRecordReceived(50)
	p.UserRecordsPending(7, 700)
	p.KinesisRecordPut(s0, 3, 300, 320)
	p.KinesisRecordPut(s1, 1, 10, 12)
	p.KinesisRecordPut(s1, 2, 20, 24)
	p.UserRecordsFailed(s0, 2, fmt.Errorf("wrapped: %w", producer.ErrRecordExpired))
	p.UserRecordsFailed(s0, 1, errors.New("new kind of failure"))
	p.UserRecordsExpired(s0, 2)
	p.BufferingTime(s0, 40*time.Millisecond)
	p.RetriesPerRecord(s0, 2)
	p.RequestTime(250*time.Millisecond, 4, nil)
	p.ErrorsByCode(s1, "ProvisionedThroughputExceededException", 2)

	ms := collect(t, r)
	st := set(stream("orders"))
	require.Equal(t, int64(2), sum(t, ms, pReceived, st))
	require.Equal(t, int64(150), sum(t, ms, pReceivedSize, st))
	require.Equal(t, int64(7), gauge[int64](t, ms, pPending)[st.Equivalent()])
	require.Equal(t, int64(700), gauge[int64](t, ms, pPendingSize)[st.Equivalent()])
	require.Equal(t, int64(3), sum(t, ms, pUserPut, set(stream("orders"), shard(s0))))
	require.Equal(t, int64(3), sum(t, ms, pUserPut, set(stream("orders"), shard(s1))))
	require.Equal(t, int64(30), sum(t, ms, pUserPutSize, set(stream("orders"), shard(s1))))
	require.Equal(t, int64(2), sum(t, ms, pKinesisPut, set(stream("orders"), shard(s1))))
	require.Equal(t, int64(36), sum(t, ms, pKinesisPutSize, set(stream("orders"), shard(s1))))
	require.Equal(t, int64(2), sum(t, ms, pFailed, set(stream("orders"), shard(s0), keyReason.String("expired"))))
	require.Equal(t, int64(1), sum(t, ms, pFailed, set(stream("orders"), shard(s0), keyReason.String("other"))))
	require.Equal(t, int64(2), sum(t, ms, pExpired, set(stream("orders"), shard(s0))))
	require.Equal(t, int64(2), sum(t, ms, pErrorsByCode, set(stream("orders"), shard(s1), keyCode.String("ProvisionedThroughputExceededException"))))

	upk := hist[int64](t, ms, pUserPerKinesis, st)
	require.Equal(t, uint64(3), upk.Count)
	require.Equal(t, int64(6), upk.Sum)
	require.Equal(t, perRecordBuckets, upk.Bounds)
	bt := hist[float64](t, ms, pBufferingTime, st)
	require.Equal(t, uint64(1), bt.Count)
	require.InDelta(t, 0.04, bt.Sum, 1e-9)
	require.Equal(t, secondsBuckets, bt.Bounds)
	require.Equal(t, int64(2), hist[int64](t, ms, pRetries, st).Sum)
	require.InDelta(t, 0.25, hist[float64](t, ms, pRequestTime, st).Sum, 1e-9)
	require.Equal(t, int64(4), hist[int64](t, ms, pKinesisPerRequest, st).Sum)
}

func TestConsumerInstruments(t *testing.T) {
	r, mp := newReader(t)
	c, err := NewConsumer(mp, "orders")
	require.NoError(t, err)
	st := set(stream("orders"))
	a0, a1 := set(stream("orders"), shard(s0)), set(stream("orders"), shard(s1))

	c.LeaseTaken(s0)
	c.LeaseTaken(s1)
	c.LeasesHeld(2)
	c.RecordsProcessed(s0, 10, 1000, 20*time.Millisecond)
	c.RecordsProcessed(s0, 5, 500, 30*time.Millisecond)
	c.MillisBehindLatest(s0, 1500)
	c.MillisBehindLatest(s1, 0)
	c.ProcessorError(s1)
	c.OutOfRangeRecords(s1, 3)
	c.Throttled(s0)
	c.IteratorExpired(s0)

	ms := collect(t, r)
	require.Equal(t, int64(15), sum(t, ms, cProcessed, a0))
	require.Equal(t, int64(1500), sum(t, ms, cProcessedSize, a0))
	require.Equal(t, int64(1), sum(t, ms, cProcessorError, a1))
	require.Equal(t, int64(3), sum(t, ms, cOutOfRange, a1))
	require.Equal(t, int64(1), sum(t, ms, cThrottles, a0))
	require.Equal(t, int64(1), sum(t, ms, cExpiredIters, a0))
	require.Equal(t, int64(2), sum(t, ms, cLeasesTaken, st))
	require.Equal(t, int64(2), gauge[int64](t, ms, cLeasesHeld)[st.Equivalent()])
	pt := hist[float64](t, ms, cProcessTime, st)
	require.Equal(t, uint64(2), pt.Count)
	require.InDelta(t, 0.05, pt.Sum, 1e-9)
	require.Equal(t, map[attribute.Distinct]float64{a0.Equivalent(): 1.5, a1.Equivalent(): 0}, gauge[float64](t, ms, cBehindLatest))

	// A lost lease's lag is no longer reported; the other shard's is.
	c.LeaseLost(s0)
	ms = collect(t, r)
	require.Equal(t, map[attribute.Distinct]float64{a1.Equivalent(): 0}, gauge[float64](t, ms, cBehindLatest))
	require.Equal(t, int64(1), sum(t, ms, cLeasesLost, st))

	// A shard handed over (or ended, or shut down) here is no longer
	// reported either, and is not a loss.
	c.ShardReleased(s1)
	ms = collect(t, r)
	if m, ok := ms[cBehindLatest.name]; ok {
		require.Empty(t, m.Data.(metricdata.Gauge[float64]).DataPoints)
	}
	require.Equal(t, int64(1), sum(t, ms, cLeasesLost, st))

	// Close stops the lag gauge and is idempotent.
	require.NoError(t, c.Close())
	require.NoError(t, c.Close())
	ms = collect(t, r)
	if m, ok := ms[cBehindLatest.name]; ok {
		require.Empty(t, m.Data.(metricdata.Gauge[float64]).DataPoints)
	}
}

func TestLeaseInstruments(t *testing.T) {
	r, mp := newReader(t)
	l, err := NewLease(mp, "orders-app")
	require.NoError(t, err)
	app := set(keyApp.String("orders-app"))

	l.RenewPass(lease.RenewStats{Held: 5, Renewed: 3, Skipped: 1, Lost: 1, Duration: 40 * time.Millisecond})
	l.TakePass(lease.TakeStats{Balance: true, Leases: 12, Workers: 3, Target: 4, Held: 4, Stolen: 1, Failed: 1, Duration: time.Second})
	l.TakePass(lease.TakeStats{Err: errors.New("scan failed"), Duration: time.Millisecond})
	// A targeted pass (owner index, no scan) has its own label, also
	// when it fails (Balance is never set on one; a stray one is ignored).
	l.TakePass(lease.TakeStats{Targeted: true, Balance: true, Err: errors.New("query failed"), Duration: time.Millisecond})

	ms := collect(t, r)
	require.Equal(t, int64(3), sum(t, ms, lRenewed, app))
	require.Equal(t, int64(1), sum(t, ms, lRenewSkipped, app))
	require.Equal(t, int64(1), sum(t, ms, lLost, app))
	require.Equal(t, int64(1), sum(t, ms, lStolen, app))
	require.Equal(t, int64(1), sum(t, ms, lTakeFailed, app))
	require.Equal(t, int64(1), sum(t, ms, lScanErrors, set(keyApp.String("orders-app"), keyPass.String("expiry_scan"))))
	// The failed scan left the table figures of the last good one.
	require.Equal(t, int64(4), gauge[int64](t, ms, lHeld)[app.Equivalent()])
	require.Equal(t, int64(3), gauge[int64](t, ms, lWorkers)[app.Equivalent()])
	require.Equal(t, int64(4), gauge[int64](t, ms, lTarget)[app.Equivalent()])
	require.Equal(t, int64(12), gauge[int64](t, ms, lTableLeases)[app.Equivalent()])
	require.InDelta(t, 0.04, hist[float64](t, ms, lRenewTime, app).Sum, 1e-9)
	require.Equal(t, uint64(1), hist[float64](t, ms, lTakeTime, set(keyApp.String("orders-app"), keyPass.String("balance"))).Count)
	require.Equal(t, uint64(1), hist[float64](t, ms, lTakeTime, set(keyApp.String("orders-app"), keyPass.String("expiry_scan"))).Count)
	require.Equal(t, int64(1), sum(t, ms, lScanErrors, set(keyApp.String("orders-app"), keyPass.String("targeted"))))
	require.Equal(t, uint64(1), hist[float64](t, ms, lTakeTime, set(keyApp.String("orders-app"), keyPass.String("targeted"))).Count)
}

func TestErrorCodesBounded(t *testing.T) {
	r, mp := newReader(t)
	p, err := NewProducer(mp, "s")
	require.NoError(t, err)
	for i := range maxCodes + 10 {
		p.ErrorsByCode(s0, fmt.Sprintf("Code%d", i), 1)
	}
	ms := collect(t, r)
	require.Len(t, ms[pErrorsByCode.name].Data.(metricdata.Sum[int64]).DataPoints, maxCodes+1)
	require.Equal(t, int64(10), sum(t, ms, pErrorsByCode, set(stream("s"), shard(s0), keyCode.String(overflowCode))))
}

func TestNilProvider(t *testing.T) {
	_, err := NewProducer(nil, "s")
	require.ErrorIs(t, err, errNilProvider)
	_, err = NewConsumer(nil, "s")
	require.ErrorIs(t, err, errNilProvider)
	_, err = NewLease(nil, "a")
	require.ErrorIs(t, err, errNilProvider)
}
