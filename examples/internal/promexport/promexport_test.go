package promexport

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/consumer"
	mn "github.com/shardflow/shardflow/internal/metricnames"
	"github.com/shardflow/shardflow/kinesistest"
	"github.com/shardflow/shardflow/lease"
	"github.com/shardflow/shardflow/producer"
)

// sampleKey is a sample's name and labels, as written.
type sampleKey struct {
	name   string
	labels string // k="v",... sorted as exposed
}

// parse checks text against the Prometheus text exposition format (0.0.4)
// and returns its samples: every line is a HELP, a TYPE or a sample; a
// family's HELP and TYPE come before its samples, once; sample names are
// the family's (with _bucket, _sum, _count for histograms); label values
// are quoted with escapes; values are floats; a histogram's buckets are
// cumulative and end with le="+Inf" equal to its _count.
func parse(t *testing.T, text string) (map[sampleKey]float64, map[string]string) {
	t.Helper()
	samples, types, err := parseText(text)
	require.NoError(t, err)
	return samples, types
}

var (
	nameRe   = `[a-zA-Z_:][a-zA-Z0-9_:]*`
	helpRe   = regexp.MustCompile(`^# HELP (` + nameRe + `) (.*)$`)
	typeRe   = regexp.MustCompile(`^# TYPE (` + nameRe + `) (counter|gauge|histogram|summary|untyped)$`)
	sampleRe = regexp.MustCompile(`^(` + nameRe + `)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*",?)*)\})? (\S+)$`)
	leRe     = regexp.MustCompile(`,?le="[^"]*"`)
)

func parseText(text string) (map[sampleKey]float64, map[string]string, error) {
	types := map[string]string{}
	helped := map[string]bool{}
	samples := map[sampleKey]float64{}
	family := ""
	lastBucket := map[string]float64{}
	infBuckets := map[sampleKey]float64{} // _count sample -> its +Inf bucket
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if m := helpRe.FindStringSubmatch(line); m != nil {
			if helped[m[1]] {
				return nil, nil, fmt.Errorf("line %d: second HELP for %s", n, m[1])
			}
			helped[m[1]], family = true, m[1]
			continue
		}
		if m := typeRe.FindStringSubmatch(line); m != nil {
			if _, ok := types[m[1]]; ok {
				return nil, nil, fmt.Errorf("line %d: second TYPE for %s", n, m[1])
			}
			if family != m[1] {
				return nil, nil, fmt.Errorf("line %d: TYPE of %s not after its HELP", n, m[1])
			}
			types[m[1]] = m[2]
			continue
		}
		m := sampleRe.FindStringSubmatch(line)
		if m == nil {
			return nil, nil, fmt.Errorf("line %d is not in the text format: %q", n, line)
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			return nil, nil, fmt.Errorf("line %d: %w", n, err)
		}
		base := m[1]
		if types[family] == "histogram" {
			for _, suf := range []string{"_bucket", "_sum", "_count"} {
				if b, ok := strings.CutSuffix(m[1], suf); ok && b == family {
					base = b
				}
			}
		}
		if _, typed := types[family]; !typed || base != family {
			return nil, nil, fmt.Errorf("line %d: sample %s outside a declared family", n, m[1])
		}
		k := sampleKey{m[1], m[2]}
		if _, dup := samples[k]; dup {
			return nil, nil, fmt.Errorf("line %d: duplicate sample", n)
		}
		samples[k] = v
		if strings.HasSuffix(m[1], "_bucket") {
			series := leRe.ReplaceAllString(m[2], "")
			if v < lastBucket[series] {
				return nil, nil, fmt.Errorf("line %d: buckets are not cumulative", n)
			}
			lastBucket[series] = v
			if strings.Contains(m[2], `le="+Inf"`) {
				lastBucket[series] = 0
				infBuckets[sampleKey{strings.TrimSuffix(m[1], "_bucket") + "_count", series}] = v
			}
		}
	}
	for k, v := range infBuckets {
		if c, ok := samples[k]; !ok || c != v {
			return nil, nil, fmt.Errorf("%s{%s}: +Inf bucket %v differs from _count %v", k.name, k.labels, v, c)
		}
	}
	return samples, types, nil
}

