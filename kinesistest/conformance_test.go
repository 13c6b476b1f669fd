package kinesistest

import (
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/clock"
)

// conformanceEnv is one Kinesis implementation under test: the fake, or a
// real emulator reached through *kinesis.Client.
type conformanceEnv struct {
	name   string // "fake", "kinesalite", "kinesis-mock"
	api    API
	fake   *Server     // nil for emulators
	clk    *clock.Fake // nil for emulators
	create func(t *testing.T, name string, shards int32)
}

func (e *conformanceEnv) isFake() bool { return e.fake != nil }

// runConformance runs the suite; newEnv returns a fresh environment per
// subtest (the fake gets its own server and clock, emulators share one
// process and use unique stream names).
func runConformance(t *testing.T, newEnv func(t *testing.T) *conformanceEnv) {
	tests := []struct {
		name string
		fn   func(t *testing.T, e *conformanceEnv)
	}{
		{"CreateDescribeListShards", testCreateDescribeList},
		{"Routing", testRouting},
		{"SequenceOrdering", testSequenceOrdering},
		{"IteratorTypes", testIteratorTypes},
		{"GetRecordsPaging", testGetRecordsPaging},
		{"IteratorExpiry", testIteratorExpiry},
		{"Resharding", testResharding},
		{"UpdateShardCount", testUpdateShardCount},
		{"ValidationErrors", testValidationErrors},
		{"Consumers", testConsumers},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newEnv(t))
		})
	}
}

func newFakeEnv(t *testing.T) *conformanceEnv {
	clk := clock.NewFake(time.Time{})
	srv := New(Options{Clock: clk, Seed: 1})
	t.Cleanup(func() { _ = srv.Close() })
	return &conformanceEnv{
		name: "fake", api: srv, fake: srv, clk: clk,
		create: func(t *testing.T, name string, shards int32) {
			_, err := srv.CreateStream(context.Background(), &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(shards)})
			require.NoError(t, err)
		},
	}
}

func TestConformanceFake(t *testing.T) { runConformance(t, newFakeEnv) }

// TestConformanceFakeOverHTTP runs the suite through a real SDK client
// talking to the fake's wire layer, so the wire encoding of every shape and
// error is held to the same expectations.
func TestConformanceFakeOverHTTP(t *testing.T) {
	runConformance(t, func(t *testing.T) *conformanceEnv {
		e := newFakeEnv(t)
		e.name = "fake-http"
		e.api = e.fake.Client()
		return e
	})
}

var streamSeq atomic.Int64

func streamSeqNext() int64 { return streamSeq.Add(1) }

func uniqueStream(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano()%1e9, streamSeqNext())
}

// ctxT is a test's context. It has no deadline: a slow emulator or
// machine makes the suite slower, not red; a hang is reported by the test
// binary's -timeout.
func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return ctx
}

// waitActive polls until the stream is ACTIVE again after a reshard; the
// fake is ACTIVE at once, the emulators take their configured delay.
func waitActive(t *testing.T, e *conformanceEnv, name string) {
	t.Helper()
	ctx := ctxT(t)
	for {
		out, err := e.api.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		require.NoError(t, err)
		if out.StreamDescriptionSummary.StreamStatus == types.StreamStatusActive {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("stream %s not ACTIVE: %v", name, ctx.Err())
		case <-time.After(50 * time.Millisecond): // emulator polling only
		}
	}
}

func listAllShards(t *testing.T, e *conformanceEnv, name string, filter *types.ShardFilter) []types.Shard {
	t.Helper()
	ctx := ctxT(t)
	var out []types.Shard
	in := &kinesis.ListShardsInput{StreamName: aws.String(name), ShardFilter: filter}
	for {
		res, err := e.api.ListShards(ctx, in)
		require.NoError(t, err)
		out = append(out, res.Shards...)
		if res.NextToken == nil {
			return out
		}
		in = &kinesis.ListShardsInput{NextToken: res.NextToken}
	}
}

func bigOf(t *testing.T, s *string) *big.Int {
	t.Helper()
	b, ok := new(big.Int).SetString(aws.ToString(s), 10)
	require.True(t, ok, "not a decimal: %q", aws.ToString(s))
	return b
}

var max128 = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 128), big.NewInt(1))

func md5Key(pk string) *big.Int {
	sum := md5.Sum([]byte(pk))
	return new(big.Int).SetBytes(sum[:])
}

func shardFor(t *testing.T, shards []types.Shard, k *big.Int) string {
	t.Helper()
	for _, sh := range shards {
		if sh.SequenceNumberRange.EndingSequenceNumber != nil {
			continue
		}
		if bigOf(t, sh.HashKeyRange.StartingHashKey).Cmp(k) <= 0 && k.Cmp(bigOf(t, sh.HashKeyRange.EndingHashKey)) <= 0 {
			return aws.ToString(sh.ShardId)
		}
	}
	t.Fatalf("no open shard holds %s", k)
	return ""
}

