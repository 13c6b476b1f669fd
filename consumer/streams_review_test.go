package consumer

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/clock"
	"github.com/shardflow/shardflow/kinesistest"
	"github.com/shardflow/shardflow/lease"
)

// A stream deleted and recreated under the same name has a new creation
// epoch: its leases must be keyed by the new identifier, not resume from
// the old stream's checkpoints. Both with the stream listed throughout and
// with it removed from the set and re-added (FormerStreamsDeleteAfter 0,
// the default).
func TestReviewRecreatedStreamGetsNewIdentity(t *testing.T) {
	for _, removeFromSet := range []bool{false, true} {
		t.Run(map[bool]string{false: "listed", true: "removed-readded"}[removeFromSet], func(t *testing.T) {
			ctx := context.Background()
			clk := clock.NewFake(time.Unix(1_800_000_000, 0))
			srv := kinesistest.New(kinesistest.Options{Clock: clk})
			srv.MustCreateStream("r", 1)
			var mu sync.Mutex
			set := []StreamConfig{{Name: "r"}}
			store := lease.NewMemoryStore()
			c, err := New(srv, store, ProcessRecord(nil), Config{
				ApplicationName: "app", Clock: clk,
				Streams: func(context.Context) ([]StreamConfig, error) {
					mu.Lock()
					defer mu.Unlock()
					return slices.Clone(set), nil
				},
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			})
			require.NoError(t, err)
			_, err = c.syncStreams(ctx)
			require.NoError(t, err)
			old := c.trackedStreams()[0].id

			if removeFromSet {
				mu.Lock()
				set = nil
				mu.Unlock()
				_, err = c.syncStreams(ctx)
				require.NoError(t, err)
			}
			_, err = srv.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String("r")})
			require.NoError(t, err)
			clk.Advance(time.Hour)
			srv.MustCreateStream("r", 1)
			d, err := srv.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("r")})
			require.NoError(t, err)
			want := lease.StreamIdentifier{AccountID: "123456789012", StreamName: "r", CreationEpoch: d.StreamDescriptionSummary.StreamCreationTimestamp.Unix()}.String()
			require.NotEqual(t, old, want)
			if removeFromSet {
				mu.Lock()
				set = []StreamConfig{{Name: "r"}}
				mu.Unlock()
			}
			_, err = c.syncStreams(ctx)
			require.NoError(t, err)
			for _, s := range c.trackedStreams() {
				_, err := c.syncShards(ctx, s)
				require.NoError(t, err)
			}
			ts := c.trackedStreams()
			require.Len(t, ts, 1)
			require.Equal(t, want, ts[0].id, "the recreated stream is read under the old stream's identifier (old checkpoints)")
			_, err = store.Get(ctx, lease.MultiStreamKey(want, "shardId-000000000000"))
			require.NoError(t, err, "no lease for the recreated stream's shard")
		})
	}
}

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

// denyDescribe fails DescribeStreamSummary of one stream with a
// non-retryable error (AccessDenied: a stream the role may not read) and
// cancels ctx after a few attempts, to see what the sync did meanwhile.
type denyDescribe struct {
	*kinesistest.Server
	name   string
	calls  int
	cancel context.CancelFunc
}

func (d *denyDescribe) DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, o ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error) {
	if aws.ToString(in.StreamName) == d.name {
		d.calls++
		if d.calls >= 5 {
			d.cancel()
		}
		return nil, &smithyErr{code: "AccessDeniedException"}
	}
	return d.Server.DescribeStreamSummary(ctx, in, o...)
}

type smithyErr struct{ code string }

func (e *smithyErr) Error() string                 { return e.code }
func (e *smithyErr) ErrorCode() string             { return e.code }
func (e *smithyErr) ErrorMessage() string          { return e.code }
func (e *smithyErr) ErrorFault() smithy.ErrorFault { return smithy.FaultClient }

