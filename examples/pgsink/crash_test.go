package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/checkpoint"
	"github.com/shardflow/shardflow/consumer"
	"github.com/shardflow/shardflow/kinesistest"
	"github.com/shardflow/shardflow/lease"
	"github.com/shardflow/shardflow/producer"
)

var errCrash = errors.New("worker crashed between commit and checkpoint")

// A worker dies after committing a batch and before checkpointing it. A new
// worker takes the lease over, resumes from the old checkpoint and writes
// the batch again: the table ends with every record exactly once.
func TestCrashBetweenCommitAndCheckpoint(t *testing.T) {
	pool := testPool(t)
	const stream, total = "orders", 600
	srv := kinesistest.New(kinesistest.Options{})
	t.Cleanup(func() { srv.Close() })
	srv.MustCreateStream(stream, 2)

	// KPL-aggregated records of 10 user records each, so rows are told apart
	// by sub-sequence number too. Every 40th record is not JSON.
	ctx, cancelAll := context.WithCancel(t.Context()) // go test -timeout is the only bound
	defer cancelAll()
	p, err := producer.New(srv, stream, producer.Config{AggregationMaxCount: 10, Logger: quietLogger()})
	require.NoError(t, err)
	bad := 0
	for i := range total {
		data := fmt.Sprintf(`{"id":%d,"name":"n%d"}`, i, i)
		if i%40 == 39 {
			data, bad = "garbage "+strconv.Itoa(i), bad+1
		}
		_, err := p.Put(ctx, strconv.Itoa(i%7), []byte(data))
		require.NoError(t, err)
	}
	require.NoError(t, p.Close(ctx))

	s1 := testSink(t, pool, "id:bigint,name:text")
	store := lease.NewMemoryStore()
	cfg := func(worker string) consumer.Config {
		return consumer.Config{
			ApplicationName:       "pgsink-test",
			StreamName:            stream,
			WorkerID:              worker,
			InitialPosition:       consumer.InitialPosition{Type: consumer.TrimHorizon},
			MaxRecords:            3, // aggregates: up to 30 rows a batch
			IdleTimeBetweenReads:  consumer.MinIdleTimeBetweenReads,
			FailoverTime:          time.Second,
			ProcessorRetryBackoff: consumer.Backoff{Initial: 50 * time.Millisecond, Max: 200 * time.Millisecond},
			Logger:                quietLogger(),
		}
	}

	// Worker 1 crashes after its third commit: from then on it neither
	// commits nor checkpoints anything, like a dead process.
	var (
		mu        sync.Mutex
		commits   int
		crashed   bool
		crashedAt checkpoint.Position
		crashedSh string
	)
	ctx1, crash := context.WithCancel(ctx)
	s1.beforeCommit = func(context.Context, string) error {
		mu.Lock()
		defer mu.Unlock()
		if crashed {
			return errCrash
		}
		return nil
	}
	s1.afterCommit = func(_ context.Context, shardID string, pos checkpoint.Position) error {
		mu.Lock()
		defer mu.Unlock()
		if crashed {
			return errCrash
		}
		if commits++; commits == 3 {
			crashed, crashedAt, crashedSh = true, pos, shardID
			crash()
			return errCrash
		}
		return nil
	}
	w1, err := consumer.New(srv, store, s1.Factory(), cfg("worker-1"))
	require.NoError(t, err)
	err = w1.Run(ctx1)
	require.ErrorIs(t, err, context.Canceled)
	st1AtReturn := s1.Stats()
	mu.Lock()
	require.True(t, crashed, "worker 1 crashed")
	mu.Unlock()

	// The crashed batch is in the table, its checkpoint is not.
	rowsAtCrash := count(t, pool, s1.table)
	require.Positive(t, rowsAtCrash)
	l, err := store.Get(ctx, crashedSh)
	require.NoError(t, err)
	require.Equal(t, "worker-1", l.Owner, "a crash does not release the lease")
	require.Negative(t, l.Checkpoint.Compare(crashedAt), "checkpoint %v is behind the committed %v", l.Checkpoint, crashedAt)

	// Worker 2 takes the leases over after the failover time and finishes.
	s2, err := NewSink(pool, SinkConfig{Table: strings.Join(s1.table, "."), Columns: s1.cols, Logger: quietLogger()})
	require.NoError(t, err)
	progress := make(chan struct{}, 1)
	s2.afterCommit = func(context.Context, string, checkpoint.Position) error {
		select {
		case progress <- struct{}{}:
		default:
		}
		return nil
	}
	w2, err := consumer.New(srv, store, s2.Factory(), cfg("worker-2"))
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- w2.Run(ctx) }()
	good := total - bad
	for count(t, pool, s1.table) < good || count(t, pool, s1.dead) < bad {
		select {
		case <-progress:
		case err := <-done:
			t.Fatalf("worker 2 stopped: %v", err)
		case <-ctx.Done():
			t.Fatalf("timed out: %d of %d rows, %d of %d dead letters", count(t, pool, s1.table), good, count(t, pool, s1.dead), bad)
		}
	}
	require.NoError(t, w2.Shutdown(ctx))
	require.NoError(t, <-done)

	// Exactly once: every id present, none twice, every bad record kept.
	var rows, ids, minID, maxID int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*), count(DISTINCT id), min(id), max(id) FROM "+s1.table.Sanitize()).Scan(&rows, &ids, &minID, &maxID))
	require.Equal(t, good, rows, "no duplicate and no missing rows")
	require.Equal(t, good, ids)
	require.Equal(t, 0, minID)
	require.Equal(t, total-2, maxID)
	require.Equal(t, bad, count(t, pool, s1.dead))
	st1, st2 := s1.Stats(), s2.Stats()
	t.Logf("worker 1: %+v (rows at crash %d); worker 2: %+v", st1, rowsAtCrash, st2)
	require.Equal(t, st1AtReturn, st1, "worker 1 committed nothing after its Run returned")
	require.Positive(t, st2.Duplicates, "worker 2 wrote the crashed batch again; the upsert skipped its rows")
	require.EqualValues(t, good, st1.Inserted+st2.Inserted, "each row inserted by exactly one worker")

	// Worker 2 checkpointed everything: a third worker has nothing to write.
	for _, sh := range srv.ShardIDs(stream) {
		l, err := store.Get(ctx, sh)
		require.NoError(t, err)
		require.False(t, l.Checkpoint.IsSentinel(), "shard %s checkpointed", sh)
	}
}