func putN(t *testing.T, e *conformanceEnv, name string, pk string, n int, tag string) []types.PutRecordsResultEntry {
	t.Helper()
	ctx := ctxT(t)
	var entries []types.PutRecordsRequestEntry
	for i := 0; i < n; i++ {
		entries = append(entries, types.PutRecordsRequestEntry{PartitionKey: aws.String(pk), Data: []byte(fmt.Sprintf("%s-%d", tag, i))})
	}
	out, err := e.api.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(name), Records: entries})
	require.NoError(t, err)
	require.Zero(t, aws.ToInt32(out.FailedRecordCount))
	require.Len(t, out.Records, n)
	return out.Records
}

func iter(t *testing.T, e *conformanceEnv, in *kinesis.GetShardIteratorInput) *string {
	t.Helper()
	out, err := e.api.GetShardIterator(ctxT(t), in)
	require.NoError(t, err)
	require.NotNil(t, out.ShardIterator)
	return out.ShardIterator
}

// readToEnd reads from it until the shard end (nil NextShardIterator) or,
// for an open shard, until a response is empty and caught up. It returns
// the records and the last response.
func readToEnd(t *testing.T, e *conformanceEnv, it *string, limit int32) ([]types.Record, *kinesis.GetRecordsOutput) {
	t.Helper()
	ctx := ctxT(t)
	var recs []types.Record
	for i := 0; ; i++ {
		require.Less(t, i, 1000, "GetRecords did not converge")
		in := &kinesis.GetRecordsInput{ShardIterator: it}
		if limit > 0 {
			in.Limit = aws.Int32(limit)
		}
		out, err := e.api.GetRecords(ctx, in)
		require.NoError(t, err)
		recs = append(recs, out.Records...)
		if out.NextShardIterator == nil || (len(out.Records) == 0 && aws.ToInt64(out.MillisBehindLatest) == 0) {
			return recs, out
		}
		it = out.NextShardIterator
	}
}

func data(recs []types.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.Data)
	}
	return out
}

func requireErrType[T error](t *testing.T, err error) T {
	t.Helper()
	var target T
	require.Error(t, err)
	require.True(t, errors.As(err, &target), "want %T, got %T: %v", target, err, err)
	return target
}

// requireValidation asserts the service's ValidationException for input
// that breaks the API model's constraints (lengths, patterns, ranges).
func requireValidation(t *testing.T, e *conformanceEnv, err error) {
	t.Helper()
	if e.name == "kinesis-mock" {
		// kinesis-mock reports model constraint violations as
		// InvalidArgumentException where AWS says ValidationException.
		requireErrType[*types.InvalidArgumentException](t, err)
		return
	}
	requireErrType[*types.ValidationException](t, err)
}

// --- the tests ---

func testCreateDescribeList(t *testing.T, e *conformanceEnv) {
	ctx := ctxT(t)
	name := uniqueStream("cdl")
	e.create(t, name, 3)

	sum, err := e.api.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
	require.NoError(t, err)
	d := sum.StreamDescriptionSummary
	require.Equal(t, types.StreamStatusActive, d.StreamStatus)
	require.Equal(t, int32(3), aws.ToInt32(d.OpenShardCount))
	require.True(t, strings.HasPrefix(aws.ToString(d.StreamARN), "arn:aws:kinesis:"), aws.ToString(d.StreamARN))
	require.True(t, strings.HasSuffix(aws.ToString(d.StreamARN), ":stream/"+name))

	// The same stream by ARN.
	byARN, err := e.api.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamARN: d.StreamARN})
	if e.name == "kinesalite" {
		// kinesalite predates StreamARN addressing and requires StreamName.
		t.Logf("kinesalite: DescribeStreamSummary by StreamARN: %v", err)
	} else {
		require.NoError(t, err)
		require.Equal(t, name, aws.ToString(byARN.StreamDescriptionSummary.StreamName))
	}

	shards := listAllShards(t, e, name, nil)
	require.Len(t, shards, 3)
	// Even split of [0, 2^128-1] like the service: floor(2^128/3) per shard,
	// the last takes the remainder.
	size := new(big.Int).Div(new(big.Int).Lsh(big.NewInt(1), 128), big.NewInt(3))
	next := big.NewInt(0)
	for i, sh := range shards {
		require.Equal(t, fmt.Sprintf("shardId-%012d", i), aws.ToString(sh.ShardId))
		require.Zero(t, next.Cmp(bigOf(t, sh.HashKeyRange.StartingHashKey)), "shard %d start", i)
		end := bigOf(t, sh.HashKeyRange.EndingHashKey)
		if i < 2 {
			want := new(big.Int).Sub(new(big.Int).Mul(size, big.NewInt(int64(i+1))), big.NewInt(1))
			require.Zero(t, want.Cmp(end), "shard %d end %s want %s", i, end, want)
		}
		next = new(big.Int).Add(end, big.NewInt(1))
		require.NotNil(t, sh.SequenceNumberRange.StartingSequenceNumber)
		require.Nil(t, sh.SequenceNumberRange.EndingSequenceNumber)
		require.Nil(t, sh.ParentShardId)
	}
	require.Zero(t, new(big.Int).Add(max128, big.NewInt(1)).Cmp(next))

	// Pagination: MaxResults, then NextToken alone.
	page, err := e.api.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(name), MaxResults: aws.Int32(2)})
	require.NoError(t, err)
	if e.name == "kinesalite" && len(page.Shards) == 3 {
		// kinesalite ignores MaxResults and never pages ListShards.
		t.Log("kinesalite: ListShards ignores MaxResults")
		return
	}
	require.Len(t, page.Shards, 2)
	require.NotNil(t, page.NextToken)
	_, err = e.api.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(name), NextToken: page.NextToken})
	requireErrType[*types.InvalidArgumentException](t, err)
	page2, err := e.api.ListShards(ctx, &kinesis.ListShardsInput{NextToken: page.NextToken, MaxResults: aws.Int32(2)})
	require.NoError(t, err)
	require.Len(t, page2.Shards, 1)
	require.Equal(t, "shardId-000000000002", aws.ToString(page2.Shards[0].ShardId))
	require.Nil(t, page2.NextToken)

	// ExclusiveStartShardId.
	after, err := e.api.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(name), ExclusiveStartShardId: aws.String("shardId-000000000000")})
	require.NoError(t, err)
	require.Len(t, after.Shards, 2)

	ls, err := e.api.ListStreams(ctx, &kinesis.ListStreamsInput{})
	require.NoError(t, err)
	require.Contains(t, ls.StreamNames, name)
}

