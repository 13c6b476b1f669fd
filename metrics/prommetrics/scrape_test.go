package prommetrics

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/shardflow/shardflow/consumer"
	"github.com/shardflow/shardflow/kinesistest"
	"github.com/shardflow/shardflow/lease"
	"github.com/shardflow/shardflow/producer"
	"github.com/stretchr/testify/require"
)

// A real producer and consumer on kinesistest, observed the way Prometheus
// sees them: by scraping /metrics over HTTP. Every assertion holds whatever
// the machine's speed: it waits for outcomes and deliveries, never for time.
func TestScrapeProducerAndConsumer(t *testing.T) {
	ctx := t.Context()
	const stream, records, shards = "orders", 400, 4
	srv := kinesistest.New(kinesistest.Options{})
	t.Cleanup(func() { _ = srv.Close() })
	srv.MustCreateStream(stream, shards)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	reg := prometheus.NewRegistry()
	pm, err := NewProducer(reg, stream)
	require.NoError(t, err)
	cm, err := NewConsumer(reg, stream)
	require.NoError(t, err)

	// The first PutRecords call is throttled, so retries and an error code
	// show up; every record still succeeds in the end.
	srv.FailNext(kinesistest.OpPutRecords, 1, &types.ProvisionedThroughputExceededException{Message: aws.String("slow down")})
	p, err := producer.New(srv, stream, producer.Config{Metrics: pm, Logger: quiet})
	require.NoError(t, err)
	futures := make([]*producer.Future, records)
	for i := range futures {
		futures[i], err = p.Put(ctx, fmt.Sprintf("key-%d", i), []byte(fmt.Sprintf("record-%d", i)))
		require.NoError(t, err)
	}
	for _, f := range futures {
		_, err := f.Wait(ctx)
		require.NoError(t, err)
	}
	require.NoError(t, p.Close(ctx))

	var seen atomic.Int64
	all := make(chan struct{})
	c, err := consumer.New(srv, lease.NewMemoryStore(), consumer.ProcessRecord(func(context.Context, string, consumer.Record) error {
		if seen.Add(1) == records {
			close(all)
		}
		return nil
	}), consumer.Config{
		ApplicationName:       "orders-app",
		StreamName:            stream,
		InitialPosition:       consumer.InitialPosition{Type: consumer.TrimHorizon},
		IdleTimeBetweenReads:  consumer.MinIdleTimeBetweenReads,
		LeaseInitialTakeDelay: -1,
		Metrics:               cm,
		Logger:                quiet,
	})
	require.NoError(t, err)
	runErr := make(chan error, 1)
	go func() { runErr <- c.Run(ctx) }()
	select {
	case <-all:
	case err := <-runErr:
		t.Fatalf("consumer stopped before delivering every record: %v", err)
	}
	web := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(web.Close)
	running := scrape(t, web.URL+"/metrics") // the lag, while the shards are processed here
	require.NoError(t, c.Shutdown(ctx))
	require.NoError(t, <-runErr)
	fams := scrape(t, web.URL+"/metrics")

	shardIDs := srv.ShardIDs(stream)
	require.Len(t, shardIDs, shards)

	// Producer: every record put exactly once, spread over the real shards.
	require.Equal(t, float64(records), sumOf(t, fams, "shardflow_producer_user_records_received_total", nil))
	require.Equal(t, float64(records), sumOf(t, fams, "shardflow_producer_user_records_put_total", map[string]string{"stream": stream}))
	require.ElementsMatch(t, shardIDs, labelValues(fams, "shardflow_producer_user_records_put_total", "shard"))
	require.Positive(t, sumOf(t, fams, "shardflow_producer_kinesis_records_put_total", nil))
	require.Positive(t, sumOf(t, fams, "shardflow_producer_errors_by_code_total", map[string]string{"code": "ProvisionedThroughputExceededException"}))
	require.Equal(t, []string{"ProvisionedThroughputExceededException"}, labelValues(fams, "shardflow_producer_errors_by_code_total", "code"))
	retries := histogramIn(t, fams, "shardflow_producer_retries_per_record", nil)
	require.Equal(t, uint64(records), retries.GetSampleCount())
	require.Positive(t, retries.GetSampleSum(), "the records of the throttled call were retried")
	require.Equal(t, uint64(records), histogramIn(t, fams, "shardflow_producer_buffering_time_seconds", nil).GetSampleCount())
	require.Positive(t, histogramIn(t, fams, "shardflow_producer_request_time_seconds", nil).GetSampleCount())
	require.Zero(t, sumOf(t, fams, "shardflow_producer_user_records_pending", nil), "nothing pending after Close")
	_, failed := fams["shardflow_producer_user_records_failed_total"]
	require.False(t, failed, "no record failed for good")

	// Consumer: at least once, on every shard, with its lag.
	require.GreaterOrEqual(t, sumOf(t, fams, "shardflow_consumer_records_processed_total", map[string]string{"stream": stream}), float64(records))
	require.ElementsMatch(t, shardIDs, labelValues(fams, "shardflow_consumer_records_processed_total", "shard"))
	// Lag per shard; a shard whose lease was lost (possible only on a
	// machine stalled past the failover time) would have dropped out.
	lagShards := labelValues(running, "shardflow_consumer_behind_latest_seconds", "shard")
	require.NotEmpty(t, lagShards)
	require.Subset(t, shardIDs, lagShards)
	// Shut down, the worker exports no shard's lag: its shards are
	// released (ShardReleased), for their next owner to report.
	require.Empty(t, labelValues(fams, "shardflow_consumer_behind_latest_seconds", "shard"))
	require.GreaterOrEqual(t, sumOf(t, fams, "shardflow_consumer_leases_taken_total", nil), float64(shards))
	require.Positive(t, histogramIn(t, fams, "shardflow_consumer_process_records_duration_seconds", nil).GetSampleCount())
}

func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain"), resp.Header.Get("Content-Type"))
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return fams
}

func matches(m *dto.Metric, labels map[string]string) bool {
	have := map[string]string{}
	for _, lp := range m.GetLabel() {
		have[lp.GetName()] = lp.GetValue()
	}
	for k, v := range labels {
		if have[k] != v {
			return false
		}
	}
	return true
}

// sumOf adds the counter or gauge values of name's series matching labels.
func sumOf(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	f, ok := fams[name]
	require.True(t, ok, "no %s in the scrape", name)
	var sum float64
	for _, m := range f.GetMetric() {
		if !matches(m, labels) {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		default:
			t.Fatalf("%s is neither a counter nor a gauge", name)
		}
	}
	return sum
}

func labelValues(fams map[string]*dto.MetricFamily, name, label string) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range fams[name].GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == label && !seen[lp.GetValue()] {
				seen[lp.GetValue()] = true
				out = append(out, lp.GetValue())
			}
		}
	}
	return out
}

func histogramIn(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string) *dto.Histogram {
	t.Helper()
	f, ok := fams[name]
	require.True(t, ok, "no %s", name)
	for _, m := range f.GetMetric() {
		if matches(m, labels) && m.Histogram != nil {
			return m.GetHistogram()
		}
	}
	t.Fatalf("no %s histogram with labels %v", name, labels)
	return nil
}

func histogramOf(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) *dto.Histogram {
	t.Helper()
	got, err := g.Gather()
	require.NoError(t, err)
	fams := map[string]*dto.MetricFamily{}
	for _, f := range got {
		fams[f.GetName()] = f
	}
	return histogramIn(t, fams, name, labels)
}
