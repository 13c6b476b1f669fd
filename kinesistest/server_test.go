package kinesistest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/clock"
)

func newTestServer(t *testing.T, opts Options) (*Server, *clock.Fake) {
	t.Helper()
	clk := clock.NewFake(time.Time{})
	opts.Clock = clk
	s := New(opts)
	t.Cleanup(func() { _ = s.Close() })
	return s, clk
}

func entries(n, size int) []types.PutRecordsRequestEntry {
	out := make([]types.PutRecordsRequestEntry, n)
	for i := range out {
		out[i] = types.PutRecordsRequestEntry{PartitionKey: aws.String("k"), Data: make([]byte, size)}
	}
	return out
}

func trimHorizon(t *testing.T, s *Server, stream, shard string) *string {
	t.Helper()
	out, err := s.GetShardIterator(context.Background(), &kinesis.GetShardIteratorInput{
		StreamName: aws.String(stream), ShardId: aws.String(shard), ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
	})
	require.NoError(t, err)
	return out.ShardIterator
}

func TestWriteLimits(t *testing.T) {
	ctx := context.Background()
	s, clk := newTestServer(t, Options{Limits: true})
	s.MustCreateStream("s", 1)
	put := func(n, size int) *kinesis.PutRecordsOutput {
		out, err := s.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: entries(n, size)})
		require.NoError(t, err)
		return out
	}
	// 1,000 records/s: the first 1,000 pass, the next fail per record.
	require.Zero(t, aws.ToInt32(put(500, 1).FailedRecordCount))
	require.Zero(t, aws.ToInt32(put(500, 1).FailedRecordCount))
	out := put(10, 1)
	require.Equal(t, int32(10), aws.ToInt32(out.FailedRecordCount))
	require.Equal(t, "ProvisionedThroughputExceededException", aws.ToString(out.Records[0].ErrorCode))
	require.Contains(t, aws.ToString(out.Records[0].ErrorMessage), "Rate exceeded for shard shardId-000000000000")
	require.Nil(t, out.Records[0].SequenceNumber)
	_, err := s.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("k"), Data: []byte("x")})
	requireErrType[*types.ProvisionedThroughputExceededException](t, err)

	// Half a second refills half the allowance.
	clk.Advance(500 * time.Millisecond)
	out = put(500, 1)
	require.Zero(t, aws.ToInt32(out.FailedRecordCount))
	require.Equal(t, int32(1), aws.ToInt32(put(1, 1).FailedRecordCount))

	// 1 MiB/s: records of 300 KiB, the fourth fails.
	clk.Advance(time.Second)
	out = put(4, 300<<10)
	require.Equal(t, int32(1), aws.ToInt32(out.FailedRecordCount))
	require.NotNil(t, out.Records[3].ErrorCode)
	require.Len(t, s.Records("s", "shardId-000000000000"), 1000+500+3)
}

func TestReadLimits(t *testing.T) {
	ctx := context.Background()
	s, clk := newTestServer(t, Options{Limits: true})
	s.MustCreateStream("s", 1)
	it := trimHorizon(t, s, "s", "shardId-000000000000")
	// 5 calls per second.
	for i := 0; i < 5; i++ {
		out, err := s.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it})
		require.NoError(t, err, "call %d", i)
		it = out.NextShardIterator
	}
	_, err := s.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it})
	requireErrType[*types.ProvisionedThroughputExceededException](t, err)
	clk.Advance(200 * time.Millisecond)
	_, err = s.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it})
	require.NoError(t, err)

	// 2 MiB/s out: a 10 MiB read blocks reads for seconds. Fill the shard
	// without write limits getting in the way by advancing the clock.
	for i := 0; i < 12; i++ {
		_, err := s.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: entries(1, 900<<10)})
		require.NoError(t, err)
		clk.Advance(time.Second)
	}
	out, err := s.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it})
	require.NoError(t, err)
	require.Len(t, out.Records, 11, "10 MiB per call")
	it = out.NextShardIterator
	clk.Advance(time.Second)
	_, err = s.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it})
	requireErrType[*types.ProvisionedThroughputExceededException](t, err)
	clk.Advance(4 * time.Second)
	out, err = s.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it})
	require.NoError(t, err)
	require.Len(t, out.Records, 1)
}