func testRouting(t *testing.T, e *conformanceEnv) {
	ctx := ctxT(t)
	name := uniqueStream("route")
	e.create(t, name, 4)
	shards := listAllShards(t, e, name, nil)

	for i := 0; i < 40; i++ {
		pk := fmt.Sprintf("key-%d", i)
		out, err := e.api.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String(name), PartitionKey: aws.String(pk), Data: []byte("x")})
		require.NoError(t, err)
		require.Equal(t, shardFor(t, shards, md5Key(pk)), aws.ToString(out.ShardId), "partition key %s", pk)
	}
	// ExplicitHashKey overrides the partition key: each range boundary.
	var entries []types.PutRecordsRequestEntry
	var keys []*big.Int
	for _, sh := range shards {
		for _, k := range []*string{sh.HashKeyRange.StartingHashKey, sh.HashKeyRange.EndingHashKey} {
			entries = append(entries, types.PutRecordsRequestEntry{PartitionKey: aws.String("same"), ExplicitHashKey: k, Data: []byte("y")})
			keys = append(keys, bigOf(t, k))
		}
	}
	out, err := e.api.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(name), Records: entries})
	require.NoError(t, err)
	require.Zero(t, aws.ToInt32(out.FailedRecordCount))
	for i, r := range out.Records {
		require.Equal(t, shardFor(t, shards, keys[i]), aws.ToString(r.ShardId), "hash key %s", keys[i])
		require.Nil(t, r.ErrorCode)
	}
}

func testSequenceOrdering(t *testing.T, e *conformanceEnv) {
	ctx := ctxT(t)
	name := uniqueStream("seq")
	e.create(t, name, 2)
	res := putN(t, e, name, "k", 30, "a")
	for i := 0; i < 10; i++ {
		out, err := e.api.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String(name), PartitionKey: aws.String("k"), Data: []byte("b")})
		require.NoError(t, err)
		res = append(res, types.PutRecordsResultEntry{ShardId: out.ShardId, SequenceNumber: out.SequenceNumber})
	}
	prev := big.NewInt(-1)
	for _, r := range res {
		require.Equal(t, aws.ToString(res[0].ShardId), aws.ToString(r.ShardId))
		require.Len(t, aws.ToString(r.SequenceNumber), 56, "sequence numbers are 56 digits like the service's")
		n := bigOf(t, r.SequenceNumber)
		require.Positive(t, n.Cmp(prev), "sequence numbers strictly increase within a shard")
		prev = n
	}
	// Every record's number lies within the shard's range.
	for _, sh := range listAllShards(t, e, name, nil) {
		if aws.ToString(sh.ShardId) == aws.ToString(res[0].ShardId) {
			require.LessOrEqual(t, bigOf(t, sh.SequenceNumberRange.StartingSequenceNumber).Cmp(bigOf(t, res[0].SequenceNumber)), 0)
		}
	}
	// GetRecords returns them in the same order.
	recs, _ := readToEnd(t, e, iter(t, e, &kinesis.GetShardIteratorInput{StreamName: aws.String(name), ShardId: res[0].ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon}), 0)
	require.Len(t, recs, len(res))
	for i := range recs {
		require.Equal(t, aws.ToString(res[i].SequenceNumber), aws.ToString(recs[i].SequenceNumber))
		require.Equal(t, "k", aws.ToString(recs[i].PartitionKey))
		require.NotNil(t, recs[i].ApproximateArrivalTimestamp)
	}
}

