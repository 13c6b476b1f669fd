package consumer

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/clock"
	"github.com/shardflow/shardflow/kinesistest"
	"github.com/shardflow/shardflow/lease"
)

// errorLog keeps the "err" attribute of each Error record.
type errorLog struct {
	mu   sync.Mutex
	errs []error
}

func (h *errorLog) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelError }
func (h *errorLog) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if err, ok := a.Value.Any().(error); ok && a.Key == "err" {
			h.mu.Lock()
			h.errs = append(h.errs, err)
			h.mu.Unlock()
		}
		return true
	})
	return nil
}
func (h *errorLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *errorLog) WithGroup(string) slog.Handler      { return h }

func (h *errorLog) logged() []error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]error(nil), h.errs...)
}

// In multi-stream mode a listed stream that does not exist does not fail
// the stream sync (so not Run either, as in single-stream mode): it is
// logged at Error with an error matching ErrStreamNotFound, the other
// streams get their leases, and it is tried again at the next sync.
func TestMultiStreamMissingStreamLoggedAndRetried(t *testing.T) {
	ctx := context.Background()
	srv := kinesistest.New(kinesistest.Options{})
	srv.MustCreateStream("a", 2)
	streams := func(context.Context) ([]StreamConfig, error) {
		return []StreamConfig{{Name: "a"}, {Name: "later"}}, nil
	}
	logs := &errorLog{}
	store := lease.NewMemoryStore()
	c, err := New(srv, store, ProcessRecord(nil), Config{
		ApplicationName: "app", Streams: streams,
		Clock: clock.NewFake(time.Unix(1_800_000_000, 0)), Logger: slog.New(logs),
	})
	require.NoError(t, err)

	n, err := c.syncStreams(ctx)
	require.NoError(t, err, "a missing stream does not fail the sync")
	require.Equal(t, 2, n, "the other stream's leases")
	require.Len(t, logs.logged(), 1)
	require.ErrorIs(t, logs.logged()[0], ErrStreamNotFound)
	require.ErrorContains(t, logs.logged()[0], "later")

	srv.MustCreateStream("later", 1)
	n, err = c.syncStreams(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n, "created since: tracked at the next sync")
	require.Len(t, logs.logged(), 1, "nothing more to report")
	require.Len(t, c.trackedStreams(), 2)
	ls, err := store.List(ctx)
	require.NoError(t, err)
	require.Len(t, ls, 3)
}
