package emfmetrics

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/shardflow/shardflow/lease"
	"github.com/shardflow/shardflow/producer"
	"github.com/stretchr/testify/require"
)

const s0, s1 = "shardId-000000000000", "shardId-000000000001"

var at = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

func newEmitter(t *testing.T, opts Options) (*Emitter, *bytes.Buffer) {
	t.Helper()
	var out bytes.Buffer
	if opts.Now == nil {
		opts.Now = func() time.Time { return at }
	}
	e, err := New(&out, opts)
	require.NoError(t, err)
	return e, &out
}

func TestProducerLines(t *testing.T) {
	e, out := newEmitter(t, Options{})
	p, err := e.Producer("orders")
	require.NoError(t, err)

	p.UserRecordReceived(100)
	p.UserRecordReceived(50)
	p.UserRecordsPending(7, 700)
	p.UserRecordsPending(3, 300)
	p.KinesisRecordPut(s0, 3, 300, 320)
	p.KinesisRecordPut(s0, 1, 10, 12)
	p.UserRecordsFailed(s0, 2, producer.ErrRecordExpired)
	p.UserRecordsExpired(s0, 2)
	p.UserRecordsFailed("", 1, producer.ErrRejected) // no shard map yet: stream level only
	p.BufferingTime(s0, 40*time.Millisecond)
	p.BufferingTime(s0, 1500*time.Microsecond)
	p.RetriesPerRecord(s0, 2)
	p.RequestTime(250*time.Millisecond, 4, nil)
	p.ErrorsByCode(s1, "ProvisionedThroughputExceededException", 2)
	p.ErrorsByCode(s1, "InternalFailure", 1)
	require.NoError(t, e.Flush())

	docs := parseEMF(t, out.Bytes())
	require.Len(t, docs, 5) // stream, s0, s1, s1 x 2 codes
	for _, d := range docs {
		require.Equal(t, at.UnixMilli(), d.Timestamp)
	}

	st := find(t, docs, DefaultProducerNamespace, map[string]string{dimStream: "orders"})
	require.Equal(t, [][]string{{dimStream}}, st.Dimensions)
	require.Equal(t, []float64{2}, st.values(t, "UserRecordsReceived"))
	require.Equal(t, []float64{150}, st.values(t, "UserRecordsDataReceived"))
	require.Equal(t, []float64{7, 3}, st.values(t, "UserRecordsPending"))
	require.Equal(t, []float64{700, 300}, st.values(t, "UserRecordsDataPending"))
	require.Equal(t, []float64{250}, st.values(t, "RequestTime"))
	require.Equal(t, []float64{4}, st.values(t, "KinesisRecordsPerPutRecordsRequest"))
	require.Equal(t, []float64{1}, st.values(t, "UserRecordsFailed"))
	require.Equal(t, map[string]string{
		"UserRecordsReceived": "Count", "UserRecordsDataReceived": "Bytes", "UserRecordsPending": "Count",
		"UserRecordsDataPending": "Bytes", "RequestTime": "Milliseconds", "KinesisRecordsPerPutRecordsRequest": "Count",
		"UserRecordsFailed": "Count",
	}, st.Units)

	sh := find(t, docs, DefaultProducerNamespace, map[string]string{dimStream: "orders", dimShard: s0})
	require.Equal(t, [][]string{{dimStream}, {dimStream, dimShard}}, sh.Dimensions)
	require.Equal(t, []float64{4}, sh.values(t, "UserRecordsPut"))
	require.Equal(t, []float64{310}, sh.values(t, "UserRecordsDataPut"))
	require.Equal(t, []float64{2}, sh.values(t, "KinesisRecordsPut"))
	require.Equal(t, []float64{332}, sh.values(t, "KinesisRecordsDataPut"))
	require.Equal(t, []float64{3, 1}, sh.values(t, "UserRecordsPerKinesisRecord"))
	require.Equal(t, []float64{2}, sh.values(t, "UserRecordsFailed"))
	require.Equal(t, []float64{2}, sh.values(t, "UserRecordExpired"))
	require.Equal(t, []float64{40, 1.5}, sh.values(t, "BufferingTime"))
	require.Equal(t, "Milliseconds", sh.Units["BufferingTime"])
	require.Equal(t, []float64{2}, sh.values(t, "RetriesPerRecord"))

	all := find(t, docs, DefaultProducerNamespace, map[string]string{dimStream: "orders", dimShard: s1})
	require.Equal(t, []float64{3}, all.values(t, "AllErrors"))
	code := find(t, docs, DefaultProducerNamespace, map[string]string{dimStream: "orders", dimShard: s1, dimCode: "ProvisionedThroughputExceededException"})
	require.Equal(t, [][]string{{dimStream, dimCode}, {dimStream, dimShard, dimCode}}, code.Dimensions)
	require.Equal(t, []float64{2}, code.values(t, "ErrorsByCode"))
	require.Equal(t, []float64{1}, find(t, docs, DefaultProducerNamespace,
		map[string]string{dimStream: "orders", dimShard: s1, dimCode: "InternalFailure"}).values(t, "ErrorsByCode"))

	// A new interval starts empty: nothing to write.
	out.Reset()
	require.NoError(t, e.Flush())
	require.Empty(t, out.String())
}

