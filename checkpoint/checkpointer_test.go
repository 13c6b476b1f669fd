package checkpoint

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fencedWriter models the lease table: writes succeed only while the lease
// is held, like the conditional write on leaseCounter.
type fencedWriter struct {
	mu      sync.Mutex
	held    bool
	cp      Position
	pending *Position
	state   []byte
	writes  int
	fail    error
}

func (w *fencedWriter) WriteCheckpoint(_ context.Context, _ string, pos Position) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fail != nil {
		return w.fail
	}
	if !w.held {
		return ErrLeaseLost
	}
	w.writes++
	w.cp, w.pending, w.state = pos, nil, nil
	return nil
}

func (w *fencedWriter) WritePendingCheckpoint(_ context.Context, _ string, pos Position, state []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.held {
		return ErrLeaseLost
	}
	w.writes++
	w.pending, w.state = &pos, state
	return nil
}

func TestCheckpointAtRefusals(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name      string
		start     Position
		delivered []Position
		ended     bool
		pos       Position
		want      error
	}{
		{"at delivered", TrimHorizon, []Position{At("10", 0)}, false, At("10", 0), nil},
		{"inside delivered", TrimHorizon, []Position{At("10", 0)}, false, At("5", 0), nil},
		{"beyond delivered", TrimHorizon, []Position{At("10", 0)}, false, At("11", 0), ErrBeyondDelivered},
		{"beyond delivered sub-record", TrimHorizon, []Position{At("10", 2)}, false, At("10", 3), ErrBeyondDelivered},
		{"nothing delivered", TrimHorizon, nil, false, At("1", 0), ErrBeyondDelivered},
		{"backwards", At("20", 0), []Position{At("30", 0)}, false, At("19", 0), ErrPositionBackwards},
		{"backwards sub-record", At("20", 5), []Position{At("30", 0)}, false, At("20", 4), ErrPositionBackwards},
		{"same as last", At("20", 5), nil, false, At("20", 5), nil},
		{"shard end early", TrimHorizon, []Position{At("10", 0)}, false, ShardEnd, ErrNotAtShardEnd},
		{"shard end at end", TrimHorizon, []Position{At("10", 0)}, true, ShardEnd, nil},
		{"record after shard end written", ShardEnd, nil, true, At("1", 0), ErrPositionBackwards},
		{"other sentinel", At("1", 0), nil, false, Latest, ErrInvalidPosition},
		{"malformed", TrimHorizon, []Position{At("10", 0)}, false, At("1x", 0), ErrInvalidPosition},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &fencedWriter{held: true, cp: tt.start}
			c := NewCheckpointer("shard-1", w, tt.start)
			for _, d := range tt.delivered {
				c.Delivered(d)
			}
			if tt.ended {
				c.ShardEnded()
			}
			err := c.CheckpointAt(ctx, tt.pos)
			if tt.want == nil {
				require.NoError(t, err)
				require.Equal(t, tt.pos, w.cp)
				require.Equal(t, tt.pos, c.Last())
				return
			}
			require.ErrorIs(t, err, tt.want)
			var ce *Error
			require.ErrorAs(t, err, &ce)
			require.Equal(t, "shard-1", ce.ShardID)
			require.Equal(t, 0, w.writes, "a refused checkpoint must not be written")
			require.Equal(t, tt.start, c.Last())
		})
	}
}

func TestCheckpointAtLastDelivered(t *testing.T) {
	ctx := context.Background()
	w := &fencedWriter{held: true}
	c := NewCheckpointer("s", w, TrimHorizon)
	require.NoError(t, c.Checkpoint(ctx)) // nothing delivered: rewrites the start
	require.Equal(t, TrimHorizon, w.cp)
	c.Delivered(At("5", 0))
	c.Delivered(At("3", 0)) // older: ignored
	require.NoError(t, c.Checkpoint(ctx))
	require.Equal(t, At("5", 0), w.cp)
	c.ShardEnded()
	require.NoError(t, c.Checkpoint(ctx))
	require.Equal(t, ShardEnd, w.cp)
	require.Equal(t, ShardEnd, c.Last())
}

// The writer, not a local flag, refuses the write: the Checkpointer does not
// know the lease is gone until the conditional write fails.
func TestLeaseLostIsFencedByTheWriter(t *testing.T) {
	ctx := context.Background()
	w := &fencedWriter{held: true}
	c := NewCheckpointer("s", w, TrimHorizon)
	c.Delivered(At("1", 0))
	require.NoError(t, c.Checkpoint(ctx))
	w.mu.Lock()
	w.held = false // another worker took the lease
	w.mu.Unlock()
	c.Delivered(At("2", 0))
	err := c.Checkpoint(ctx)
	require.ErrorIs(t, err, ErrLeaseLost)
	require.Equal(t, At("1", 0), w.cp)
	require.Equal(t, At("1", 0), c.Last())
	// Once lost, it stays lost without further writes.
	w.mu.Lock()
	w.held = true
	w.mu.Unlock()
	require.ErrorIs(t, c.Checkpoint(ctx), ErrLeaseLost)
	require.Equal(t, 1, w.writes)
}

