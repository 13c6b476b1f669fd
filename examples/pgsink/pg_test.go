package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/consumer"
)

// testPool connects to the server named by PGSINK_TEST_DSN (ci.sh starts
// one). Without it the test is skipped locally and fails under CI.
func testPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	dsn := pgDSN()
	if dsn == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("PGSINK_TEST_DSN is not set under CI: run examples/pgsink/ci.sh")
		}
		t.Skip("PGSINK_TEST_DSN not set; run ./ci.sh to test against a real PostgreSQL")
	}
	ctx := t.Context()
	pool, err := pgxpool.New(ctx, dsn)
	require.NoError(t, err)
	require.NoError(t, pool.Ping(ctx))
	t.Cleanup(pool.Close)
	return pool
}

func pgDSN() string { return os.Getenv("PGSINK_TEST_DSN") }

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testSink makes a sink on a fresh table, dropped after the test.
func testSink(t *testing.T, pool *pgxpool.Pool, columns string) *Sink {
	t.Helper()
	cols, err := ParseColumns(columns)
	require.NoError(t, err)
	table := fmt.Sprintf("pgsink_test_%x", rand.Uint64())
	s, err := NewSink(pool, SinkConfig{Table: table, Columns: cols, Logger: quietLogger()})
	require.NoError(t, err)
	require.NoError(t, s.CreateTables(context.Background()))
	t.Cleanup(func() {
		_, _ = pool.Exec(context.Background(), fmt.Sprintf("DROP TABLE IF EXISTS %s, %s", s.table.Sanitize(), s.dead.Sanitize()))
	})
	return s
}

func count(t *testing.T, pool *pgxpool.Pool, table pgx.Identifier) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), "SELECT count(*) FROM "+table.Sanitize()).Scan(&n))
	return n
}

func rec(seq string, sub int64, data string) consumer.Record {
	return consumer.Record{SequenceNumber: seq, SubSequenceNumber: sub, PartitionKey: "pk", Data: []byte(data),
		ApproximateArrivalTimestamp: time.Now()}
}

// 56-digit sequence numbers, like Kinesis's.
func seq(i int) string { return fmt.Sprintf("4963%052d", i) }

func TestWriteBatchIsIdempotent(t *testing.T) {
	pool := testPool(t)
	s := testSink(t, pool, "id:bigint,name:text,ts:timestamptz")
	ctx := context.Background()
	batch := []consumer.Record{
		rec(seq(1), 0, `{"id":1,"name":"a","ts":"2026-11-25T12:00:00Z"}`),
		rec(seq(2), 0, `{"id":2,"name":"b"}`),
		rec(seq(2), 1, `{"id":3,"name":"c"}`), // same Kinesis record, next sub-record
		rec(seq(3), 0, `{"id":"oops"}`),
	}
	res, err := s.WriteBatch(ctx, "shardId-000000000000", batch)
	require.NoError(t, err)
	require.Equal(t, BatchResult{Inserted: 3, DeadLettered: 1}, res)

	res, err = s.WriteBatch(ctx, "shardId-000000000000", batch)
	require.NoError(t, err)
	require.Equal(t, BatchResult{Duplicates: 3}, res, "writing a batch again changes nothing")
	require.Equal(t, 3, count(t, pool, s.table))
	require.Equal(t, 1, count(t, pool, s.dead))

	// The same sequence numbers in another shard are other records.
	res, err = s.WriteBatch(ctx, "shardId-000000000001", batch[:1])
	require.NoError(t, err)
	require.Equal(t, 1, res.Inserted)

	var name string
	var ts time.Time
	var sq string
	require.NoError(t, pool.QueryRow(ctx, "SELECT name, ts, sequence_number::text FROM "+s.table.Sanitize()+" WHERE id = 1 AND shard_id = 'shardId-000000000000'").Scan(&name, &ts, &sq))
	require.Equal(t, "a", name)
	require.True(t, ts.Equal(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)))
	require.Equal(t, seq(1), sq)

	var dlErr string
	var data []byte
	require.NoError(t, pool.QueryRow(ctx, "SELECT error, data FROM "+s.dead.Sanitize()).Scan(&dlErr, &data))
	require.Contains(t, dlErr, `field "id"`)
	require.Equal(t, `{"id":"oops"}`, string(data))
	require.Equal(t, SinkStats{Batches: 3, Inserted: 4, Duplicates: 3, DeadLettered: 1}, s.Stats())
}

// A row PostgreSQL itself rejects (here a CHECK constraint) is dead-lettered
// and the rest of the batch still commits.
func TestRowsRejectedByPostgresAreDeadLettered(t *testing.T) {
	pool := testPool(t)
	s := testSink(t, pool, "id:bigint")
	ctx := context.Background()
	_, err := pool.Exec(ctx, "ALTER TABLE "+s.table.Sanitize()+" ADD CHECK (id > 0)")
	require.NoError(t, err)
	res, err := s.WriteBatch(ctx, "shardId-000000000000", []consumer.Record{
		rec(seq(1), 0, `{"id":1}`), rec(seq(2), 0, `{"id":-1}`), rec(seq(3), 0, `{"id":3}`), rec(seq(4), 0, `{"id":-4}`),
	})
	require.NoError(t, err)
	require.Equal(t, BatchResult{Inserted: 2, DeadLettered: 2}, res)
	var msg string
	require.NoError(t, pool.QueryRow(ctx, "SELECT error FROM "+s.dead.Sanitize()+" ORDER BY sequence_number LIMIT 1").Scan(&msg))
	require.Contains(t, msg, "SQLSTATE 23514")
}

// A failure before the commit leaves nothing behind.
func TestBatchIsOneTransaction(t *testing.T) {
	pool := testPool(t)
	s := testSink(t, pool, "id:bigint")
	boom := errors.New("boom")
	s.beforeCommit = func(context.Context, string) error { return boom }
	_, err := s.WriteBatch(context.Background(), "shardId-000000000000", []consumer.Record{
		rec(seq(1), 0, `{"id":1}`), rec(seq(2), 0, `bad`),
	})
	require.ErrorIs(t, err, boom)
	require.Zero(t, count(t, pool, s.table))
	require.Zero(t, count(t, pool, s.dead))
	require.Zero(t, s.Stats().Batches)
}