func TestNoLimitsByDefault(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestServer(t, Options{})
	s.MustCreateStream("s", 1)
	for i := 0; i < 5; i++ {
		out, err := s.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: entries(500, 1000)})
		require.NoError(t, err)
		require.Zero(t, aws.ToInt32(out.FailedRecordCount))
	}
}

func TestFaultThrottleDeterministic(t *testing.T) {
	run := func() []bool {
		s, _ := newTestServer(t, Options{Seed: 42})
		s.MustCreateStream("s", 1)
		s.Throttle(OpPutRecord, 0.5)
		var got []bool
		for i := 0; i < 64; i++ {
			_, err := s.PutRecord(context.Background(), &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("k"), Data: []byte("x")})
			if err != nil {
				requireErrType[*types.ProvisionedThroughputExceededException](t, err)
			}
			got = append(got, err != nil)
		}
		return got
	}
	a, b := run(), run()
	require.Equal(t, a, b, "same seed, same faults")
	n := 0
	for _, x := range a {
		if x {
			n++
		}
	}
	require.True(t, n > 16 && n < 48, "about half throttled: %d", n)

	s, _ := newTestServer(t, Options{})
	s.Throttle(AnyOp, 1)
	_, err := s.ListStreams(context.Background(), &kinesis.ListStreamsInput{})
	requireErrType[*types.LimitExceededException](t, err)
	s.Throttle(AnyOp, 0)
	_, err = s.ListStreams(context.Background(), &kinesis.ListStreamsInput{})
	require.NoError(t, err)
}

func TestFaultFailNext(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestServer(t, Options{})
	s.MustCreateStream("s", 1)
	boom := errors.New("boom")
	s.FailNext(OpPutRecords, 2, nil)
	s.FailNext(OpPutRecords, 1, boom)
	in := &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: entries(3, 1)}
	for i := 0; i < 2; i++ {
		_, err := s.PutRecords(ctx, in)
		requireErrType[*types.InternalFailureException](t, err)
	}
	_, err := s.PutRecords(ctx, in)
	require.ErrorIs(t, err, boom)
	require.Empty(t, s.Records("s", "shardId-000000000000"), "failed calls have no effect")
	_, err = s.PutRecords(ctx, in)
	require.NoError(t, err)

	// After apply: stored, yet the caller sees the error.
	s.FailNextAfterApply(OpPutRecords, 1, boom)
	_, err = s.PutRecords(ctx, in)
	require.ErrorIs(t, err, boom)
	require.Len(t, s.Records("s", "shardId-000000000000"), 6)

	// AnyOp rules apply to every operation.
	s.FailNext(AnyOp, 1, boom)
	_, err = s.ListStreams(ctx, &kinesis.ListStreamsInput{})
	require.ErrorIs(t, err, boom)
	s.ResetFaults()
	s.FailNext(OpGetRecords, 1, boom)
	s.ResetFaults()
	_, err = s.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: trimHorizon(t, s, "s", "shardId-000000000000")})
	require.NoError(t, err)
}

func TestFaultFailRecords(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestServer(t, Options{Seed: 7})
	s.MustCreateStream("s", 2)
	s.FailRecords(0.3, "InternalFailure")
	out, err := s.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: entries(200, 10)})
	require.NoError(t, err)
	failed := 0
	for _, r := range out.Records {
		if r.ErrorCode != nil {
			failed++
			require.Equal(t, "InternalFailure", *r.ErrorCode)
			require.Nil(t, r.SequenceNumber)
		} else {
			require.NotNil(t, r.SequenceNumber)
		}
	}
	require.Equal(t, int32(failed), aws.ToInt32(out.FailedRecordCount))
	require.True(t, failed > 30 && failed < 90, "about 30%% failed: %d", failed)
	stored := len(s.Records("s", "shardId-000000000000")) + len(s.Records("s", "shardId-000000000001"))
	require.Equal(t, 200-failed, stored)
}

func TestFaultLatencyAndHook(t *testing.T) {
	s, clk := newTestServer(t, Options{})
	s.MustCreateStream("s", 1)
	s.SetLatency(OpDescribeStreamSummary, time.Second)
	done := make(chan error, 1)
	go func() {
		_, err := s.DescribeStreamSummary(context.Background(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("s")})
		done <- err
	}()
	clk.BlockUntil(1)
	select {
	case <-done:
		t.Fatal("returned before the latency elapsed")
	default:
	}
	clk.Advance(time.Second)
	require.NoError(t, <-done)

	// Latency honours cancellation.
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		_, err := s.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("s")})
		done <- err
	}()
	clk.BlockUntil(1)
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	s.SetLatency(OpDescribeStreamSummary, 0)

	// A hook that stalls until the caller gives up.
	var ops []string
	var mu sync.Mutex
	s.SetHook(func(ctx context.Context, op string) error {
		mu.Lock()
		ops = append(ops, op)
		mu.Unlock()
		if op == OpGetRecords {
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	})
	it := trimHorizon(t, s, "s", "shardId-000000000000")
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_, err := s.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Equal(t, []string{OpGetShardIterator, OpGetRecords}, ops)
}

