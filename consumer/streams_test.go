package consumer

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/checkpoint"
	"github.com/shardflow/shardflow/clock"
	"github.com/shardflow/shardflow/kinesistest"
	"github.com/shardflow/shardflow/lease"
)

// The stream set policy on a fake clock: each syncStreams is one
// StreamSyncInterval tick. New streams get leases at once (keyed
// account:stream:epoch:shardId with KCL's attributes); a failing Streams
// call keeps the set; a stream missing from the set keeps its leases for
// FormerStreamsDeleteAfter, is revived when it returns, and then loses its
// leases (only its own); with FormerStreamsDeleteAfter 0 they are kept.
func TestStreamSetPolicy(t *testing.T) {
	for _, deleteAfter := range []time.Duration{10 * time.Minute, 0} {
		t.Run(deleteAfter.String(), func(t *testing.T) {
			ctx := context.Background()
			srv := kinesistest.New(kinesistest.Options{})
			srv.MustCreateStream("a", 2)
			srv.MustCreateStream("b", 1)
			var mu sync.Mutex
			set := []StreamConfig{{Name: "a"}, {Name: "b", InitialPosition: &InitialPosition{Type: Latest}}}
			var fail error
			streams := func(context.Context) ([]StreamConfig, error) {
				mu.Lock()
				defer mu.Unlock()
				return slices.Clone(set), fail
			}
			clk := clock.NewFake(time.Unix(1_800_000_000, 0))
			store := lease.NewMemoryStore()
			c, err := New(srv, store, ProcessRecord(nil), Config{
				ApplicationName: "app", Streams: streams, FormerStreamsDeleteAfter: deleteAfter,
				InitialPosition: InitialPosition{Type: TrimHorizon}, Clock: clk,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			})
			require.NoError(t, err)
			byStream := func() map[string][]lease.Lease {
				ls, err := store.List(ctx)
				require.NoError(t, err)
				m := map[string][]lease.Lease{}
				for _, l := range ls {
					id, err := lease.ParseStreamIdentifier(l.StreamID)
					require.NoError(t, err)
					require.Equal(t, "123456789012", id.AccountID, "account from the stream ARN")
					m[id.StreamName] = append(m[id.StreamName], l)
				}
				return m
			}
			tick := func() {
				t.Helper()
				_, err := c.syncStreams(ctx)
				require.NoError(t, err)
			}

			n, err := c.syncStreams(ctx)
			require.NoError(t, err)
			require.Equal(t, 3, n)
			m := byStream()
			require.Len(t, m["a"], 2)
			require.Len(t, m["b"], 1)
			require.Equal(t, checkpoint.TrimHorizon, m["a"][0].Checkpoint, "Config.InitialPosition")
			require.Equal(t, checkpoint.Latest, m["b"][0].Checkpoint, "per-stream InitialPosition")
			require.Equal(t, lease.MultiStreamKey(m["b"][0].StreamID, "shardId-000000000000"), m["b"][0].Key)

			// A failing Streams call keeps the set.
			fail = errors.New("config service down")
			_, err = c.syncStreams(ctx)
			require.ErrorContains(t, err, "config service down")
			require.Len(t, c.trackedStreams(), 2)
			fail = nil

			// b disappears; it returns before the wait is over; it
			// disappears again.
			mu.Lock()
			set = set[:1]
			mu.Unlock()
			tick()
			require.Len(t, c.trackedStreams(), 1)
			clk.Advance(9 * time.Minute)
			tick()
			require.Len(t, byStream()["b"], 1, "kept while the wait runs")
			mu.Lock()
			set = append(set, StreamConfig{Name: "b"})
			mu.Unlock()
			tick()
			require.Len(t, c.trackedStreams(), 2, "revived")
			clk.Advance(9 * time.Minute)
			mu.Lock()
			set = set[:1]
			mu.Unlock()
			tick() // missing from now on
			clk.Advance(10*time.Minute - time.Nanosecond)
			tick()
			require.Len(t, byStream()["b"], 1, "the wait restarts after a revival")
			clk.Advance(time.Nanosecond)
			tick()
			m = byStream()
			if deleteAfter == 0 {
				require.Len(t, m["b"], 1, "never deleted with FormerStreamsDeleteAfter 0")
			} else {
				require.Empty(t, m["b"], "deleted after FormerStreamsDeleteAfter")
			}
			require.Len(t, m["a"], 2, "other streams' leases untouched")
		})
	}
}

