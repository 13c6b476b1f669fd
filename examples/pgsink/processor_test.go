package main

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/checkpoint"
	"github.com/shardflow/shardflow/consumer"
)

// checkpointLog is a checkpoint.Writer that records the writes and can fail
// them.
type checkpointLog struct {
	mu     sync.Mutex
	writes []checkpoint.Position
	fail   error
}

func (w *checkpointLog) WriteCheckpoint(_ context.Context, _ string, pos checkpoint.Position) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fail != nil {
		return w.fail
	}
	w.writes = append(w.writes, pos)
	return nil
}

func (w *checkpointLog) WritePendingCheckpoint(context.Context, string, checkpoint.Position, []byte) error {
	return errors.New("not used")
}

func TestProcessorCheckpointsOnlyAfterCommit(t *testing.T) {
	pool := testPool(t)
	s := testSink(t, pool, "id:bigint")
	ctx := context.Background()
	const shard = "shardId-000000000000"
	w := &checkpointLog{}
	cp := checkpoint.NewCheckpointer(shard, w, checkpoint.TrimHorizon)
	p := s.Factory().NewProcessor(shard)
	require.NoError(t, p.Initialize(ctx, consumer.InitializeInput{ShardID: shard, StartingPosition: checkpoint.TrimHorizon}))

	batch := []consumer.Record{rec(seq(1), 0, `{"id":1}`), rec(seq(2), 0, `{"id":2}`)}
	cp.Delivered(batch[1].Position())

	// The database fails: no checkpoint, and the error goes back to the
	// consumer, which delivers the batch again.
	boom := errors.New("database down")
	s.beforeCommit = func(context.Context, string) error { return boom }
	err := p.ProcessRecords(ctx, consumer.ProcessRecordsInput{ShardID: shard, Records: batch, Checkpointer: cp})
	require.ErrorIs(t, err, boom)
	require.Empty(t, w.writes)
	require.Zero(t, count(t, pool, s.table))

	// Committed, then the checkpoint write fails: the error is returned and
	// ShutdownRequested checkpoints the committed batch.
	s.beforeCommit = nil
	w.fail = errors.New("dynamodb down")
	err = p.ProcessRecords(ctx, consumer.ProcessRecordsInput{ShardID: shard, Records: batch, Checkpointer: cp})
	require.ErrorIs(t, err, w.fail)
	require.Equal(t, 2, count(t, pool, s.table))
	w.fail = nil
	require.NoError(t, p.ShutdownRequested(ctx, consumer.ShutdownRequestedInput{ShardID: shard, Checkpointer: cp}))
	require.Equal(t, []checkpoint.Position{batch[1].Position()}, w.writes)

	// Nothing left to checkpoint: a second shutdown writes nothing.
	require.NoError(t, p.ShutdownRequested(ctx, consumer.ShutdownRequestedInput{ShardID: shard, Checkpointer: cp}))
	require.Len(t, w.writes, 1)

	// A normal batch commits, then checkpoints at its last record.
	next := []consumer.Record{rec(seq(3), 0, `{"id":3}`), rec(seq(3), 1, `{"id":4}`)}
	cp.Delivered(next[1].Position())
	require.NoError(t, p.ProcessRecords(ctx, consumer.ProcessRecordsInput{ShardID: shard, Records: next, Checkpointer: cp}))
	require.Equal(t, checkpoint.At(seq(3), 1), w.writes[len(w.writes)-1])
	require.Equal(t, 4, count(t, pool, s.table))

	// Shard end checkpoints SHARD_END.
	cp.ShardEnded()
	require.NoError(t, p.ShardEnded(ctx, consumer.ShardEndedInput{ShardID: shard, Checkpointer: cp}))
	require.Equal(t, checkpoint.ShardEnd, w.writes[len(w.writes)-1])
}