func TestDataChanged(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestServer(t, Options{})
	ch := s.dataChanged()
	s.MustCreateStream("s", 2)
	requireClosed(t, ch)
	for _, step := range []func() error{
		func() error {
			_, err := s.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("k"), Data: []byte("x")})
			return err
		},
		func() error {
			_, err := s.MergeShards(ctx, &kinesis.MergeShardsInput{StreamName: aws.String("s"), ShardToMerge: aws.String("shardId-000000000000"), AdjacentShardToMerge: aws.String("shardId-000000000001")})
			return err
		},
		func() error {
			_, err := s.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: aws.String(s.streamARN("s")), ConsumerName: aws.String("c")})
			return err
		},
		func() error {
			_, err := s.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String("s"), EnforceConsumerDeletion: aws.Bool(true)})
			return err
		},
	} {
		ch := s.dataChanged()
		require.NoError(t, step())
		requireClosed(t, ch)
		select {
		case <-s.dataChanged():
			t.Fatal("fresh channel already closed")
		default:
		}
	}
	// A failed write changes nothing.
	ch = s.dataChanged()
	_, err := s.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("k"), Data: []byte("x")})
	require.Error(t, err)
	select {
	case <-ch:
		t.Fatal("closed without a change")
	default:
	}
}

func requireClosed(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	default:
		t.Fatal("dataChanged channel not closed")
	}
}

func TestIteratorIntegrity(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestServer(t, Options{})
	s.MustCreateStream("s", 1)
	it := aws.ToString(trimHorizon(t, s, "s", "shardId-000000000000"))

	// Any change to the iterator is detected.
	b := []byte(it)
	b[10] ^= 1
	_, err := s.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: aws.String(string(b))})
	requireErrType[*types.InvalidArgumentException](t, err)
	// Another server's iterators are refused.
	other, _ := newTestServer(t, Options{})
	other.MustCreateStream("s", 1)
	_, err = s.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: trimHorizon(t, other, "s", "shardId-000000000000")})
	requireErrType[*types.InvalidArgumentException](t, err)

	// An iterator outlives a copy but not its stream, even when a stream of
	// the same name replaces it.
	_, err = s.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String("s")})
	require.NoError(t, err)
	_, err = s.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: aws.String(it)})
	requireErrType[*types.ResourceNotFoundException](t, err)
	s.MustCreateStream("s", 1)
	_, err = s.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: aws.String(it)})
	requireErrType[*types.ResourceNotFoundException](t, err)
}

func TestSequenceNumberChecks(t *testing.T) {
	ctx := context.Background()
	s, clk := newTestServer(t, Options{})
	s.MustCreateStream("s", 2)
	out, err := s.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("k"), ExplicitHashKey: aws.String("0"), Data: []byte("x")})
	require.NoError(t, err)
	require.Equal(t, "shardId-000000000000", aws.ToString(out.ShardId))
	in := &kinesis.GetShardIteratorInput{StreamName: aws.String("s"), ShardId: aws.String("shardId-000000000001"), ShardIteratorType: types.ShardIteratorTypeAtSequenceNumber, StartingSequenceNumber: out.SequenceNumber}
	_, err = s.GetShardIterator(ctx, in)
	e := requireErrType[*types.InvalidArgumentException](t, err)
	require.Contains(t, e.ErrorMessage(), "It encodes shardId-000000000000")
	in.StartingSequenceNumber = aws.String("12345")
	_, err = s.GetShardIterator(ctx, in)
	requireErrType[*types.InvalidArgumentException](t, err)

	// A number from an earlier stream of the same name is refused.
	clk.Advance(time.Second)
	_, err = s.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String("s")})
	require.NoError(t, err)
	s.MustCreateStream("s", 2)
	in.ShardId, in.StartingSequenceNumber = out.ShardId, out.SequenceNumber
	_, err = s.GetShardIterator(ctx, in)
	e = requireErrType[*types.InvalidArgumentException](t, err)
	require.Contains(t, e.ErrorMessage(), "did not come from this stream")

	// AT_TIMESTAMP in the future.
	_, err = s.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("s"), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeAtTimestamp, Timestamp: aws.Time(clk.Now().Add(time.Minute))})
	requireErrType[*types.InvalidArgumentException](t, err)
}