func TestConsumerLines(t *testing.T) {
	e, out := newEmitter(t, Options{})
	c, err := e.Consumer("orders-app")
	require.NoError(t, err)

	c.LeaseTaken(s0)
	c.LeaseTaken(s1)
	c.LeasesHeld(2)
	c.RecordsProcessed(s0, 10, 1000, 20*time.Millisecond)
	c.RecordsProcessed(s0, 5, 500, 30*time.Millisecond)
	c.MillisBehindLatest(s0, 1500)
	c.MillisBehindLatest(s0, 900)
	c.ProcessorError(s1)
	c.OutOfRangeRecords(s1, 3)
	c.Throttled(s0)
	c.IteratorExpired(s0)
	c.LeaseLost(s1)
	c.LeasesHeld(1)
	require.NoError(t, e.Flush())

	docs := parseEMF(t, out.Bytes())
	require.Len(t, docs, 4)
	p0 := find(t, docs, "orders-app", map[string]string{dimOperation: opProcessTask, dimShard: s0})
	require.Equal(t, [][]string{{dimOperation}, {dimOperation, dimShard}}, p0.Dimensions)
	require.Equal(t, []float64{15}, p0.values(t, "RecordsProcessed"))
	require.Equal(t, []float64{1500}, p0.values(t, "DataBytesProcessed"))
	require.Equal(t, []float64{20, 30}, p0.values(t, "RecordProcessor.processRecords.Time"))
	require.Equal(t, []float64{1500, 900}, p0.values(t, "MillisBehindLatest"))
	require.Equal(t, "Milliseconds", p0.Units["MillisBehindLatest"])
	require.Equal(t, "Bytes", p0.Units["DataBytesProcessed"])
	require.Equal(t, []float64{1}, p0.values(t, "ReadThrottles"))
	require.Equal(t, []float64{1}, p0.values(t, "ExpiredIterator"))
	p1 := find(t, docs, "orders-app", map[string]string{dimOperation: opProcessTask, dimShard: s1})
	require.Equal(t, []float64{1}, p1.values(t, "ProcessorErrors"))
	require.Equal(t, []float64{3}, p1.values(t, "OutOfRangeRecords"))

	renew := find(t, docs, "orders-app", map[string]string{dimOperation: opRenewAll})
	require.Equal(t, [][]string{{dimOperation}}, renew.Dimensions)
	require.Equal(t, []float64{2, 1}, renew.values(t, "CurrentLeases"))
	require.Equal(t, []float64{1}, renew.values(t, "LostLeases"))
	take := find(t, docs, "orders-app", map[string]string{dimOperation: opTakeLeases})
	require.Equal(t, []float64{2}, take.values(t, "TakenLeases"))
}

