package prommetrics

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/shardflow/shardflow/lease"
	"github.com/shardflow/shardflow/producer"
	"github.com/stretchr/testify/require"
)

func TestProducerMapping(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	p, err := NewProducer(reg, "orders")
	require.NoError(t, err)

	p.UserRecordReceived(100)
	p.UserRecordReceived(50)
	p.UserRecordsPending(7, 700)
	p.KinesisRecordPut("shardId-000000000000", 3, 300, 320)
	p.KinesisRecordPut("shardId-000000000001", 1, 10, 12)
	p.UserRecordsFailed("shardId-000000000000", 2, fmt.Errorf("wrapped: %w", producer.ErrRecordExpired))
	p.UserRecordsFailed("shardId-000000000000", 1, producer.ErrRejected)
	p.UserRecordsFailed("", 1, errors.New("something new"))
	p.UserRecordsExpired("shardId-000000000000", 2)
	p.BufferingTime("shardId-000000000000", 40*time.Millisecond)
	p.RetriesPerRecord("shardId-000000000000", 2)
	p.RequestTime(250*time.Millisecond, 4, nil)
	p.ErrorsByCode("shardId-000000000001", "ProvisionedThroughputExceededException", 2)

	expect := `
# HELP shardflow_producer_user_records_received_total User records accepted by Put (KPL UserRecordsReceived).
# TYPE shardflow_producer_user_records_received_total counter
shardflow_producer_user_records_received_total{stream="orders"} 2
# HELP shardflow_producer_user_records_received_bytes_total Data bytes of the user records accepted by Put.
# TYPE shardflow_producer_user_records_received_bytes_total counter
shardflow_producer_user_records_received_bytes_total{stream="orders"} 150
# HELP shardflow_producer_user_records_pending User records with no outcome yet, buffered or in flight (KPL UserRecordsPending).
# TYPE shardflow_producer_user_records_pending gauge
shardflow_producer_user_records_pending{stream="orders"} 7
# HELP shardflow_producer_user_records_pending_bytes Data bytes of the user records with no outcome yet.
# TYPE shardflow_producer_user_records_pending_bytes gauge
shardflow_producer_user_records_pending_bytes{stream="orders"} 700
# HELP shardflow_producer_user_records_put_total User records put (KPL UserRecordsPut).
# TYPE shardflow_producer_user_records_put_total counter
shardflow_producer_user_records_put_total{shard="shardId-000000000000",stream="orders"} 3
shardflow_producer_user_records_put_total{shard="shardId-000000000001",stream="orders"} 1
# HELP shardflow_producer_user_records_data_put_bytes_total Data bytes of the user records put (KPL UserRecordsDataPut).
# TYPE shardflow_producer_user_records_data_put_bytes_total counter
shardflow_producer_user_records_data_put_bytes_total{shard="shardId-000000000000",stream="orders"} 300
shardflow_producer_user_records_data_put_bytes_total{shard="shardId-000000000001",stream="orders"} 10
# HELP shardflow_producer_kinesis_records_put_total Kinesis records put, each carrying one or more user records (KPL KinesisRecordsPut).
# TYPE shardflow_producer_kinesis_records_put_total counter
shardflow_producer_kinesis_records_put_total{shard="shardId-000000000000",stream="orders"} 1
shardflow_producer_kinesis_records_put_total{shard="shardId-000000000001",stream="orders"} 1
# HELP shardflow_producer_kinesis_records_data_put_bytes_total Bytes of the Kinesis records put (KPL KinesisRecordsDataPut).
# TYPE shardflow_producer_kinesis_records_data_put_bytes_total counter
shardflow_producer_kinesis_records_data_put_bytes_total{shard="shardId-000000000000",stream="orders"} 320
shardflow_producer_kinesis_records_data_put_bytes_total{shard="shardId-000000000001",stream="orders"} 12
# HELP shardflow_producer_user_records_failed_total User records that failed for good, by reason (expired, throttled, rejected, canceled, closed, other).
# TYPE shardflow_producer_user_records_failed_total counter
shardflow_producer_user_records_failed_total{reason="expired",shard="shardId-000000000000",stream="orders"} 2
shardflow_producer_user_records_failed_total{reason="other",shard="",stream="orders"} 1
shardflow_producer_user_records_failed_total{reason="rejected",shard="shardId-000000000000",stream="orders"} 1
# HELP shardflow_producer_user_records_expired_total User records that passed RecordTTL (KPL UserRecordExpired).
# TYPE shardflow_producer_user_records_expired_total counter
shardflow_producer_user_records_expired_total{shard="shardId-000000000000",stream="orders"} 2
# HELP shardflow_producer_errors_by_code_total Kinesis records that failed an attempt, by error code (KPL ErrorsByCode; sum for KPL AllErrors).
# TYPE shardflow_producer_errors_by_code_total counter
shardflow_producer_errors_by_code_total{code="ProvisionedThroughputExceededException",shard="shardId-000000000001",stream="orders"} 2
`
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(expect),
		"shardflow_producer_user_records_received_total",
		"shardflow_producer_user_records_received_bytes_total",
		"shardflow_producer_user_records_pending",
		"shardflow_producer_user_records_pending_bytes",
		"shardflow_producer_user_records_put_total",
		"shardflow_producer_user_records_data_put_bytes_total",
		"shardflow_producer_kinesis_records_put_total",
		"shardflow_producer_kinesis_records_data_put_bytes_total",
		"shardflow_producer_user_records_failed_total",
		"shardflow_producer_user_records_expired_total",
		"shardflow_producer_errors_by_code_total",
	))

	// Histograms: one observation each, in base units.
	for name, sum := range map[string]float64{
		"shardflow_producer_buffering_time_seconds":                  0.04,
		"shardflow_producer_retries_per_record":                      2,
		"shardflow_producer_request_time_seconds":                    0.25,
		"shardflow_producer_kinesis_records_per_put_records_request": 4,
	} {
		h := histogramOf(t, reg, name, nil)
		require.Equal(t, uint64(1), h.GetSampleCount(), name)
		require.InDelta(t, sum, h.GetSampleSum(), 1e-9, name)
	}
	h := histogramOf(t, reg, "shardflow_producer_user_records_per_kinesis_record", nil)
	require.Equal(t, uint64(2), h.GetSampleCount())
	require.InDelta(t, 4, h.GetSampleSum(), 1e-9)
	requireLintClean(t, reg)
}