func TestRetention(t *testing.T) {
	ctx := context.Background()
	s, clk := newTestServer(t, Options{})
	s.MustCreateStream("s", 1)
	_, err := s.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: entries(3, 1)})
	require.NoError(t, err)
	clk.Advance(23 * time.Hour)
	_, err = s.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: entries(2, 1)})
	require.NoError(t, err)
	_, err = s.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String("s"), ShardToSplit: aws.String("shardId-000000000000"), NewStartingHashKey: aws.String("1000")})
	require.NoError(t, err)
	clk.Advance(2 * time.Hour)
	it := trimHorizon(t, s, "s", "shardId-000000000000")
	// The first three records aged out; the iterator skips them.
	out, err := s.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it})
	require.NoError(t, err)
	require.Len(t, out.Records, 2)
	require.Nil(t, out.NextShardIterator)
	require.Len(t, out.ChildShards, 2)
	// The closed parent expires 24 h after it closed.
	clk.Advance(23 * time.Hour)
	shards, err := s.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("s")})
	require.NoError(t, err)
	require.Len(t, shards.Shards, 2)
	th, err := s.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("s"), ShardFilter: &types.ShardFilter{Type: types.ShardFilterTypeAtTrimHorizon}})
	require.NoError(t, err)
	require.Len(t, th.Shards, 2, "children of an expired parent are where reading starts")
	_, err = s.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("s"), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	requireErrType[*types.ResourceNotFoundException](t, err)
}

func TestListShardsTimestampFiltersAndToken(t *testing.T) {
	ctx := context.Background()
	s, clk := newTestServer(t, Options{})
	s.MustCreateStream("s", 2)
	t0 := clk.Now()
	clk.Advance(time.Minute)
	_, err := s.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String("s"), ShardToSplit: aws.String("shardId-000000000000"), NewStartingHashKey: aws.String("1000")})
	require.NoError(t, err)
	t1 := clk.Now()
	clk.Advance(time.Minute)
	ids := func(f types.ShardFilter) []string {
		out, err := s.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("s"), ShardFilter: &f})
		require.NoError(t, err)
		var r []string
		for _, sh := range out.Shards {
			r = append(r, strings.TrimPrefix(aws.ToString(sh.ShardId), "shardId-00000000000"))
		}
		return r
	}
	require.Equal(t, []string{"0", "1"}, ids(types.ShardFilter{Type: types.ShardFilterTypeAtTimestamp, Timestamp: aws.Time(t0.Add(time.Second))}))
	require.Equal(t, []string{"1", "2", "3"}, ids(types.ShardFilter{Type: types.ShardFilterTypeAtTimestamp, Timestamp: aws.Time(t1.Add(time.Second))}))
	require.Equal(t, []string{"0", "1", "2", "3"}, ids(types.ShardFilter{Type: types.ShardFilterTypeFromTimestamp, Timestamp: aws.Time(t0)}))
	require.Equal(t, []string{"1", "2", "3"}, ids(types.ShardFilter{Type: types.ShardFilterTypeFromTimestamp, Timestamp: aws.Time(t1.Add(time.Second))}))

	page, err := s.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("s"), MaxResults: aws.Int32(1), ShardFilter: &types.ShardFilter{Type: types.ShardFilterTypeAtLatest}})
	require.NoError(t, err)
	require.Equal(t, "shardId-000000000001", aws.ToString(page.Shards[0].ShardId))
	next, err := s.ListShards(ctx, &kinesis.ListShardsInput{NextToken: page.NextToken, MaxResults: aws.Int32(1)})
	require.NoError(t, err)
	require.Equal(t, "shardId-000000000002", aws.ToString(next.Shards[0].ShardId), "the filter travels in the token")
	clk.Advance(301 * time.Second)
	_, err = s.ListShards(ctx, &kinesis.ListShardsInput{NextToken: next.NextToken})
	requireErrType[*types.ExpiredNextTokenException](t, err)
}