func testIteratorTypes(t *testing.T, e *conformanceEnv) {
	ctx := ctxT(t)
	name := uniqueStream("iter")
	e.create(t, name, 1)
	shardID := aws.String("shardId-000000000000")
	base := func(typ types.ShardIteratorType) *kinesis.GetShardIteratorInput {
		return &kinesis.GetShardIteratorInput{StreamName: aws.String(name), ShardId: shardID, ShardIteratorType: typ}
	}
	latest := iter(t, e, base(types.ShardIteratorTypeLatest))
	res := putN(t, e, name, "k", 10, "a")
	if e.clk != nil {
		e.clk.Advance(time.Second)
	}
	res = append(res, putN(t, e, name, "k", 10, "b")...)

	all, _ := readToEnd(t, e, iter(t, e, base(types.ShardIteratorTypeTrimHorizon)), 0)
	require.Len(t, all, 20)

	fromLatest, _ := readToEnd(t, e, latest, 0)
	require.Equal(t, data(all), data(fromLatest), "LATEST taken before the writes sees them all")
	none, _ := readToEnd(t, e, iter(t, e, base(types.ShardIteratorTypeLatest)), 0)
	require.Empty(t, none)

	at := base(types.ShardIteratorTypeAtSequenceNumber)
	at.StartingSequenceNumber = res[5].SequenceNumber
	got, _ := readToEnd(t, e, iter(t, e, at), 0)
	require.Equal(t, data(all[5:]), data(got))

	after := base(types.ShardIteratorTypeAfterSequenceNumber)
	after.StartingSequenceNumber = res[5].SequenceNumber
	got, _ = readToEnd(t, e, iter(t, e, after), 0)
	require.Equal(t, data(all[6:]), data(got))

	// AT_TIMESTAMP returns every record that arrived at or after the time.
	ts := *all[12].ApproximateArrivalTimestamp
	atTS := base(types.ShardIteratorTypeAtTimestamp)
	atTS.Timestamp = aws.Time(ts)
	got, _ = readToEnd(t, e, iter(t, e, atTS), 0)
	var want []types.Record
	for _, r := range all {
		if !r.ApproximateArrivalTimestamp.Before(ts) {
			want = append(want, r)
		}
	}
	require.Equal(t, data(want), data(got))
	if e.clk != nil {
		require.Equal(t, data(all[10:]), data(got), "the clock moved between the batches")
	}
	atTS.Timestamp = aws.Time(ts.Add(-time.Hour))
	got, _ = readToEnd(t, e, iter(t, e, atTS), 0)
	require.Equal(t, data(all), data(got))

	// A StartingSequenceNumber with TRIM_HORIZON is refused.
	bad := base(types.ShardIteratorTypeTrimHorizon)
	bad.StartingSequenceNumber = res[0].SequenceNumber
	_, err := e.api.GetShardIterator(ctx, bad)
	if e.name == "kinesis-mock" {
		// kinesis-mock ignores a StartingSequenceNumber given with
		// TRIM_HORIZON; AWS refuses the combination.
		t.Logf("kinesis-mock: TRIM_HORIZON with a sequence number: err=%v", err)
	} else {
		requireErrType[*types.InvalidArgumentException](t, err)
	}
	bad = base(types.ShardIteratorTypeAtSequenceNumber)
	_, err = e.api.GetShardIterator(ctx, bad)
	if e.name == "kinesis-mock" {
		// kinesis-mock accepts AT_SEQUENCE_NUMBER without a
		// StartingSequenceNumber; AWS refuses it.
		t.Logf("kinesis-mock: AT_SEQUENCE_NUMBER without a sequence number: err=%v", err)
	} else {
		requireErrType[*types.InvalidArgumentException](t, err)
	}
}

func testGetRecordsPaging(t *testing.T, e *conformanceEnv) {
	ctx := ctxT(t)
	name := uniqueStream("page")
	e.create(t, name, 1)
	putN(t, e, name, "k", 25, "r")
	if e.clk != nil {
		e.clk.Advance(3 * time.Second)
	}
	it := iter(t, e, &kinesis.GetShardIteratorInput{StreamName: aws.String(name), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	var sizes []int
	var got []types.Record
	for len(got) < 25 {
		out, err := e.api.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it, Limit: aws.Int32(10)})
		require.NoError(t, err)
		require.NotNil(t, out.NextShardIterator, "an open shard always has a next iterator")
		require.NotNil(t, out.MillisBehindLatest)
		if e.clk != nil && len(got) == 0 {
			require.GreaterOrEqual(t, *out.MillisBehindLatest, int64(3000), "behind by the clock advance")
		}
		require.LessOrEqual(t, len(out.Records), 10)
		if len(out.Records) > 0 {
			sizes = append(sizes, len(out.Records))
		}
		got = append(got, out.Records...)
		it = out.NextShardIterator
	}
	if e.isFake() {
		require.Equal(t, []int{10, 10, 5}, sizes)
	}
	for i, r := range got {
		require.Equal(t, fmt.Sprintf("r-%d", i), string(r.Data))
	}
	out, err := e.api.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it})
	require.NoError(t, err)
	require.Empty(t, out.Records)
	require.Equal(t, int64(0), aws.ToInt64(out.MillisBehindLatest), "caught up")
	require.NotNil(t, out.NextShardIterator)

	_, err = e.api.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it, Limit: aws.Int32(10001)})
	requireValidation(t, e, err)
}