func TestMultiStreamConfigValidation(t *testing.T) {
	fn := func(context.Context) ([]StreamConfig, error) { return nil, nil }
	_, err := Config{ApplicationName: "a", Streams: fn, StreamName: "s"}.withDefaults()
	require.ErrorIs(t, err, ErrInvalidConfig)
	require.ErrorContains(t, err, "Streams")
	_, err = Config{ApplicationName: "a", Streams: fn, FormerStreamsDeleteAfter: -1}.withDefaults()
	require.ErrorContains(t, err, "FormerStreamsDeleteAfter")
	_, err = Config{ApplicationName: "a", Streams: fn, OrphanInitialPosition: InitialPosition{Type: AtTimestamp}}.withDefaults()
	require.ErrorContains(t, err, "OrphanInitialPosition")
	cfg, err := Config{ApplicationName: "a", Streams: fn}.withDefaults()
	require.NoError(t, err)
	require.Equal(t, DefaultStreamSyncInterval, cfg.StreamSyncInterval)
	require.Equal(t, Latest, cfg.OrphanInitialPosition.Type, "KCL's orphanedStreamInitialPositionInStream")
}

// A lease of a stream this worker does not list (another worker's newer
// set) is processed as an orphan, from OrphanInitialPosition; once the
// worker's own set lists the stream, its configuration replaces the
// orphan's.
func TestOrphanStreamThenConfigured(t *testing.T) {
	ctx := context.Background()
	srv := kinesistest.New(kinesistest.Options{})
	srv.MustCreateStream("c", 1)
	d, err := srv.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("c")})
	require.NoError(t, err)
	id := lease.StreamIdentifier{AccountID: "123456789012", StreamName: "c", CreationEpoch: d.StreamDescriptionSummary.StreamCreationTimestamp.Unix()}.String()
	var mu sync.Mutex
	var set []StreamConfig
	c, err := New(srv, lease.NewMemoryStore(), ProcessRecord(nil), Config{
		ApplicationName: "app", OrphanInitialPosition: InitialPosition{Type: TrimHorizon},
		Streams: func(context.Context) ([]StreamConfig, error) {
			mu.Lock()
			defer mu.Unlock()
			return slices.Clone(set), nil
		},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.NoError(t, err)
	s, err := c.streamOf(ctx, lease.Lease{Key: id + ":shardId-000000000000", StreamID: id, ShardID: "shardId-000000000000"})
	require.NoError(t, err)
	require.False(t, s.configured)
	require.Equal(t, TrimHorizon, s.initial.Type, "OrphanInitialPosition")
	require.Empty(t, c.trackedStreams(), "an orphan is not shard-synced")

	at := InitialPosition{Type: AtTimestamp, Timestamp: time.Unix(5, 0)}
	mu.Lock()
	set = []StreamConfig{{Name: "c", InitialPosition: &at}}
	mu.Unlock()
	_, err = c.syncStreams(ctx)
	require.NoError(t, err)
	ts := c.trackedStreams()
	require.Len(t, ts, 1)
	require.Equal(t, id, ts[0].id)
	require.True(t, ts[0].configured)
	require.Equal(t, at, ts[0].initial, "the configured stream replaces the orphan")
}

// A table is single- or multi-stream, as in KCL: neither mode processes
// the other's leases.
func TestLeaseOfTheOtherMode(t *testing.T) {
	ctx := context.Background()
	srv := kinesistest.New(kinesistest.Options{})
	srv.MustCreateStream("s", 1)
	single, err := New(srv, lease.NewMemoryStore(), ProcessRecord(nil), Config{ApplicationName: "a", StreamName: "s"})
	require.NoError(t, err)
	_, err = single.streamOf(ctx, lease.Lease{Key: "1:s:5:shardId-000000000000", StreamID: "1:s:5", ShardID: "shardId-000000000000"})
	require.ErrorContains(t, err, "multi-stream lease in a single-stream table")
	multi, err := New(srv, lease.NewMemoryStore(), ProcessRecord(nil), Config{ApplicationName: "a",
		Streams: func(context.Context) ([]StreamConfig, error) { return nil, nil }})
	require.NoError(t, err)
	_, err = multi.streamOf(ctx, lease.Lease{Key: "shardId-000000000000"})
	require.ErrorContains(t, err, "single-stream lease in a multi-stream table")
}