func TestLeaseLines(t *testing.T) {
	e, out := newEmitter(t, Options{})
	l, err := e.Lease("orders-app")
	require.NoError(t, err)

	l.RenewPass(lease.RenewStats{Held: 5, Renewed: 3, Skipped: 1, Lost: 1, Duration: 40 * time.Millisecond})
	l.TakePass(lease.TakeStats{Balance: true, Leases: 12, Workers: 3, Target: 4, Held: 4, Taken: 1, Stolen: 1, Failed: 1, Duration: time.Second})
	l.TakePass(lease.TakeStats{Err: errors.New("scan failed"), Duration: 5 * time.Millisecond})
	require.NoError(t, e.Flush())

	docs := parseEMF(t, out.Bytes())
	require.Len(t, docs, 2)
	renew := find(t, docs, "orders-app", map[string]string{dimOperation: opRenewAll})
	require.Equal(t, []float64{3}, renew.values(t, "RenewLease.Success"))
	require.Equal(t, []float64{1}, renew.values(t, "RenewLease.Skipped"))
	require.Equal(t, []float64{0}, renew.values(t, "RenewLease.Failure"))
	require.Equal(t, []float64{1}, renew.values(t, "LostLeases"))
	require.Equal(t, []float64{4}, renew.values(t, "CurrentLeases"))
	require.Equal(t, []float64{40}, renew.values(t, "Time"))
	require.Equal(t, []float64{1}, renew.values(t, "Success"))
	take := find(t, docs, "orders-app", map[string]string{dimOperation: opTakeLeases})
	require.Equal(t, []float64{1000, 5}, take.values(t, "Time"))
	require.Equal(t, []float64{1}, take.values(t, "Success"))
	require.Equal(t, []float64{1}, take.values(t, "ListLeases.Failure"))
	require.Equal(t, []float64{2}, take.values(t, "TakenLeases"))
	require.Equal(t, []float64{1}, take.values(t, "StolenLeases"))
	require.Equal(t, []float64{1}, take.values(t, "TakeLease.Failure"))
	require.Equal(t, []float64{3}, take.values(t, "NumWorkers"))
	require.Equal(t, []float64{4}, take.values(t, "NeededLeases"))
	require.Equal(t, []float64{12}, take.values(t, "TotalLeases"))
}

func TestStreamGranularity(t *testing.T) {
	e, out := newEmitter(t, Options{Granularity: Stream})
	p, err := e.Producer("orders")
	require.NoError(t, err)
	c, err := e.Consumer("orders-app")
	require.NoError(t, err)
	p.KinesisRecordPut(s0, 3, 300, 320)
	p.KinesisRecordPut(s1, 2, 200, 220)
	p.ErrorsByCode(s1, "InternalFailure", 1)
	c.RecordsProcessed(s0, 1, 10, time.Millisecond)
	c.RecordsProcessed(s1, 2, 20, time.Millisecond)
	require.NoError(t, e.Flush())

	docs := parseEMF(t, out.Bytes())
	for _, d := range docs {
		_, has := d.Root[dimShard]
		require.False(t, has, "no ShardId at stream granularity")
		require.Len(t, d.Dimensions, 1)
	}
	st := find(t, docs, DefaultProducerNamespace, map[string]string{dimStream: "orders"})
	require.Equal(t, []float64{5}, st.values(t, "UserRecordsPut"))
	require.Equal(t, []float64{1}, st.values(t, "AllErrors"))
	require.Equal(t, []float64{3}, find(t, docs, "orders-app", map[string]string{dimOperation: opProcessTask}).values(t, "RecordsProcessed"))
}

func TestExtraDimensions(t *testing.T) {
	e, out := newEmitter(t, Options{Dimensions: map[string]string{"Service": "checkout", "Env": "prod"}, ProducerNamespace: "Checkout/KPL"})
	p, err := e.Producer("orders")
	require.NoError(t, err)
	p.ErrorsByCode(s0, "InternalFailure", 1)
	require.NoError(t, e.Flush())
	docs := parseEMF(t, out.Bytes())
	require.Len(t, docs, 2)
	for _, d := range docs {
		require.Equal(t, "Checkout/KPL", d.Namespace)
		require.Equal(t, "checkout", d.str(t, "Service"))
		require.Equal(t, "prod", d.str(t, "Env"))
		for _, set := range d.Dimensions {
			require.Equal(t, []string{"Env", "Service"}, set[len(set)-2:], "extra dimensions end every set")
		}
	}
	code := find(t, docs, "Checkout/KPL", map[string]string{dimStream: "orders", dimShard: s0, dimCode: "InternalFailure"})
	require.Equal(t, [][]string{{dimStream, dimCode, "Env", "Service"}, {dimStream, dimShard, dimCode, "Env", "Service"}}, code.Dimensions)
}

// Past maxSamples values a metric carries a sample that keeps the exact
// minimum and maximum; sums stay exact.
func TestSamplesCapped(t *testing.T) {
	e, out := newEmitter(t, Options{})
	p, err := e.Producer("orders")
	require.NoError(t, err)
	const n = 10_000
	for i := 1; i <= n; i++ {
		p.BufferingTime(s0, time.Duration(i)*time.Millisecond)
		p.KinesisRecordPut(s0, 1, 1, 1)
	}
	require.NoError(t, e.Flush())
	d := find(t, parseEMF(t, out.Bytes()), DefaultProducerNamespace, map[string]string{dimStream: "orders", dimShard: s0})
	vals := d.values(t, "BufferingTime")
	require.Len(t, vals, maxSamples)
	require.Contains(t, vals, 1.0)
	require.Contains(t, vals, float64(n))
	var mean float64
	for _, v := range vals {
		require.GreaterOrEqual(t, v, 1.0)
		require.LessOrEqual(t, v, float64(n))
		mean += v / float64(len(vals))
	}
	// A uniform sample of 1..10000: its mean is within a wide band around
	// 5000 (the band is many standard deviations, about 290, wide).
	require.InDelta(t, n/2, mean, 2500)
	require.Equal(t, []float64{n}, d.values(t, "UserRecordsPut"))
}