func testIteratorExpiry(t *testing.T, e *conformanceEnv) {
	if !e.isFake() {
		t.Skip("iterator expiry needs the injected clock; emulators would take 5 real minutes")
	}
	ctx := ctxT(t)
	name := uniqueStream("exp")
	e.create(t, name, 1)
	in := &kinesis.GetShardIteratorInput{StreamName: aws.String(name), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeTrimHorizon}
	it := iter(t, e, in)
	e.clk.Advance(5 * time.Minute)
	out, err := e.api.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it})
	require.NoError(t, err, "valid for exactly 5 minutes")
	e.clk.Advance(time.Millisecond)
	_, err = e.api.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it})
	exp := requireErrType[*types.ExpiredIteratorException](t, err)
	require.Contains(t, exp.ErrorMessage(), "Iterator expired")
	// The next iterator was issued by the successful call and is fresh.
	_, err = e.api.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: out.NextShardIterator})
	require.NoError(t, err)
}

func testResharding(t *testing.T, e *conformanceEnv) {
	ctx := ctxT(t)
	name := uniqueStream("reshard")
	e.create(t, name, 2)
	before := listAllShards(t, e, name, nil)
	// Records in both shards before the reshard.
	pre := map[string][]string{}
	for i := 0; i < 20; i++ {
		pk := fmt.Sprintf("pre-%d", i)
		out, err := e.api.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String(name), PartitionKey: aws.String(pk), Data: []byte(pk)})
		require.NoError(t, err)
		pre[aws.ToString(out.ShardId)] = append(pre[aws.ToString(out.ShardId)], pk)
	}
	preSeq := map[string]*big.Int{}
	for _, sh := range before {
		preSeq[aws.ToString(sh.ShardId)] = big.NewInt(0)
	}

	// Split shard 0 at the middle of its range.
	start0, end0 := bigOf(t, before[0].HashKeyRange.StartingHashKey), bigOf(t, before[0].HashKeyRange.EndingHashKey)
	mid := new(big.Int).Rsh(new(big.Int).Add(start0, end0), 1)
	_, err := e.api.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String(name), ShardToSplit: aws.String("shardId-000000000000"), NewStartingHashKey: aws.String(mid.String())})
	require.NoError(t, err)
	waitActive(t, e, name)
	// Merge the upper child (shard 3) with shard 1: adjacent ranges.
	_, err = e.api.MergeShards(ctx, &kinesis.MergeShardsInput{StreamName: aws.String(name), ShardToMerge: aws.String("shardId-000000000003"), AdjacentShardToMerge: aws.String("shardId-000000000001")})
	require.NoError(t, err)
	waitActive(t, e, name)

	shards := listAllShards(t, e, name, nil)
	require.Len(t, shards, 5)
	byID := map[string]types.Shard{}
	for _, sh := range shards {
		byID[aws.ToString(sh.ShardId)] = sh
	}
	for _, id := range []string{"shardId-000000000000", "shardId-000000000001", "shardId-000000000003"} {
		require.NotNil(t, byID[id].SequenceNumberRange.EndingSequenceNumber, "%s is closed", id)
	}
	s2, s3, s4 := byID["shardId-000000000002"], byID["shardId-000000000003"], byID["shardId-000000000004"]
	require.Equal(t, "shardId-000000000000", aws.ToString(s2.ParentShardId))
	require.Equal(t, "shardId-000000000000", aws.ToString(s3.ParentShardId))
	require.Nil(t, s2.AdjacentParentShardId)
	require.Equal(t, "shardId-000000000003", aws.ToString(s4.ParentShardId))
	require.Equal(t, "shardId-000000000001", aws.ToString(s4.AdjacentParentShardId))
	require.Zero(t, start0.Cmp(bigOf(t, s2.HashKeyRange.StartingHashKey)))
	require.Zero(t, new(big.Int).Sub(mid, big.NewInt(1)).Cmp(bigOf(t, s2.HashKeyRange.EndingHashKey)))
	require.Zero(t, mid.Cmp(bigOf(t, s3.HashKeyRange.StartingHashKey)))
	require.Zero(t, mid.Cmp(bigOf(t, s4.HashKeyRange.StartingHashKey)))
	require.Zero(t, max128.Cmp(bigOf(t, s4.HashKeyRange.EndingHashKey)))
	require.Nil(t, s2.SequenceNumberRange.EndingSequenceNumber)
	require.Nil(t, s4.SequenceNumberRange.EndingSequenceNumber)

	// New records go to the children only.
	post := map[string][]string{}
	var maxParentSeq *big.Int
	for i := 0; i < 20; i++ {
		pk := fmt.Sprintf("post-%d", i)
		out, err := e.api.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String(name), PartitionKey: aws.String(pk), Data: []byte(pk)})
		require.NoError(t, err)
		id := aws.ToString(out.ShardId)
		require.Contains(t, []string{"shardId-000000000002", "shardId-000000000004"}, id)
		require.Equal(t, shardFor(t, shards, md5Key(pk)), id)
		post[id] = append(post[id], pk)
	}

	// Read each parent to its end: its records, then no next iterator.
	for _, parent := range []string{"shardId-000000000000", "shardId-000000000001"} {
		recs, last := readToEnd(t, e, iter(t, e, &kinesis.GetShardIteratorInput{StreamName: aws.String(name), ShardId: aws.String(parent), ShardIteratorType: types.ShardIteratorTypeTrimHorizon}), 3)
		require.Equal(t, pre[parent], data(recs), parent)
		require.Nil(t, last.NextShardIterator, "a closed shard read to its end has no next iterator")
		for _, r := range recs {
			if n := bigOf(t, r.SequenceNumber); maxParentSeq == nil || n.Cmp(maxParentSeq) > 0 {
				maxParentSeq = n
			}
		}
		if len(last.ChildShards) == 0 && e.name == "kinesalite" {
			// kinesalite does not return ChildShards (added to the API after it).
			t.Logf("kinesalite: no ChildShards at the end of %s", parent)
			continue
		}
		var kids []string
		for _, c := range last.ChildShards {
			kids = append(kids, aws.ToString(c.ShardId))
			require.Contains(t, c.ParentShards, parent)
			require.NotNil(t, c.HashKeyRange)
		}
		if parent == "shardId-000000000000" {
			require.ElementsMatch(t, []string{"shardId-000000000002", "shardId-000000000003"}, kids)
		} else {
			require.Equal(t, []string{"shardId-000000000004"}, kids)
			require.ElementsMatch(t, []string{"shardId-000000000003", "shardId-000000000001"}, last.ChildShards[0].ParentShards)
		}
	}
	// The intermediate shard 3 was closed before any write reached it.
	recs, last := readToEnd(t, e, iter(t, e, &kinesis.GetShardIteratorInput{StreamName: aws.String(name), ShardId: aws.String("shardId-000000000003"), ShardIteratorType: types.ShardIteratorTypeTrimHorizon}), 0)
	require.Empty(t, recs)
	require.Nil(t, last.NextShardIterator)

	// Children from TRIM_HORIZON hold exactly the new records, numbered
	// above every parent record.
	for _, child := range []string{"shardId-000000000002", "shardId-000000000004"} {
		recs, last := readToEnd(t, e, iter(t, e, &kinesis.GetShardIteratorInput{StreamName: aws.String(name), ShardId: aws.String(child), ShardIteratorType: types.ShardIteratorTypeTrimHorizon}), 0)
		require.Equal(t, post[child], data(recs), child)
		require.NotNil(t, last.NextShardIterator, "an open shard never ends")
		for _, r := range recs {
			require.Positive(t, bigOf(t, r.SequenceNumber).Cmp(maxParentSeq))
		}
	}

	// ShardFilter.
	ids := func(ss []types.Shard) []string {
		var out []string
		for _, s := range ss {
			out = append(out, aws.ToString(s.ShardId))
		}
		return out
	}
	latest, err := e.api.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(name), ShardFilter: &types.ShardFilter{Type: types.ShardFilterTypeAtLatest}})
	require.NoError(t, err)
	if e.name == "kinesalite" && len(latest.Shards) == 5 {
		// kinesalite ignores ShardFilter (it predates the parameter).
		t.Logf("kinesalite: ShardFilter ignored")
		return
	}
	require.Equal(t, []string{"shardId-000000000002", "shardId-000000000004"}, ids(latest.Shards))
	th := listAllShards(t, e, name, &types.ShardFilter{Type: types.ShardFilterTypeAtTrimHorizon})
	if e.name == "kinesis-mock" {
		// kinesis-mock returns every shard for AT_TRIM_HORIZON; AWS
		// returns the shards open at the trim horizon.
		t.Logf("kinesis-mock: AT_TRIM_HORIZON returned %v", ids(th))
	} else {
		require.Equal(t, []string{"shardId-000000000000", "shardId-000000000001"}, ids(th))
	}
	fth := listAllShards(t, e, name, &types.ShardFilter{Type: types.ShardFilterTypeFromTrimHorizon})
	require.Len(t, fth, 5)
	as := listAllShards(t, e, name, &types.ShardFilter{Type: types.ShardFilterTypeAfterShardId, ShardId: aws.String("shardId-000000000002")})
	require.Equal(t, []string{"shardId-000000000003", "shardId-000000000004"}, ids(as))
}