func TestConsumerMapping(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	c, err := NewConsumer(reg, "orders")
	require.NoError(t, err)
	const s0, s1 = "shardId-000000000000", "shardId-000000000001"

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

	require.Equal(t, 15.0, testutil.ToFloat64(c.processed.WithLabelValues(s0)))
	require.Equal(t, 1500.0, testutil.ToFloat64(c.processedBytes.WithLabelValues(s0)))
	require.Equal(t, 1.5, testutil.ToFloat64(c.behindLatest.WithLabelValues(s0)))
	require.Equal(t, 1.0, testutil.ToFloat64(c.processorErrors.WithLabelValues(s1)))
	require.Equal(t, 3.0, testutil.ToFloat64(c.outOfRange.WithLabelValues(s1)))
	require.Equal(t, 1.0, testutil.ToFloat64(c.throttles.WithLabelValues(s0)))
	require.Equal(t, 1.0, testutil.ToFloat64(c.expiredIters.WithLabelValues(s0)))
	require.Equal(t, 2.0, testutil.ToFloat64(c.leasesHeld))
	require.Equal(t, 2.0, testutil.ToFloat64(c.leasesTaken))
	h := histogramOf(t, reg, "shardflow_consumer_process_records_duration_seconds", nil)
	require.Equal(t, uint64(2), h.GetSampleCount())
	require.InDelta(t, 0.05, h.GetSampleSum(), 1e-9)

	// A lost lease drops its shard's lag: another worker reports it now.
	require.Equal(t, 2, testutil.CollectAndCount(c.behindLatest, "shardflow_consumer_behind_latest_seconds"))
	c.LeaseLost(s0)
	c.LeasesHeld(1)
	require.Equal(t, 1, testutil.CollectAndCount(c.behindLatest, "shardflow_consumer_behind_latest_seconds"))
	require.Equal(t, 1.0, testutil.ToFloat64(c.leasesLost))
	// A shard handed over (or ended, or shut down) here drops its lag too,
	// without counting a loss.
	c.ShardReleased(s1)
	require.Equal(t, 0, testutil.CollectAndCount(c.behindLatest, "shardflow_consumer_behind_latest_seconds"))
	require.Equal(t, 1.0, testutil.ToFloat64(c.leasesLost))
	requireLintClean(t, reg)
}