// The parser finds what the format forbids.
func TestParserRejects(t *testing.T) {
	ok := "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 2\n"
	_, _, err := parseText(ok)
	require.NoError(t, err)
	hist := "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n"
	_, _, err = parseText(hist)
	require.NoError(t, err)
	for name, text := range map[string]string{
		"no TYPE":           "# HELP a_total A.\na_total 1\n",
		"unquoted label":    "# HELP a_total A.\n# TYPE a_total counter\na_total{x=1} 2\n",
		"bad escape":        "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"\\q\"} 2\n",
		"not a number":      "# HELP a_total A.\n# TYPE a_total counter\na_total two\n",
		"duplicate":         ok + "a_total{x=\"1\"} 3\n",
		"other family":      ok + "b_total 1\n",
		"not cumulative":    strings.Replace(hist, `le="+Inf"} 2`, `le="+Inf"} 0`, 1),
		"+Inf is not count": strings.Replace(hist, "h_count 2", "h_count 5", 1),
		"second HELP":       ok + "# HELP a_total A.\n",
		"TYPE of another":   "# HELP a_total A.\n# TYPE b_total counter\n",
		"space in the name": "# HELP a_total A.\n# TYPE a_total counter\na total 1\n",
	} {
		_, _, err := parseText(text)
		require.Error(t, err, name)
	}
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	res, err := http.Get(url)
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, "text/plain; version=0.0.4; charset=utf-8", res.Header.Get("Content-Type"))
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return string(b)
}

func sum(samples map[sampleKey]float64, name string) (total float64, series int) {
	for k, v := range samples {
		if k.name == name {
			total += v
			series++
		}
	}
	return total, series
}