func testUpdateShardCount(t *testing.T, e *conformanceEnv) {
	if e.name == "kinesalite" {
		t.Skip("kinesalite does not implement UpdateShardCount")
	}
	ctx := ctxT(t)
	name := uniqueStream("usc")
	e.create(t, name, 2)
	putN(t, e, name, "a", 5, "a")
	putN(t, e, name, "b", 5, "b")
	for _, target := range []int32{3, 6, 3} {
		out, err := e.api.UpdateShardCount(ctx, &kinesis.UpdateShardCountInput{StreamName: aws.String(name), TargetShardCount: aws.Int32(target), ScalingType: types.ScalingTypeUniformScaling})
		require.NoError(t, err, "to %d", target)
		require.Equal(t, target, aws.ToInt32(out.TargetShardCount))
		waitActive(t, e, name)
		var open []types.Shard
		for _, sh := range listAllShards(t, e, name, nil) {
			if sh.SequenceNumberRange.EndingSequenceNumber == nil {
				open = append(open, sh)
			}
		}
		require.Len(t, open, int(target))
		// Uniform: every open range has the same size (to within a few keys).
		// kinesis-mock does not scale uniformly (2 -> 3 leaves a half and
		// two quarters); AWS documents UNIFORM_SCALING as equal shards.
		uniform := e.name != "kinesis-mock"
		covered := big.NewInt(0)
		want := new(big.Int).Div(new(big.Int).Lsh(big.NewInt(1), 128), big.NewInt(int64(target)))
		for _, sh := range open {
			size := new(big.Int).Sub(bigOf(t, sh.HashKeyRange.EndingHashKey), bigOf(t, sh.HashKeyRange.StartingHashKey))
			size.Add(size, big.NewInt(1))
			diff := new(big.Int).Sub(size, want)
			if uniform {
				require.LessOrEqual(t, diff.CmpAbs(big.NewInt(int64(target))), 0, "range size %s want %s", size, want)
			}
			covered.Add(covered, size)
		}
		require.Zero(t, new(big.Int).Lsh(big.NewInt(1), 128).Cmp(covered), "open shards cover the key space")
	}
	_, err := e.api.UpdateShardCount(ctx, &kinesis.UpdateShardCountInput{StreamName: aws.String(name), TargetShardCount: aws.Int32(7), ScalingType: types.ScalingTypeUniformScaling})
	require.Error(t, err, "more than double")

	// Every record is still readable by following the lineage from the
	// original shards, and each closed shard ends with a nil iterator.
	total := 0
	for _, sh := range listAllShards(t, e, name, nil) {
		recs, last := readToEnd(t, e, iter(t, e, &kinesis.GetShardIteratorInput{StreamName: aws.String(name), ShardId: sh.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon}), 0)
		total += len(recs)
		if sh.SequenceNumberRange.EndingSequenceNumber != nil {
			require.Nil(t, last.NextShardIterator)
		}
	}
	require.Equal(t, 10, total)
}

