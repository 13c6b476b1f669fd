package consumer

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/kinesistest"
	"github.com/shardflow/shardflow/lease"
)

// An orphan lease of a stream in another account (KCL builds the orphan's
// ARN from the identifier's account and the client's region) is resolved by
// name in this worker's own account: here a same-named local stream is read
// for it.
func TestReviewOrphanCrossAccountResolvedInOwnAccount(t *testing.T) {
	ctx := context.Background()
	srv := kinesistest.New(kinesistest.Options{}) // account 123456789012
	srv.MustCreateStream("x", 1)
	c, err := New(srv, lease.NewMemoryStore(), ProcessRecord(nil), Config{
		ApplicationName: "app",
		Streams:         func(context.Context) ([]StreamConfig, error) { return nil, nil },
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.NoError(t, err)
	id := "999999999999:x:5"
	s, err := c.streamOf(ctx, lease.Lease{Key: id + ":shardId-000000000000", StreamID: id, ShardID: "shardId-000000000000"})
	if err == nil {
		require.Equal(t, "999999999999", arnAccount(s.arn), "orphan of account 999999999999 resolved to %s", s.arn)
	}
}

// A worker whose Streams set does not (yet) list a stream that exists in
// another account takes one of its leases: streamOf describes it by name in
// its own account, gets ResourceNotFound, and noStream deletes every lease
// of the stream, checkpoints included, although the stream exists and
// another worker is processing it.
func TestReviewOrphanNotFoundDeletesLiveStreamsLeases(t *testing.T) {
	ctx := context.Background()
	other := kinesistest.New(kinesistest.Options{AccountID: "999999999999"})
	other.MustCreateStream("x", 2)
	mine := kinesistest.New(kinesistest.Options{})
	store := lease.NewMemoryStore()
	a, err := New(other, store, ProcessRecord(nil), Config{
		ApplicationName: "app", WorkerID: "a",
		Streams: func(context.Context) ([]StreamConfig, error) {
			return []StreamConfig{{ARN: "arn:aws:kinesis:us-east-1:999999999999:stream/x"}}, nil
		},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.NoError(t, err)
	_, err = a.syncStreams(ctx)
	require.NoError(t, err)
	ls, err := store.List(ctx)
	require.NoError(t, err)
	require.Len(t, ls, 2)

	b, err := New(mine, store, ProcessRecord(nil), Config{
		ApplicationName: "app", WorkerID: "b",
		Streams: func(context.Context) ([]StreamConfig, error) { return nil, nil },
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.NoError(t, err)
	_, serr := b.streamOf(ctx, ls[0])
	require.Error(t, serr)
	b.noStream(ctx, ls[0], serr) // what runShard does
	after, err := store.List(ctx)
	require.NoError(t, err)
	require.Len(t, after, 2, "leases of a live stream deleted by a worker that merely could not describe it")
}