func TestTransientWriterErrorIsNotLoss(t *testing.T) {
	ctx := context.Background()
	boom := errors.New("throttled")
	w := &fencedWriter{held: true, fail: boom}
	c := NewCheckpointer("s", w, TrimHorizon)
	c.Delivered(At("1", 0))
	require.ErrorIs(t, c.Checkpoint(ctx), boom)
	w.fail = nil
	require.NoError(t, c.Checkpoint(ctx))
}

func TestLeaseLostAndClose(t *testing.T) {
	ctx := context.Background()
	w := &fencedWriter{held: true}
	c := NewCheckpointer("s", w, TrimHorizon)
	c.LeaseLost()
	require.ErrorIs(t, c.Checkpoint(ctx), ErrLeaseLost)
	c2 := NewCheckpointer("s", w, TrimHorizon)
	c2.Close()
	c2.Close()
	require.ErrorIs(t, c2.Checkpoint(ctx), ErrShutdown)
	require.ErrorIs(t, c2.PrepareCheckpoint(ctx, At("1", 0), nil), ErrShutdown)
	require.Equal(t, 0, w.writes)
}

func TestPendingCheckpoint(t *testing.T) {
	ctx := context.Background()
	w := &fencedWriter{held: true}
	c := NewCheckpointer("s", w, At("10", 0))
	c.Delivered(At("20", 0))
	require.ErrorIs(t, c.PrepareCheckpoint(ctx, At("21", 0), nil), ErrBeyondDelivered)
	require.ErrorIs(t, c.PrepareCheckpoint(ctx, At("9", 0), nil), ErrPositionBackwards)
	require.ErrorIs(t, c.PrepareCheckpoint(ctx, ShardEnd, nil), ErrNotAtShardEnd)
	require.NoError(t, c.PrepareCheckpoint(ctx, At("15", 0), []byte("state")))
	p, ok := c.Pending()
	require.True(t, ok)
	require.Equal(t, At("15", 0), p)
	require.Equal(t, At("10", 0), c.Last(), "prepare does not move the checkpoint")
	require.Equal(t, []byte("state"), w.state)
	require.NoError(t, c.CheckpointAt(ctx, At("15", 0)))
	_, ok = c.Pending()
	require.False(t, ok)
	require.Nil(t, w.pending)
	w.mu.Lock()
	w.held = false
	w.mu.Unlock()
	require.ErrorIs(t, c.PrepareCheckpoint(ctx, At("16", 0), nil), ErrLeaseLost)
}

// Concurrent checkpoints are serialised: the stored checkpoint only moves
// forward.
func TestConcurrentCheckpointsNeverGoBackwards(t *testing.T) {
	ctx := context.Background()
	w := &recordingWriter{}
	c := NewCheckpointer("s", w, TrimHorizon)
	c.Delivered(At("1000", 0))
	var wg sync.WaitGroup
	for i := 1; i <= 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := c.CheckpointAt(ctx, At(itoa(i*10), 0))
			if err != nil {
				assert.ErrorIs(t, err, ErrPositionBackwards)
			}
		}()
	}
	wg.Wait()
	for i := 1; i < len(w.log); i++ {
		require.GreaterOrEqual(t, w.log[i].Compare(w.log[i-1]), 0)
	}
	require.Equal(t, c.Last(), w.log[len(w.log)-1])
}

type recordingWriter struct {
	mu  sync.Mutex
	log []Position
}

func (w *recordingWriter) WriteCheckpoint(_ context.Context, _ string, pos Position) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.log = append(w.log, pos)
	return nil
}

func (w *recordingWriter) WritePendingCheckpoint(context.Context, string, Position, []byte) error {
	return nil
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

// Checkpoint() means "everything the processor finished": the batch in
// progress while it runs, the last successful batch after a failure.
func TestCheckpointCoversOnlyFinishedBatches(t *testing.T) {
	ctx := context.Background()
	w := &fencedWriter{held: true}
	c := NewCheckpointer("s", w, TrimHorizon)

	c.Delivered(At("10", 0))
	require.NoError(t, c.Checkpoint(ctx), "inside the batch: the batch")
	require.Equal(t, At("10", 0), w.cp)
	c.Returned(nil)

	c.Delivered(At("20", 0))
	c.Returned(errors.New("processor failed"))
	require.NoError(t, c.Checkpoint(ctx), "after a failure: the last finished batch")
	require.Equal(t, At("10", 0), w.cp, "the failed batch is not checkpointed")

	c.Delivered(At("20", 0)) // the retry
	c.Returned(nil)
	require.NoError(t, c.Checkpoint(ctx))
	require.Equal(t, At("20", 0), w.cp, "retried successfully: checkpointed")

	// A failure before any batch finished rewrites the start.
	c2 := NewCheckpointer("s", w, TrimHorizon)
	c2.Delivered(At("30", 0))
	c2.Returned(errors.New("boom"))
	require.NoError(t, c2.Checkpoint(ctx))
	require.Equal(t, TrimHorizon, w.cp)
}