func testValidationErrors(t *testing.T, e *conformanceEnv) {
	ctx := ctxT(t)
	name := uniqueStream("val")
	e.create(t, name, 3)
	missing := aws.String(uniqueStream("missing"))
	s := aws.String(name)

	_, err := e.api.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: missing})
	requireErrType[*types.ResourceNotFoundException](t, err)
	_, err = e.api.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: missing, PartitionKey: aws.String("k"), Data: []byte("x")})
	requireErrType[*types.ResourceNotFoundException](t, err)
	_, err = e.api.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: missing, ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeLatest})
	requireErrType[*types.ResourceNotFoundException](t, err)
	_, err = e.api.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: s, ShardCount: aws.Int32(1)})
	requireErrType[*types.ResourceInUseException](t, err)

	_, err = e.api.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: s, PartitionKey: aws.String(""), Data: []byte("x")})
	requireValidation(t, e, err)
	_, err = e.api.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: s, PartitionKey: aws.String(strings.Repeat("k", 257)), Data: []byte("x")})
	requireValidation(t, e, err)
	_, err = e.api.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: s, PartitionKey: aws.String(strings.Repeat("k", 256)), Data: []byte("x")})
	require.NoError(t, err, "256 characters is the limit")
	_, err = e.api.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: s, PartitionKey: aws.String("k"), ExplicitHashKey: aws.String("12a"), Data: []byte("x")})
	if e.name == "kinesis-mock" {
		// kinesis-mock fails a non-decimal ExplicitHashKey with HTTP 500
		// instead of a ValidationException.
		require.Error(t, err)
	} else {
		requireValidation(t, e, err)
	}
	_, err = e.api.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: s, PartitionKey: aws.String("k"), ExplicitHashKey: aws.String(new(big.Int).Add(max128, big.NewInt(1)).String()), Data: []byte("x")})
	requireErrType[*types.InvalidArgumentException](t, err)
	_, err = e.api.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: s, PartitionKey: aws.String("k"), Data: make([]byte, 1<<20+1)})
	if e.name == "kinesis-mock" {
		// kinesis-mock fails an oversized record with HTTP 500 (which the
		// SDK retries) instead of a ValidationException.
		require.Error(t, err)
	} else {
		requireValidation(t, e, err)
	}

	many := make([]types.PutRecordsRequestEntry, 501)
	for i := range many {
		many[i] = types.PutRecordsRequestEntry{PartitionKey: aws.String("k"), Data: []byte("x")}
	}
	_, err = e.api.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: s, Records: many})
	if e.name == "kinesis-mock" {
		// kinesis-mock accepts more than 500 records in one PutRecords.
		t.Logf("kinesis-mock: PutRecords of 501 records: err=%v", err)
	} else {
		requireValidation(t, e, err)
	}
	big6 := make([]types.PutRecordsRequestEntry, 6)
	for i := range big6 {
		big6[i] = types.PutRecordsRequestEntry{PartitionKey: aws.String("k"), Data: make([]byte, 1<<20-10)}
	}
	_, err = e.api.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: s, Records: big6})
	switch e.name {
	case "kinesalite":
		// kinesalite's HTTP layer refuses the body with 413 before the
		// service's InvalidArgumentException ("Records size exceeds 5 MB").
		require.Error(t, err)
	case "kinesis-mock":
		// kinesis-mock does not enforce the 5 MiB PutRecords limit.
		t.Logf("kinesis-mock: PutRecords over 5 MiB: err=%v", err)
	default:
		requireErrType[*types.InvalidArgumentException](t, err)
	}

	for _, bad := range []string{"AAAAAAAAAAGkvdGsyyspgCvOpgZ0bgn7hYsc1Z/o94T2OQ9r6yNO8Q==", "not-an-iterator"} {
		_, err = e.api.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: aws.String(bad)})
		if e.name == "kinesis-mock" {
			// kinesis-mock fails on a malformed iterator with HTTP 500
			// instead of InvalidArgumentException.
			require.Error(t, err)
			continue
		}
		requireErrType[*types.InvalidArgumentException](t, err)
	}
	_, err = e.api.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: s, ShardId: aws.String("shardId-000000000099"), ShardIteratorType: types.ShardIteratorTypeLatest})
	requireErrType[*types.ResourceNotFoundException](t, err)

	shards := listAllShards(t, e, name, nil)
	_, err = e.api.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: s, ShardToSplit: aws.String("shardId-000000000000"), NewStartingHashKey: shards[1].HashKeyRange.StartingHashKey})
	requireErrType[*types.InvalidArgumentException](t, err)
	_, err = e.api.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: s, ShardToSplit: aws.String("shardId-000000000001"), NewStartingHashKey: aws.String("0")})
	requireErrType[*types.InvalidArgumentException](t, err)
	_, err = e.api.MergeShards(ctx, &kinesis.MergeShardsInput{StreamName: s, ShardToMerge: aws.String("shardId-000000000000"), AdjacentShardToMerge: aws.String("shardId-000000000002")})
	requireErrType[*types.InvalidArgumentException](t, err)
}