// One stream the worker cannot describe blocks the whole stream sync (and
// the initial one, so the consumer never starts): the other stream never
// gets its leases.
func TestReviewOneUndescribableStreamBlocksTheOthers(t *testing.T) {
	srv := kinesistest.New(kinesistest.Options{})
	srv.MustCreateStream("good", 1)
	srv.MustCreateStream("denied", 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	kc := &denyDescribe{Server: srv, name: "denied", cancel: cancel}
	store := lease.NewMemoryStore()
	c, err := New(kc, store, ProcessRecord(nil), Config{
		ApplicationName: "app", ThrottleBackoff: Backoff{Initial: time.Millisecond, Max: time.Millisecond},
		Streams: func(context.Context) ([]StreamConfig, error) {
			return []StreamConfig{{Name: "denied"}, {Name: "good"}}, nil
		},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.NoError(t, err)
	_, _ = c.syncStreams(ctx)
	ls, err := store.List(context.Background())
	require.NoError(t, err)
	require.Len(t, ls, 1, "the describable stream got no lease while another stream's describe fails")
}

// FormerStreamsDeleteAfter only applies to streams this process once
// listed: after a restart (a deploy), a stream removed from the set while
// the fleet was down is never stamped, so its leases are never deleted
// (KCL seeds its stream map from the lease table at start and stamps those
// missing from the list).
func TestReviewFormerStreamAfterRestartNeverDeleted(t *testing.T) {
	ctx := context.Background()
	srv := kinesistest.New(kinesistest.Options{})
	srv.MustCreateStream("a", 1)
	srv.MustCreateStream("b", 1)
	store := lease.NewMemoryStore()
	clk := clock.NewFake(time.Unix(1_800_000_000, 0))
	mk := func(set ...string) *Consumer {
		c, err := New(srv, store, ProcessRecord(nil), Config{
			ApplicationName: "app", Clock: clk, FormerStreamsDeleteAfter: 10 * time.Minute,
			Streams: func(context.Context) ([]StreamConfig, error) {
				var out []StreamConfig
				for _, n := range set {
					out = append(out, StreamConfig{Name: n})
				}
				return out, nil
			},
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		require.NoError(t, err)
		return c
	}
	_, err := mk("a", "b").syncStreams(ctx)
	require.NoError(t, err)
	restarted := mk("a")
	_, err = restarted.syncStreams(ctx)
	require.NoError(t, err)
	clk.Advance(11 * time.Minute)
	_, err = restarted.syncStreams(ctx)
	require.NoError(t, err)
	ls, err := store.List(ctx)
	require.NoError(t, err)
	require.Len(t, ls, 1, "b's leases outlive FormerStreamsDeleteAfter after a restart")
}

// A panic in the user's Streams function is an error of that sync (the set
// is kept), as a processor's panic is, not a crash of the worker.
func TestStreamsPanicRecovered(t *testing.T) {
	c, err := New(kinesistest.New(kinesistest.Options{}), lease.NewMemoryStore(), ProcessRecord(nil), Config{
		ApplicationName: "app",
		Streams:         func(context.Context) ([]StreamConfig, error) { panic("boom") },
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.NoError(t, err)
	_, err = c.syncStreams(context.Background())
	var pe *PanicError
	require.ErrorAs(t, err, &pe)
}

// A StreamConfig.ID naming another stream (name or account) than the one
// described is rejected for that stream; the others are synced.
func TestStreamConfigIDMismatchRejected(t *testing.T) {
	ctx := context.Background()
	srv := kinesistest.New(kinesistest.Options{})
	srv.MustCreateStream("a", 1)
	srv.MustCreateStream("b", 1)
	store := lease.NewMemoryStore()
	c, err := New(srv, store, ProcessRecord(nil), Config{
		ApplicationName: "app",
		Streams: func(context.Context) ([]StreamConfig, error) {
			return []StreamConfig{
				{Name: "a", ID: lease.StreamIdentifier{AccountID: "123456789012", StreamName: "other", CreationEpoch: 5}},
				{Name: "b", ID: lease.StreamIdentifier{AccountID: "999999999999", StreamName: "b", CreationEpoch: 5}},
				{Name: "b"},
			}, nil
		},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.NoError(t, err)
	_, err = c.trackStream(ctx, StreamConfig{Name: "a", ID: lease.StreamIdentifier{AccountID: "123456789012", StreamName: "other", CreationEpoch: 5}})
	require.ErrorIs(t, err, ErrInvalidConfig)
	_, err = c.syncStreams(ctx)
	require.NoError(t, err)
	ls, err := store.List(ctx)
	require.NoError(t, err)
	require.Len(t, ls, 1)
	require.Contains(t, ls[0].StreamID, ":b:")
	require.NotContains(t, ls[0].StreamID, "999999999999")
}
