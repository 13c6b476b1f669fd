package health

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/consumer"
	"github.com/shardflow/shardflow/kinesistest"
	"github.com/shardflow/shardflow/lease"
	"github.com/shardflow/shardflow/producer"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, string(b)
}

// A real consumer and producer: not ready before Run, ready and live while
// it runs (with its shards in /status), not live once stopped.
func TestEndpoints(t *testing.T) {
	srv := kinesistest.New(kinesistest.Options{})
	srv.MustCreateStream("s", 2)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	c, err := consumer.New(srv, lease.NewMemoryStore(), consumer.ProcessRecord(func(context.Context, string, consumer.Record) error { return nil }),
		consumer.Config{ApplicationName: "app", StreamName: "s", WorkerID: "w1", LeaseInitialTakeDelay: -1, FailoverTime: time.Hour, Logger: logger})
	require.NoError(t, err)
	p, err := producer.New(srv, "s", producer.Config{Logger: logger})
	require.NoError(t, err)
	defer p.Close(context.Background())

	mux := http.NewServeMux()
	Handler{Consumers: []ConsumerStatus{c}, Producers: []ProducerStatus{p}}.Register(mux)
	hs := httptest.NewServer(mux)
	defer hs.Close()

	code, body := get(t, hs.URL+"/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Equal(t, "consumer w1 starting\n", body)
	code, _ = get(t, hs.URL+"/livez")
	require.Equal(t, http.StatusOK, code, "starting is alive")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	for len(c.Status().Shards) < 2 || !c.Status().Ready { // no deadline: go test's -timeout
		time.Sleep(time.Millisecond)
	}
	code, body = get(t, hs.URL+"/readyz")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "ok\n", body)
	code, body = get(t, hs.URL+"/status")
	require.Equal(t, http.StatusOK, code)
	var st struct {
		Consumers []struct {
			WorkerID string `json:"worker_id"`
			Ready    bool   `json:"ready"`
			Healthy  bool   `json:"healthy"`
			Leases   int    `json:"leases"`
			Shards   []struct {
				LeaseKey string `json:"lease_key"`
				State    string `json:"state"`
			} `json:"shards"`
		} `json:"consumers"`
		Producers []producer.Status `json:"producers"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &st), body)
	require.Len(t, st.Consumers, 1)
	require.Equal(t, "w1", st.Consumers[0].WorkerID)
	require.True(t, st.Consumers[0].Ready)
	require.True(t, st.Consumers[0].Healthy)
	require.Equal(t, 2, st.Consumers[0].Leases)
	require.Equal(t, "shardId-000000000000", st.Consumers[0].Shards[0].LeaseKey)
	require.Len(t, st.Producers, 1)

	require.NoError(t, c.Shutdown(context.Background()))
	require.NoError(t, <-done)
	code, body = get(t, hs.URL+"/livez")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Equal(t, "consumer w1 stopped\n", body)
}

type fixed consumer.Status

func (f fixed) Status() consumer.Status { return consumer.Status(f) }

// A lease store failing for longer than UnhealthyAfter fails readiness,
// not liveness.
func TestUnhealthyStore(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	sick := fixed{WorkerID: "w2", Ready: true, At: now, UnhealthyAfter: time.Minute,
		StoreFailingSince: now.Add(-2 * time.Minute), StoreErr: errors.New("Renew: InternalServerError")}
	mux := http.NewServeMux()
	Handler{Consumers: []ConsumerStatus{sick}}.Register(mux)
	hs := httptest.NewServer(mux)
	defer hs.Close()
	code, body := get(t, hs.URL+"/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Equal(t, "consumer w2: lease store failing since 2026-12-01T09:58:00Z: Renew: InternalServerError\n", body)
	code, _ = get(t, hs.URL+"/livez")
	require.Equal(t, http.StatusOK, code)
}