func testConsumers(t *testing.T, e *conformanceEnv) {
	if e.name == "kinesalite" {
		t.Skip("kinesalite does not implement enhanced fan-out consumers")
	}
	ctx := ctxT(t)
	name := uniqueStream("efo")
	e.create(t, name, 1)
	sum, err := e.api.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
	require.NoError(t, err)
	arn := sum.StreamDescriptionSummary.StreamARN

	reg, err := e.api.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: arn, ConsumerName: aws.String("app")})
	require.NoError(t, err)
	carn := aws.ToString(reg.Consumer.ConsumerARN)
	require.True(t, strings.HasPrefix(carn, aws.ToString(arn)+"/consumer/app:"), carn)
	_, err = e.api.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: arn, ConsumerName: aws.String("app")})
	requireErrType[*types.ResourceInUseException](t, err)

	// The service takes a few seconds in CREATING; poll.
	for {
		d, err := e.api.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{ConsumerARN: aws.String(carn)})
		require.NoError(t, err)
		require.Equal(t, "app", aws.ToString(d.ConsumerDescription.ConsumerName))
		require.Equal(t, aws.ToString(arn), aws.ToString(d.ConsumerDescription.StreamARN))
		if d.ConsumerDescription.ConsumerStatus == types.ConsumerStatusActive {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("consumer never became ACTIVE")
		case <-time.After(50 * time.Millisecond): // emulator polling only
		}
	}
	d, err := e.api.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{StreamARN: arn, ConsumerName: aws.String("app")})
	require.NoError(t, err)
	require.Equal(t, carn, aws.ToString(d.ConsumerDescription.ConsumerARN))

	list, err := e.api.ListStreamConsumers(ctx, &kinesis.ListStreamConsumersInput{StreamARN: arn})
	require.NoError(t, err)
	require.Len(t, list.Consumers, 1)
	require.Equal(t, carn, aws.ToString(list.Consumers[0].ConsumerARN))

	_, err = e.api.DeregisterStreamConsumer(ctx, &kinesis.DeregisterStreamConsumerInput{ConsumerARN: aws.String(carn)})
	require.NoError(t, err)
	for {
		_, err = e.api.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{ConsumerARN: aws.String(carn)})
		if err != nil {
			requireErrType[*types.ResourceNotFoundException](t, err)
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("consumer never went away")
		case <-time.After(50 * time.Millisecond): // emulator polling only (DELETING)
		}
	}
}
