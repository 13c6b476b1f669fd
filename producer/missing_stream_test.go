package producer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
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

// scriptedLister fails ListShards with the error first returns for the
// call's number (0 for the first).
type scriptedLister struct {
	*kinesistest.Server
	mu    sync.Mutex
	n     int
	first func(n int) error
}

func (s *scriptedLister) ListShards(ctx context.Context, in *kinesis.ListShardsInput, o ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	s.mu.Lock()
	n := s.n
	s.n++
	s.mu.Unlock()
	if err := s.first(n); err != nil {
		return nil, err
	}
	return s.Server.ListShards(ctx, in, o...)
}

// A shard listing that keeps failing but for another cause warns again:
// every failure without an API response has the code NetworkError, so the
// cause is told by the innermost error's message.
func TestListingFailureChangeWarns(t *testing.T) {
	refused := &smithyhttp.RequestSendError{Err: &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}}
	badCert := &smithyhttp.RequestSendError{Err: errors.New("tls: failed to verify certificate: x509: certificate signed by unknown authority")}
	synctest.Test(t, func(t *testing.T) {
		srv, stream := newFake(t, 1, kinesistest.Options{})
		client := &scriptedLister{Server: srv, first: func(n int) error {
			if n < 3 {
				return refused // the endpoint is down
			}
			return badCert // it is back, with a certificate nobody trusts
		}}
		logs := &warnLog{}
		cfg := fastConfig()
		cfg.Logger = slog.New(logs)
		clk := newBubbleClock()
		cfg.Clock = clk
		newProducer(t, client, stream, cfg)
		for range 60 {
			clk.Advance(time.Second)
		}
		client.mu.Lock()
		calls := client.n
		client.mu.Unlock()
		require.Greater(t, calls, 3, "the listing was retried past the change")
		require.Equal(t, map[string]int{"listing shards failed": 2}, logs.count(),
			"a warning when listing starts failing, and one when its cause changes")
	})
}

// The key that tells a failure's cause: the same for retries of one
// failure (ports, addresses, request ids differ), another for another
// cause or code.
func TestFailureKey(t *testing.T) {
	refused := func(port int) error {
		return &smithy.OperationError{ServiceID: "Kinesis", OperationName: "ListShards", Err: &smithyhttp.RequestSendError{
			Err: &url.Error{Op: "Post", URL: "https://127.0.0.1:4567/", Err: &net.OpError{Op: "dial", Net: "tcp",
				Source: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port},
				Addr:   &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4567},
				Err:    &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}}}}
	}
	dns := func(server string) error {
		return &smithyhttp.RequestSendError{Err: &net.DNSError{Err: "no such host", Name: "kinesis.us-east-1.amazonaws.com", Server: server, IsNotFound: true}}
	}
	timeout := func(id string) error {
		return fmt.Errorf("request %s: %w", id, errors.New("read tcp 10.0.3.7:41234->52.94.1.2:443: i/o timeout"))
	}
	key := func(err error) string { _, code, _ := classifyErr(err); return failureKey(code, err) }
	same := [][2]error{
		{refused(50123), refused(50999)},
		{dns("10.0.0.2:53"), dns("[fd00::2]:53")},
		{timeout("5f1b2c3d-aaaa-4bbb-8ccc-0123456789ab"), timeout("77aa0c3d-1111-4bbb-8ccc-fedcba987654")},
		{&types.LimitExceededException{Message: aws.String("Rate exceeded for stream s under account 123456789012.")},
			&types.LimitExceededException{Message: aws.String("Rate exceeded for stream s under account 123456789012.")}},
	}
	for _, c := range same {
		require.Equal(t, key(c[0]), key(c[1]), "%v\n%v", c[0], c[1])
	}
	distinct := []error{
		refused(1), dns("10.0.0.2:53"), timeout("x"),
		&smithyhttp.RequestSendError{Err: errors.New("tls: failed to verify certificate: x509: certificate signed by unknown authority")},
		errNoOpenShards,
		&types.LimitExceededException{Message: aws.String("Rate exceeded for stream s under account 123456789012.")},
		&types.ResourceNotFoundException{Message: aws.String("Stream s under account 123456789012 not found.")},
	}
	seen := map[string]error{}
	for _, err := range distinct {
		k := key(err)
		require.NotContains(t, seen, k, "%v and %v", err, seen[k])
		seen[k] = err
	}
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