func TestLeaseMapping(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	l, err := NewLease(reg, "orders-app")
	require.NoError(t, err)

	l.RenewPass(lease.RenewStats{Held: 5, Renewed: 3, Skipped: 1, Lost: 1, Failed: 0, Duration: 40 * time.Millisecond})
	require.Equal(t, 3.0, testutil.ToFloat64(l.renewed))
	require.Equal(t, 1.0, testutil.ToFloat64(l.renewSkipped))
	require.Equal(t, 1.0, testutil.ToFloat64(l.lost))
	require.Equal(t, 4.0, testutil.ToFloat64(l.held))

	l.TakePass(lease.TakeStats{Balance: true, Leases: 12, Workers: 3, Target: 4, Held: 4, Taken: 0, Stolen: 1, Failed: 1, Duration: time.Second})
	require.Equal(t, 4.0, testutil.ToFloat64(l.held))
	require.Equal(t, 3.0, testutil.ToFloat64(l.workers))
	require.Equal(t, 4.0, testutil.ToFloat64(l.target))
	require.Equal(t, 12.0, testutil.ToFloat64(l.tableLeases))
	require.Equal(t, 1.0, testutil.ToFloat64(l.stolen))
	require.Equal(t, 1.0, testutil.ToFloat64(l.takeErr))

	// A failed scan counts an error and leaves the table figures alone.
	l.TakePass(lease.TakeStats{Err: errors.New("scan failed"), Duration: time.Millisecond})
	require.Equal(t, 1.0, testutil.ToFloat64(l.scanErrors.WithLabelValues("expiry_scan")))
	require.Equal(t, 3.0, testutil.ToFloat64(l.workers))
	require.Equal(t, 4.0, testutil.ToFloat64(l.held))
	require.Equal(t, uint64(1), histogramOf(t, reg, "shardflow_lease_take_duration_seconds", map[string]string{lPass: "balance"}).GetSampleCount())
	require.Equal(t, uint64(1), histogramOf(t, reg, "shardflow_lease_take_duration_seconds", map[string]string{lPass: "expiry_scan"}).GetSampleCount())

	// A targeted pass (owner index, no scan) has its own label; a failed
	// one counts an error under it and leaves the table figures alone.
	l.TakePass(lease.TakeStats{Targeted: true, Err: errors.New("query failed"), Duration: time.Millisecond})
	require.Equal(t, 1.0, testutil.ToFloat64(l.scanErrors.WithLabelValues("targeted")))
	require.Equal(t, 1.0, testutil.ToFloat64(l.scanErrors.WithLabelValues("expiry_scan")))
	require.Equal(t, 3.0, testutil.ToFloat64(l.workers))
	l.TakePass(lease.TakeStats{Targeted: true, Leases: 12, Workers: 2, Target: 6, Held: 6, Taken: 2, Duration: time.Millisecond})
	require.Equal(t, 2.0, testutil.ToFloat64(l.workers))
	require.Equal(t, uint64(2), histogramOf(t, reg, "shardflow_lease_take_duration_seconds", map[string]string{lPass: "targeted"}).GetSampleCount())
	requireLintClean(t, reg)
}

// Two producers (two streams, or one re-created) on one registry share the
// collectors and are told apart by the stream label.
func TestSharedRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, err := NewProducer(reg, "a")
	require.NoError(t, err)
	b, err := NewProducer(reg, "b")
	require.NoError(t, err)
	again, err := NewProducer(reg, "a")
	require.NoError(t, err)
	a.UserRecordReceived(1)
	again.UserRecordReceived(1)
	b.UserRecordReceived(1)
	require.Equal(t, 2.0, testutil.ToFloat64(a.received))
	require.Equal(t, 1.0, testutil.ToFloat64(b.received))
	_, err = NewConsumer(reg, "a")
	require.NoError(t, err)
	_, err = NewLease(reg, "app")
	require.NoError(t, err)

	// A different collector under one of our names is an error, not a
	// silent reuse, and leaves the registry as it was.
	clash := prometheus.NewRegistry()
	clash.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "shardflow_producer_user_records_pending_bytes", Help: "someone else's"}))
	_, err = NewProducer(clash, "a")
	require.Error(t, err)
	require.Contains(t, err.Error(), "prommetrics:")
	// Registering what the failed call had registered before the clash
	// works: it was unregistered.
	require.NoError(t, clash.Register(newProducerVecs().received))
}

// Error codes are capped so that free-form codes cannot grow the series
// count without bound.
func TestErrorCodesBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	p, err := NewProducer(reg, "s")
	require.NoError(t, err)
	for i := range maxCodes + 10 {
		p.ErrorsByCode("shardId-000000000000", fmt.Sprintf("Code%d", i), 1)
	}
	p.ErrorsByCode("shardId-000000000000", "Code0", 1) // admitted before the cap: kept
	require.Equal(t, maxCodes+1, testutil.CollectAndCount(reg, "shardflow_producer_errors_by_code_total"))
	require.Equal(t, 10.0, testutil.ToFloat64(p.errorsByCode.WithLabelValues("shardId-000000000000", overflowCode)))
	require.Equal(t, 2.0, testutil.ToFloat64(p.errorsByCode.WithLabelValues("shardId-000000000000", "Code0")))
}

func requireLintClean(t *testing.T, reg *prometheus.Registry) {
	t.Helper()
	problems, err := testutil.GatherAndLint(reg)
	require.NoError(t, err)
	require.Empty(t, problems)
}
