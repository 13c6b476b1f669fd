package consumer

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/clock"
	"github.com/shardflow/shardflow/lease"
)

// The lease coordinator bounds each Renew/Take/MarkHandoff with its own
// deadline: a store that hangs (a black-holed endpoint) times every call
// out, and those timeouts are the outage. A kind of call retried less
// often than UnhealthyAfter still fails continuously until a success.

// hangingStore is a lease store whose endpoint does not answer: every
// call waits for its context, as the SDK does on a black-holed connection.
type hangingStore struct{ lease.Store }

func (hangingStore) Renew(ctx context.Context, _ lease.Lease) (lease.Lease, error) {
	<-ctx.Done()
	return lease.Lease{}, ctx.Err()
}

func TestHungStoreIsAnOutage(t *testing.T) {
	clk := clock.NewFake(time.Unix(1_800_000_000, 0))
	cfg := Config{Clock: clk, UnhealthyAfter: time.Minute}
	tr := newFailureTracker("lease store", cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	s := &healthStore{Store: hangingStore{lease.NewMemoryStore()}, t: tr}
	parent := context.Background() // the coordinator's: not cancelled
	for range 30 {                 // one renewal pass every 10 s for 5 minutes
		// What the coordinator does for every renewal: an I/O deadline on
		// the call (already past here, as it is when the endpoint hangs).
		rctx, cancel := context.WithDeadline(parent, time.Unix(0, 0))
		_, err := s.Renew(rctx, lease.Lease{Key: "shardId-0"})
		cancel()
		require.Error(t, err)
		clk.Advance(10 * time.Second)
	}
	st := Status{At: clk.Now(), UnhealthyAfter: cfg.UnhealthyAfter}
	st.StoreFailingSince, st.StoreErr = tr.failing(st.At)
	require.False(t, st.StoreFailingSince.IsZero(), "every renewal for 5 minutes timed out: the store is failing")
	require.True(t, st.StoreUnhealthy())
}

func TestFailuresSpacedWiderThanUnhealthyAfterNeverUnhealthy(t *testing.T) {
	clk := clock.NewFake(time.Unix(1_800_000_000, 0))
	// A short UnhealthyAfter (fast readiness), while throttled GetRecords
	// retries wait up to ThrottleBackoff's default 10 s cap.
	cfg := Config{Clock: clk, UnhealthyAfter: 5 * time.Second}
	tr := newFailureTracker("stream", cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx := context.Background()
	for range 60 { // ten minutes, every attempt failing, no success at all
		tr.observe(ctx, "GetRecords", errFake, false)
		clk.Advance(10 * time.Second)
	}
	tr.observe(ctx, "GetRecords", errFake, false)
	since, _ := tr.failing(clk.Now())
	st := Status{At: clk.Now(), UnhealthyAfter: cfg.UnhealthyAfter, StreamFailingSince: since}
	require.True(t, st.StreamUnhealthy(), "GetRecords failed at every attempt for ten minutes (failing since %v, at %v)", since, st.At)
}

var errFake = fakeErr("ProvisionedThroughputExceededException")

type fakeErr string

func (e fakeErr) Error() string { return string(e) }

// twoStreamKinesis fails every read of one stream (its KMS key disabled,
// access denied on it) and serves the other: in multi-stream mode the
// second's successes must not hide the first's failures.
type twoStreamKinesis struct{ Kinesis }

func (twoStreamKinesis) GetRecords(_ context.Context, in *kinesis.GetRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	if strings.HasPrefix(aws.ToString(in.ShardIterator), "broken:") {
		return nil, &types.KMSAccessDeniedException{Message: aws.String("injected: the stream's key is denied")}
	}
	return &kinesis.GetRecordsOutput{NextShardIterator: in.ShardIterator, MillisBehindLatest: aws.Int64(0)}, nil
}

// The streams' ARNs, as the consumer sets them on every read in
// multi-stream mode.
const (
	brokenARN = "arn:aws:kinesis:us-east-1:123456789012:stream/broken"
	fineARN   = "arn:aws:kinesis:us-east-1:123456789012:stream/fine"
)

func TestOneStreamFailingHiddenByAnother(t *testing.T) {
	clk := clock.NewFake(time.Unix(1_800_000_000, 0))
	cfg := Config{Clock: clk, UnhealthyAfter: time.Minute}
	tr := newFailureTracker("stream", cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	kc := &healthKinesis{Kinesis: twoStreamKinesis{}, t: tr}
	ctx := context.Background()
	for range 300 { // five minutes: every read of the broken stream fails
		_, err := kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: aws.String("broken:shardId-0"), StreamARN: aws.String(brokenARN)})
		require.Error(t, err)
		_, err = kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: aws.String("fine:shardId-0"), StreamARN: aws.String(fineARN)})
		require.NoError(t, err)
		clk.Advance(time.Second)
	}
	since, _ := tr.failing(clk.Now())
	st := Status{At: clk.Now(), UnhealthyAfter: cfg.UnhealthyAfter, StreamFailingSince: since}
	require.True(t, st.StreamUnhealthy(), "one stream's reads have failed for five minutes")
}