func TestErrorCodesCapped(t *testing.T) {
	e, out := newEmitter(t, Options{})
	p, err := e.Producer("orders")
	require.NoError(t, err)
	for i := range maxCodes + 10 {
		p.ErrorsByCode(s0, fmt.Sprintf("Code%d", i), 1)
	}
	require.NoError(t, e.Flush())
	docs := parseEMF(t, out.Bytes())
	require.Len(t, docs, 1+maxCodes+1) // AllErrors, the admitted codes, Other
	require.Equal(t, []float64{10}, find(t, docs, DefaultProducerNamespace,
		map[string]string{dimStream: "orders", dimShard: s0, dimCode: overflowCode}).values(t, "ErrorsByCode"))
	require.Equal(t, []float64{maxCodes + 10}, find(t, docs, DefaultProducerNamespace,
		map[string]string{dimStream: "orders", dimShard: s0}).values(t, "AllErrors"))
}

// syncBuffer is a bytes.Buffer safe for the Run goroutine and the test.
type syncBuffer struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
	fail   error
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.writes++
	if b.fail != nil {
		err := b.fail
		b.fail = nil
		return 0, err
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) take() (string, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	b.buf.Reset()
	return s, b.writes
}

func TestRunFlushesEachIntervalAndAtTheEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		out := &syncBuffer{fail: errors.New("disk full")}
		e, err := New(out, Options{})
		require.NoError(t, err)
		p, err := e.Producer("orders")
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- e.Run(ctx, 0) }()

		p.UserRecordReceived(1)
		time.Sleep(DefaultInterval) // the first flush fails
		synctest.Wait()
		s, writes := out.take()
		require.Equal(t, 1, writes)
		require.Empty(t, s)

		p.UserRecordReceived(1)
		time.Sleep(DefaultInterval) // Run kept going
		synctest.Wait()
		s, writes = out.take()
		require.Equal(t, 2, writes)
		d := parseEMF(t, []byte(s))
		require.Len(t, d, 1)
		require.Equal(t, []float64{1}, d[0].values(t, "UserRecordsReceived"))
		require.Equal(t, time.Now().UnixMilli(), d[0].Timestamp)

		time.Sleep(DefaultInterval) // nothing recorded: nothing written
		synctest.Wait()
		_, writes = out.take()
		require.Equal(t, 2, writes)

		p.UserRecordReceived(1)
		p.UserRecordReceived(1)
		cancel() // the final flush writes what is left
		err = <-done
		require.ErrorContains(t, err, "disk full")
		s, _ = out.take()
		require.Equal(t, []float64{2}, parseEMF(t, []byte(s))[0].values(t, "UserRecordsReceived"))
	})
}

func TestInvalidOptions(t *testing.T) {
	var out bytes.Buffer
	for name, opts := range map[string]Options{
		"too many dimensions": {Dimensions: map[string]string{"a": "1", "b": "1", "c": "1", "d": "1", "e": "1", "f": "1", "g": "1"}},
		"reserved dimension":  {Dimensions: map[string]string{"ShardId": "x"}},
		"empty value":         {Dimensions: map[string]string{"Service": ""}},
		"granularity":         {Granularity: 7},
		"long namespace":      {ProducerNamespace: string(make([]byte, 256))},
	} {
		_, err := New(&out, opts)
		require.ErrorIs(t, err, ErrInvalidOptions, name)
	}
	_, err := New(nil, Options{})
	require.ErrorIs(t, err, ErrInvalidOptions)

	e, err := New(&out, Options{})
	require.NoError(t, err)
	_, err = e.Producer("")
	require.ErrorIs(t, err, ErrInvalidOptions)
	_, err = e.Consumer("")
	require.ErrorIs(t, err, ErrInvalidOptions)
	_, err = e.Lease("")
	require.ErrorIs(t, err, ErrInvalidOptions)
}
