package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// syncBuffer is a bytes.Buffer safe for the loggers of several workers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The quickstart's output is clean: workers started together split the
// shards without stealing, so no lease is lost, nothing is redelivered and
// nothing is logged at WARN.
func TestQuickstartInMemory(t *testing.T) {
	var out bytes.Buffer
	var logs syncBuffer
	o := options{target: "memory", stream: "qs", shards: 4, app: "qs", records: 5000, workers: 3, timeout: 10 * time.Minute, idle: 200 * time.Millisecond, logs: &logs}
	lost, err := run(context.Background(), o, &out)
	require.NoError(t, err)
	require.Zero(t, lost)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	last := lines[len(lines)-1]
	require.Regexp(t, regexp.MustCompile(`^produced=5000 consumed=5000 unique=5000 lost=0 duplicates=0 elapsed=\S+$`), last)
	require.Empty(t, logs.String(), "nothing logged at WARN or above")
}

// With -metrics-addr the run serves /metrics (Prometheus text, the names of
// metrics/prommetrics) and the health endpoints, and keeps serving after
// its summary until its context ends.
func TestQuickstartMetrics(t *testing.T) {
	var out, logs syncBuffer
	o := options{target: "memory", stream: "qsm", shards: 2, app: "qsm", records: 2000, workers: 2, timeout: 10 * time.Minute, idle: 200 * time.Millisecond, logs: &logs, metricsAddr: "127.0.0.1:0"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := run(ctx, o, &out)
		done <- err
	}()
	// Wait for the summary (no deadline: go test's -timeout).
	addrRe := regexp.MustCompile(`still serving http://(\S+)/metrics`)
	var addr string
	for addr == "" {
		if m := addrRe.FindStringSubmatch(out.String()); m != nil {
			addr = m[1]
		}
		time.Sleep(time.Millisecond)
	}
	require.Contains(t, out.String(), "produced=2000 consumed=2000 unique=2000 lost=0")
	body := httpGet(t, "http://"+addr+"/metrics", http.StatusOK)
	require.Contains(t, body, "# TYPE shardflow_producer_user_records_put_total counter\n")
	require.Regexp(t, `(?m)^shardflow_consumer_records_processed_total\{stream="qsm",shard="shardId-000000000000"\} \d+$`, body)
	// Shut down, the consumers released their shards: no lag series stays
	// behind (the shards' next owners report them).
	require.NotContains(t, body, "shardflow_consumer_behind_latest_seconds{")
	// The consumers were shut down at the end of the run.
	require.Contains(t, httpGet(t, "http://"+addr+"/livez", http.StatusServiceUnavailable), "stopped")
	require.Contains(t, httpGet(t, "http://"+addr+"/status", http.StatusOK), `"consumers"`)
	cancel()
	require.NoError(t, <-done)
}

func httpGet(t *testing.T, url string, code int) string {
	t.Helper()
	res, err := http.Get(url)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	require.Equal(t, code, res.StatusCode, string(b))
	return string(b)
}