func TestUpdateShardCountShapes(t *testing.T) {
	ctx := context.Background()
	for _, c := range [][2]int{{1, 2}, {2, 1}, {3, 5}, {5, 3}, {4, 8}, {8, 4}, {7, 13}} {
		t.Run(fmt.Sprintf("%d-%d", c[0], c[1]), func(t *testing.T) {
			s, _ := newTestServer(t, Options{})
			s.MustCreateStream("s", c[0])
			_, err := s.UpdateShardCount(ctx, &kinesis.UpdateShardCountInput{StreamName: aws.String("s"), TargetShardCount: aws.Int32(int32(c[1])), ScalingType: types.ScalingTypeUniformScaling})
			require.NoError(t, err)
			s.mu.RLock()
			defer s.mu.RUnlock()
			st := s.streams["s"]
			open := st.openShards()
			require.Len(t, open, c[1])
			want := evenRanges(u128{}, maxU128, c[1])
			for i, sh := range open {
				require.Equal(t, want[i][0], sh.start)
				require.Equal(t, want[i][1], sh.end)
			}
			// Lineage is consistent: every parent is closed, every child's
			// range lies within its parents' union.
			for _, sh := range st.shards {
				for _, p := range []string{sh.parent, sh.adjParent} {
					if p == "" {
						continue
					}
					ps := st.shard(p)
					require.False(t, ps.open())
					require.Less(t, ps.index, sh.index)
				}
			}
		})
	}
}

func TestUpdateShardCountRateLimit(t *testing.T) {
	ctx := context.Background()
	s, clk := newTestServer(t, Options{})
	s.MustCreateStream("s", 1)
	scale := func(n int32) error {
		_, err := s.UpdateShardCount(ctx, &kinesis.UpdateShardCountInput{StreamName: aws.String("s"), TargetShardCount: aws.Int32(n), ScalingType: types.ScalingTypeUniformScaling})
		return err
	}
	for i := 0; i < 10; i++ {
		require.NoError(t, scale(int32(1+(i+1)%2)))
	}
	requireErrType[*types.LimitExceededException](t, scale(1))
	clk.Advance(24 * time.Hour)
	require.NoError(t, scale(2))
}

func TestConcurrentUse(t *testing.T) {
	ctx := context.Background()
	s := New(Options{})
	s.MustCreateStream("s", 4)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				_, err := s.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: []types.PutRecordsRequestEntry{
					{PartitionKey: aws.String(fmt.Sprintf("%d-%d", w, i)), Data: []byte("x")},
				}})
				require.NoError(t, err)
			}
		}(w)
	}
	for _, id := range s.ShardIDs("s") {
		wg.Add(1)
		go func(id string) {
			defer wg.Done()
			it := trimHorizon(t, s, "s", id)
			for i := 0; i < 50; i++ {
				out, err := s.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it})
				require.NoError(t, err)
				it = out.NextShardIterator
			}
		}(id)
	}
	wg.Wait()
	total := 0
	for _, id := range s.ShardIDs("s") {
		total += len(s.Records("s", id))
	}
	require.Equal(t, 200, total)
}

func TestRecordAndCallSizeLimits(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestServer(t, Options{})
	s.MustCreateStream("s", 1)
	// 1 MiB counts data plus partition key.
	_, err := s.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("kk"), Data: make([]byte, 1<<20-2)})
	require.NoError(t, err)
	_, err = s.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("kkk"), Data: make([]byte, 1<<20-2)})
	requireErrType[*types.InvalidArgumentException](t, err)
	_, err = s.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: []types.PutRecordsRequestEntry{
		{PartitionKey: aws.String("k"), Data: []byte("x")},
		{PartitionKey: aws.String(strings.Repeat("é", 257)), Data: []byte("x")},
	}})
	e := requireErrType[*types.ValidationException](t, err)
	require.Contains(t, e.ErrorMessage(), "records.2.member.partitionKey")
	// 256 characters is fine even at 2 bytes each.
	_, err = s.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String(strings.Repeat("é", 256)), Data: []byte("x")})
	require.NoError(t, err)
	// Kinesis counts UTF-16 code units: a character outside the Basic
	// Multilingual Plane counts twice, so 128 of them fit and 129 do not.
	_, err = s.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String(strings.Repeat("😀", 128)), Data: []byte("x")})
	require.NoError(t, err)
	_, err = s.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String(strings.Repeat("😀", 129)), Data: []byte("x")})
	e = requireErrType[*types.ValidationException](t, err)
	require.Contains(t, e.ErrorMessage(), "partitionKey")
	require.NotContains(t, e.ErrorMessage(), "records.", "PutRecord names the bare field")
	require.Len(t, s.Records("s", "shardId-000000000000"), 3, "rejected calls store nothing")
}

