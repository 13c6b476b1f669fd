//go:build integration

package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/internal/itest"
	"github.com/shardflow/shardflow/producer"
)

// logWatch is a slog.Handler that hands every record to fn.
type logWatch struct {
	mu sync.Mutex
	fn func(msg string, attrs map[string]slog.Value)
}

func (h *logWatch) Enabled(context.Context, slog.Level) bool { return true }
func (h *logWatch) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logWatch) WithGroup(string) slog.Handler            { return h }
func (h *logWatch) Handle(_ context.Context, r slog.Record) error {
	attrs := map[string]slog.Value{}
	r.Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value; return true })
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fn(r.Message, attrs)
	return nil
}

// The README's real-endpoint command against kinesalite and dynalite:
// -target aws with both endpoints, credentials and region from the
// environment, the lease table created in DynamoDB.
func TestRunAgainstEmulators(t *testing.T) {
	pool := testPool(t)
	kinesisEndpoint := itest.Endpoint(t, itest.Kinesalite)
	dynamoEndpoint := itest.Endpoint(t, itest.Dynalite)
	kc := itest.Kinesis(t, itest.Kinesalite)
	stream := itest.Name("pgsink")
	itest.CreateStream(t, kc, stream, 2)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))

	ctx := t.Context() // go test -timeout is the only bound: a slow machine must not fail this
	const total = 200
	p, err := producer.New(kc, stream, producer.Config{Logger: quietLogger()})
	require.NoError(t, err)
	for i := range total {
		_, err := p.Put(ctx, strconv.Itoa(i), fmt.Appendf(nil, `{"id":%d,"name":"n%d","ts":"2026-11-25T12:00:00Z"}`, i, i))
		require.NoError(t, err)
	}
	require.NoError(t, p.Close(ctx))

	table := fmt.Sprintf("pgsink_it_%d", time.Now().UnixNano()%1e9)
	t.Cleanup(func() {
		_, _ = pool.Exec(context.Background(), fmt.Sprintf("DROP TABLE IF EXISTS %s, %s_dead_letter", table, table))
	})
	runCtx, stop := context.WithCancel(ctx)
	log := slog.New(&logWatch{fn: func(msg string, attrs map[string]slog.Value) {
		if msg == "pgsink: progress" && attrs["inserted"].Int64() >= total {
			stop()
		}
	}})
	err = run(runCtx, options{
		dsn: pgDSN(), table: table, columns: "id:bigint,name:text,ts:timestamptz", createTable: true,
		target: "aws", stream: stream, app: itest.Name("pgsink-app"), initialPos: "trim_horizon",
		kinesisEndpoint: kinesisEndpoint, dynamoEndpoint: dynamoEndpoint,
		progressInterval: 50 * time.Millisecond, idleTimeReads: 200 * time.Millisecond,
	}, log)
	require.NoError(t, err)
	require.NoError(t, ctx.Err(), "timed out")
	var rows, ids int
	require.NoError(t, pool.QueryRow(ctx, fmt.Sprintf("SELECT count(*), count(DISTINCT id) FROM %s", table)).Scan(&rows, &ids))
	require.Equal(t, total, rows)
	require.Equal(t, total, ids)
}