// A real producer and consumer on kinesistest, with throttles on both
// sides, then a scrape of /metrics over HTTP: the text parses, the names
// are metricnames's (so prommetrics's), and the figures add up.
func TestScrape(t *testing.T) {
	reg := New()
	srv := kinesistest.New(kinesistest.Options{})
	srv.MustCreateStream("s", 2)
	srv.FailNext(kinesistest.OpPutRecords, 2, nil)                                                                            // InternalFailure: retries
	srv.FailNext(kinesistest.OpGetRecords, 3, &types.ProvisionedThroughputExceededException{Message: aws.String("injected")}) // read throttles
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))

	const n = 500
	var seen atomic.Int64
	allSeen := make(chan struct{})
	c, err := consumer.New(srv, lease.NewMemoryStore(), consumer.ProcessRecord(func(context.Context, string, consumer.Record) error {
		if seen.Add(1) == n {
			close(allSeen)
		}
		return nil
	}), consumer.Config{
		ApplicationName: "app", StreamName: "s",
		InitialPosition:       consumer.InitialPosition{Type: consumer.TrimHorizon},
		IdleTimeBetweenReads:  consumer.MinIdleTimeBetweenReads,
		FailoverTime:          time.Hour,
		LeaseInitialTakeDelay: -1,
		ThrottleBackoff:       consumer.Backoff{Initial: time.Millisecond, Max: 10 * time.Millisecond},
		Metrics:               reg.Consumer("s"),
		Logger:                logger,
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()

	p, err := producer.New(srv, "s", producer.Config{
		Metrics: reg.Producer("s"), Logger: logger,
		RecordMaxBufferedTime: time.Millisecond, RetryBackoffBase: time.Millisecond, RetryBackoffMax: 5 * time.Millisecond,
	})
	require.NoError(t, err)
	for i := range n {
		_, err := p.Put(ctx, fmt.Sprintf("k%d", i), []byte(fmt.Sprintf("r%d", i)))
		require.NoError(t, err)
	}
	require.NoError(t, p.Close(ctx))
	<-allSeen

	hs := httptest.NewServer(reg)
	defer hs.Close()
	// The consumer may still be counting its last batch: scrape until it
	// has (no deadline: a hang is go test's -timeout).
	var samples map[sampleKey]float64
	var types map[string]string
	for {
		samples, types = parse(t, scrape(t, hs.URL))
		if got, _ := sum(samples, "shardflow_consumer_records_processed_total"); got == n {
			break
		}
		time.Sleep(time.Millisecond)
	}

	known := map[string]mn.Kind{}
	for _, d := range mn.All() {
		known[d.FullName()] = d.Kind
	}
	for fam, typ := range types {
		k, ok := known[fam]
		require.True(t, ok, "%s is not in metricnames", fam)
		require.Equal(t, k.String(), typ, fam)
	}
	put, shards := sum(samples, "shardflow_producer_user_records_put_total")
	require.EqualValues(t, n, put)
	require.Equal(t, 2, shards, "labelled by shard")
	require.Contains(t, samples, sampleKey{"shardflow_producer_user_records_put_total", `stream="s",shard="shardId-000000000000"`})
	recv, _ := sum(samples, "shardflow_producer_user_records_received_total")
	require.EqualValues(t, n, recv)
	codes, _ := sum(samples, "shardflow_producer_errors_by_code_total")
	require.Positive(t, codes, "the injected throttling")
	require.Contains(t, types, "shardflow_producer_buffering_time_seconds")
	require.EqualValues(t, n, samples[sampleKey{"shardflow_producer_retries_per_record_count", `stream="s"`}])
	throttles, _ := sum(samples, "shardflow_consumer_read_throttles_total")
	require.Positive(t, throttles)
	_, lagSeries := sum(samples, "shardflow_consumer_behind_latest_seconds")
	require.Equal(t, 2, lagSeries, "lag per shard")
	require.EqualValues(t, 2, samples[sampleKey{"shardflow_consumer_current_leases", `stream="s"`}])
}

// Label values and help are escaped; histograms put a value in the first
// bucket whose bound is at least the value.
func TestFormat(t *testing.T) {
	reg := New()
	c := reg.Consumer("a\"b\\c\nd")
	c.MillisBehindLatest("shard", 1500)
	c.RecordsProcessed("shard", 3, 30, 5*time.Millisecond)
	c.RecordsProcessed("shard", 1, 10, time.Minute)
	var b strings.Builder
	require.NoError(t, reg.Write(&b))
	samples, _ := parse(t, b.String())
	lbl := `stream="a\"b\\c\nd",shard="shard"`
	require.Equal(t, 1.5, samples[sampleKey{"shardflow_consumer_behind_latest_seconds", lbl}])
	require.Equal(t, 4.0, samples[sampleKey{"shardflow_consumer_records_processed_total", lbl}])
	h := `stream="a\"b\\c\nd"`
	require.Equal(t, 0.0, samples[sampleKey{"shardflow_consumer_process_records_duration_seconds_bucket", h + `,le="0.0025"`}])
	require.Equal(t, 1.0, samples[sampleKey{"shardflow_consumer_process_records_duration_seconds_bucket", h + `,le="0.005"`}], "5ms is in le=0.005")
	require.Equal(t, 1.0, samples[sampleKey{"shardflow_consumer_process_records_duration_seconds_bucket", h + `,le="30"`}])
	require.Equal(t, 2.0, samples[sampleKey{"shardflow_consumer_process_records_duration_seconds_bucket", h + `,le="+Inf"`}])
	require.InDelta(t, 60.005, samples[sampleKey{"shardflow_consumer_process_records_duration_seconds_sum", h}], 1e-9)
	require.False(t, math.IsNaN(samples[sampleKey{"shardflow_consumer_process_records_duration_seconds_count", h}]))

	c.LeaseLost("shard")
	b.Reset()
	require.NoError(t, reg.Write(&b))
	require.NotContains(t, b.String(), "behind_latest", "a lost shard's lag is removed")
}
