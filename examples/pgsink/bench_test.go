package main

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/consumer"
)

// BenchmarkWriteBatch writes batches of 500 records (ns/op is per batch;
// rows/s is reported). Needs PGSINK_TEST_DSN.
func BenchmarkWriteBatch(b *testing.B) {
	dsn := os.Getenv("PGSINK_TEST_DSN")
	if dsn == "" {
		b.Skip("PGSINK_TEST_DSN not set")
	}
	pool, err := pgxpool.New(context.Background(), dsn)
	require.NoError(b, err)
	defer pool.Close()
	cols, err := ParseColumns("id:bigint,name:text,ts:timestamptz")
	require.NoError(b, err)
	s, err := NewSink(pool, SinkConfig{Table: fmt.Sprintf("pgsink_bench_%d", os.Getpid()), Columns: cols, Logger: quietLogger()})
	require.NoError(b, err)
	ctx := context.Background()
	require.NoError(b, s.CreateTables(ctx))
	defer pool.Exec(ctx, "DROP TABLE "+s.table.Sanitize()+", "+s.dead.Sanitize()) //nolint:errcheck

	const n = 500
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		batch := make([]consumer.Record, n)
		for j := range batch {
			batch[j] = rec(seq(i*n+j), 0, fmt.Sprintf(`{"id":%d,"name":"name-%d","ts":"2026-11-25T12:00:00Z"}`, j, j))
		}
		if _, err := s.WriteBatch(ctx, "shardId-000000000000", batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "rows/s")
}
