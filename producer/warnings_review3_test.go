// REVIEW: fails because failureLog keys every error that is not an AWS API
// error on its code alone (producer/shardmap.go:175-177, key = "NetworkError"),
// and classifyErr names every such error "NetworkError" (producer/classify.go:52),
// "stream has no open shards" included. So when shard listing keeps failing
// but the cause changes (connection refused, then a TLS certificate error;
// or a network error, then no open shards), no warning says so for up to
// failureWarnEvery (5 min): the change is logged at Debug only, although the
// doc promises a warning "when the error (code and message, not the request
// id) changes".

package producer

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/kinesistest"
)

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

func TestReview3ListingFailureChangeWarns(t *testing.T) {
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