func TestAddressingAndPaging(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestServer(t, Options{Region: "eu-west-1", AccountID: "111122223333"})
	arn := s.MustCreateStream("s", 3)
	require.Equal(t, "arn:aws:kinesis:eu-west-1:111122223333:stream/s", arn)
	for _, c := range []struct {
		name, arn *string
		ok        bool
	}{
		{nil, aws.String(arn), true},
		{aws.String("s"), aws.String(arn), true},
		{aws.String("t"), aws.String(arn), false},
		{nil, aws.String("arn:aws:kinesis:us-east-1:111122223333:stream/s"), false},
		{nil, nil, false},
	} {
		_, err := s.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: c.name, StreamARN: c.arn, PartitionKey: aws.String("k"), Data: []byte("x")})
		require.Equal(t, c.ok, err == nil, "%v %v: %v", aws.ToString(c.name), aws.ToString(c.arn), err)
	}
	d, err := s.DescribeStream(ctx, &kinesis.DescribeStreamInput{StreamARN: aws.String(arn), Limit: aws.Int32(2)})
	require.NoError(t, err)
	require.Len(t, d.StreamDescription.Shards, 2)
	require.True(t, aws.ToBool(d.StreamDescription.HasMoreShards))
	d, err = s.DescribeStream(ctx, &kinesis.DescribeStreamInput{StreamName: aws.String("s"), ExclusiveStartShardId: d.StreamDescription.Shards[1].ShardId})
	require.NoError(t, err)
	require.Len(t, d.StreamDescription.Shards, 1)
	require.False(t, aws.ToBool(d.StreamDescription.HasMoreShards))

	s.MustCreateStream("a", 1)
	s.MustCreateStream("b", 1)
	ls, err := s.ListStreams(ctx, &kinesis.ListStreamsInput{Limit: aws.Int32(2)})
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b"}, ls.StreamNames)
	require.True(t, aws.ToBool(ls.HasMoreStreams))
	ls, err = s.ListStreams(ctx, &kinesis.ListStreamsInput{NextToken: ls.NextToken})
	require.NoError(t, err)
	require.Equal(t, []string{"s"}, ls.StreamNames)
	require.False(t, aws.ToBool(ls.HasMoreStreams))

	for i := 0; i < 3; i++ {
		_, err := s.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: aws.String(arn), ConsumerName: aws.String(fmt.Sprintf("c%d", i))})
		require.NoError(t, err)
	}
	lc, err := s.ListStreamConsumers(ctx, &kinesis.ListStreamConsumersInput{StreamARN: aws.String(arn), MaxResults: aws.Int32(2)})
	require.NoError(t, err)
	require.Len(t, lc.Consumers, 2)
	lc, err = s.ListStreamConsumers(ctx, &kinesis.ListStreamConsumersInput{StreamARN: aws.String(arn), NextToken: lc.NextToken})
	require.NoError(t, err)
	require.Len(t, lc.Consumers, 1)
	require.Equal(t, "c2", aws.ToString(lc.Consumers[0].ConsumerName))
	require.Nil(t, lc.NextToken)
	_, err = s.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamARN: aws.String(arn)})
	requireErrType[*types.ResourceInUseException](t, err)
}

func TestQuotas(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestServer(t, Options{ShardLimit: 4})
	arn := s.MustCreateStream("s", 3)
	_, err := s.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("t"), ShardCount: aws.Int32(2)})
	requireErrType[*types.LimitExceededException](t, err)
	_, err = s.UpdateShardCount(ctx, &kinesis.UpdateShardCountInput{StreamName: aws.String("s"), TargetShardCount: aws.Int32(5), ScalingType: types.ScalingTypeUniformScaling})
	requireErrType[*types.LimitExceededException](t, err)
	for i := 0; i < 20; i++ {
		_, err := s.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: aws.String(arn), ConsumerName: aws.String(fmt.Sprintf("c%d", i))})
		require.NoError(t, err)
	}
	_, err = s.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: aws.String(arn), ConsumerName: aws.String("one-too-many")})
	requireErrType[*types.LimitExceededException](t, err)
}
