package producer

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/kinesistest"
)

// warnLog counts the producer's warnings by message.
type warnLog struct {
	mu    sync.Mutex
	times map[string][]time.Time
}

func (w *warnLog) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (w *warnLog) Handle(_ context.Context, r slog.Record) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.times == nil {
		w.times = map[string][]time.Time{}
	}
	w.times[r.Message] = append(w.times[r.Message], r.Time)
	return nil
}
func (w *warnLog) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *warnLog) WithGroup(string) slog.Handler      { return w }

func (w *warnLog) count() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := map[string]int{}
	for k, v := range w.times {
		m[k] = len(v)
	}
	return m
}

// A producer on a stream that does not exist fails its records with
// ErrRejected (and ErrStreamNotFound), and says so in a warning when it
// starts failing and then every failureWarnEvery, not at every retry.
func TestMissingStreamWarnsOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := kinesistest.New(kinesistest.Options{})
		logs := &warnLog{}
		cfg := fastConfig()
		cfg.Logger = slog.New(logs)
		clk := newBubbleClock()
		cfg.Clock = clk
		p := newProducer(t, srv, "missing", cfg)
		var fs []*Future
		for range 10 * 60 {
			f, err := p.Put(context.Background(), "k", []byte("x"))
			require.NoError(t, err)
			fs = append(fs, f)
			clk.Advance(time.Second)
		}
		require.Equal(t, map[string]int{"listing shards failed": 2}, logs.count(),
			"at the first failure and one reminder in ten minutes")
		rejected := 0
		for _, f := range fs {
			res, err := f.Wait(context.Background())
			require.Equal(t, res.Err, err)
			if errors.Is(err, ErrRecordExpired) {
				continue // its TTL ended between two listings
			}
			rejected++
			require.ErrorIs(t, err, ErrRejected)
			require.ErrorIs(t, err, ErrStreamNotFound)
			var rnf *types.ResourceNotFoundException
			require.ErrorAs(t, err, &rnf)
		}
		require.NotZero(t, rejected)

		// Once the stream exists, records go through.
		srv.MustCreateStream("missing", 1)
		clk.Advance(failureWarnEvery)
		f, err := p.Put(context.Background(), "k", []byte("x"))
		require.NoError(t, err)
		driveUntil(t, clk, time.Second, func() bool {
			select {
			case <-f.Done():
				return true
			default:
				return false
			}
		})
		res, err := f.Wait(context.Background())
		require.NoError(t, err)
		require.NoError(t, res.Err, "%+v", res.Attempts)
	})
}

func TestCheckStream(t *testing.T) {
	srv, stream := newFake(t, 2, kinesistest.Options{})
	p := newProducer(t, srv, stream, fastConfig())
	require.NoError(t, p.CheckStream(context.Background()))

	p = newProducer(t, srv, "missing", fastConfig())
	err := p.CheckStream(context.Background())
	require.ErrorIs(t, err, ErrStreamNotFound)
	require.ErrorContains(t, err, "missing")
	var rnf *types.ResourceNotFoundException
	require.ErrorAs(t, err, &rnf)

	// Other failures are not a missing stream.
	p = newProducer(t, deniedLister{srv}, stream, fastConfig())
	err = p.CheckStream(context.Background())
	require.Error(t, err)
	require.NotErrorIs(t, err, ErrStreamNotFound)
	var ad *types.AccessDeniedException
	require.ErrorAs(t, err, &ad)
}

// deniedLister is a client that may not list shards.
type deniedLister struct{ *kinesistest.Server }

func (deniedLister) ListShards(context.Context, *kinesis.ListShardsInput, ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	return nil, &types.AccessDeniedException{Message: aws.String("no")}
}
