package kinesistest

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/schemas"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go/transport/http/protocol/awsjson"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/clock"
)

const shard0 = "shardId-000000000000"

// ownCodec gives one SubscribeToShard call its own protocol instance. The
// SDK's client shares one event-stream codec between all streams of a client
// and its decoder state is unsynchronized (aws/smithy-go#714, unfixed in the
// pinned v1.28.8): concurrent subscriptions on one client are a data race.
// Code that subscribes to several shards through one client must pass this
// option (or an equivalent) on every SubscribeToShard call.
func ownCodec(o *kinesis.Options) { o.Protocol = awsjson.New11(schemas.Kinesis_20131202) }

type fanoutFixture struct {
	s        *Server
	c        *kinesis.Client
	clk      *clock.Fake
	stream   string
	consumer string
}

func newFanout(t *testing.T, opts Options, shards int32) *fanoutFixture {
	t.Helper()
	s, c, clk := newWireServer(t, opts)
	arn := createStream(t, c, "fanout", shards)
	out, err := c.RegisterStreamConsumer(context.Background(), &kinesis.RegisterStreamConsumerInput{
		StreamARN: aws.String(arn), ConsumerName: aws.String("efo"),
	})
	require.NoError(t, err)
	return &fanoutFixture{s: s, c: c, clk: clk, stream: arn, consumer: aws.ToString(out.Consumer.ConsumerARN)}
}

func (f *fanoutFixture) subscribe(t *testing.T, ctx context.Context, shardID string, pos types.StartingPosition) *kinesis.SubscribeToShardEventStream {
	t.Helper()
	out, err := f.c.SubscribeToShard(ctx, &kinesis.SubscribeToShardInput{
		ConsumerARN: aws.String(f.consumer), ShardId: aws.String(shardID), StartingPosition: &pos,
	}, ownCodec)
	require.NoError(t, err)
	es := out.GetStream()
	t.Cleanup(func() { _ = es.Close() })
	return es
}

// put writes records with the given payloads to the stream, all routed to
// shard 0 when the stream has one shard.
func (f *fanoutFixture) put(t *testing.T, payloads ...[]byte) []string {
	t.Helper()
	entries := make([]types.PutRecordsRequestEntry, len(payloads))
	for i, p := range payloads {
		entries[i] = types.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprint("pk-", i)), Data: p}
	}
	var seqs []string
	for len(entries) > 0 {
		n := min(len(entries), 3) // several calls, several arrival batches
		out, err := f.c.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamARN: aws.String(f.stream), Records: entries[:n]})
		require.NoError(t, err)
		require.Zero(t, aws.ToInt32(out.FailedRecordCount))
		for _, r := range out.Records {
			seqs = append(seqs, aws.ToString(r.SequenceNumber))
		}
		entries = entries[n:]
	}
	return seqs
}

func numbered(n int, prefix string) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = []byte(fmt.Sprintf("%s-%03d", prefix, i))
	}
	return out
}

// nextEvent returns the next SubscribeToShardEvent, or nil when the stream
// ended.
func nextEvent(t *testing.T, es *kinesis.SubscribeToShardEventStream) *types.SubscribeToShardEvent {
	t.Helper()
	ev, ok := <-es.Events() // no event at all is reported by -timeout
	if !ok {
		return nil
	}
	m, isEvent := ev.(*types.SubscribeToShardEventStreamMemberSubscribeToShardEvent)
	require.True(t, isEvent, "unexpected event %T", ev)
	return &m.Value
}

// collect reads events until n records arrived, checking every event's
// continuation against its last record.
func collect(t *testing.T, es *kinesis.SubscribeToShardEventStream, n int) (recs []types.Record, events int, last *types.SubscribeToShardEvent) {
	t.Helper()
	for len(recs) < n {
		ev := nextEvent(t, es)
		require.NotNil(t, ev, "stream ended after %d of %d records: %v", len(recs), n, es.Err())
		require.NotNil(t, ev.ContinuationSequenceNumber)
		require.NotNil(t, ev.MillisBehindLatest)
		if len(ev.Records) > 0 {
			require.Equal(t, aws.ToString(ev.Records[len(ev.Records)-1].SequenceNumber), aws.ToString(ev.ContinuationSequenceNumber))
			events++
		}
		recs = append(recs, ev.Records...)
		last = ev
	}
	require.Len(t, recs, n, "more records than written")
	return recs, events, last
}

func requireData(t *testing.T, want [][]byte, got []types.Record) {
	t.Helper()
	require.Len(t, got, len(want))
	for i := range want {
		require.Equal(t, string(want[i]), string(got[i].Data), "record %d", i)
	}
}

func TestSubscribeTrimHorizonDeliversEverythingInOrder(t *testing.T) {
	f := newFanout(t, Options{}, 1)
	ctx := context.Background()

	// A backlog bigger than one event (1 MiB) goes out as several events.
	big := make([][]byte, 5)
	for i := range big {
		big[i] = bytes.Repeat([]byte{byte('a' + i)}, 600<<10)
	}
	small := numbered(20, "old")
	want := append(append([][]byte{}, small...), big...)
	seqs := f.put(t, want...)

	es := f.subscribe(t, ctx, shard0, types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon})
	got, events, last := collect(t, es, len(want))
	requireData(t, want, got)
	require.GreaterOrEqual(t, events, 3, "the backlog must be split over several events")
	for i, r := range got {
		require.Equal(t, seqs[i], aws.ToString(r.SequenceNumber))
		require.Equal(t, fmt.Sprint("pk-", i), aws.ToString(r.PartitionKey), "record %d", i)
		require.NotNil(t, r.ApproximateArrivalTimestamp)
	}
	require.Equal(t, int64(0), aws.ToInt64(last.MillisBehindLatest))

	// Records written while subscribed are pushed as they arrive.
	live := numbered(7, "live")
	f.put(t, live...)
	got, _, _ = collect(t, es, len(live))
	requireData(t, live, got)
	require.NoError(t, es.Err())
}

func TestSubscribeLatestSeesOnlyNewRecords(t *testing.T) {
	f := newFanout(t, Options{}, 1)
	f.put(t, numbered(5, "before")...)
	es := f.subscribe(t, context.Background(), shard0, types.StartingPosition{Type: types.ShardIteratorTypeLatest})

	first := nextEvent(t, es) // sent right after subscribing, even when empty
	require.NotNil(t, first)
	require.Empty(t, first.Records)
	require.NotNil(t, first.ContinuationSequenceNumber)

	after := numbered(3, "after")
	f.put(t, after...)
	got, _, _ := collect(t, es, len(after))
	requireData(t, after, got)
}

func TestSubscribeResumesFromContinuation(t *testing.T) {
	f := newFanout(t, Options{}, 1)
	ctx := context.Background()
	first := numbered(6, "first")
	seqs := f.put(t, first...)

	es := f.subscribe(t, ctx, shard0, types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon})
	_, _, last := collect(t, es, len(first))
	cont := aws.ToString(last.ContinuationSequenceNumber)
	require.NoError(t, es.Close())

	second := numbered(4, "second")
	f.put(t, second...)

	// AFTER the continuation: exactly the records not yet seen.
	es = f.subscribe(t, ctx, shard0, types.StartingPosition{Type: types.ShardIteratorTypeAfterSequenceNumber, SequenceNumber: aws.String(cont)})
	got, _, _ := collect(t, es, len(second))
	requireData(t, second, got)
	require.NoError(t, es.Close())

	// AT a sequence number includes that record.
	es = f.subscribe(t, ctx, shard0, types.StartingPosition{Type: types.ShardIteratorTypeAtSequenceNumber, SequenceNumber: aws.String(seqs[4])})
	got, _, _ = collect(t, es, 2+len(second))
	requireData(t, append(first[4:], second...), got)
	require.NoError(t, es.Close())

	// An empty shard's continuation resumes from its start.
	g := newFanout(t, Options{}, 1)
	es = g.subscribe(t, ctx, shard0, types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon})
	ev := nextEvent(t, es)
	require.Empty(t, ev.Records)
	require.NoError(t, es.Close())
	g.put(t, numbered(2, "x")...)
	es = g.subscribe(t, ctx, shard0, types.StartingPosition{Type: types.ShardIteratorTypeAfterSequenceNumber, SequenceNumber: ev.ContinuationSequenceNumber})
	got, _, _ = collect(t, es, 2)
	requireData(t, numbered(2, "x"), got)
}

func TestSubscribeAtTimestamp(t *testing.T) {
	f := newFanout(t, Options{}, 1)
	f.put(t, numbered(3, "early")...)
	f.clk.Advance(time.Minute)
	mark := f.clk.Now()
	late := numbered(3, "late")
	f.put(t, late...)
	es := f.subscribe(t, context.Background(), shard0, types.StartingPosition{Type: types.ShardIteratorTypeAtTimestamp, Timestamp: aws.Time(mark)})
	got, _, _ := collect(t, es, len(late))
	requireData(t, late, got)
}

func TestSubscribeEndsClosedShardWithChildShards(t *testing.T) {
	f := newFanout(t, Options{}, 1)
	ctx := context.Background()
	want := numbered(4, "parent")
	f.put(t, want...)
	_, err := f.c.SplitShard(ctx, &kinesis.SplitShardInput{
		StreamARN: aws.String(f.stream), ShardToSplit: aws.String(shard0),
		NewStartingHashKey: aws.String("170141183460469231731687303715884105728"),
	})
	require.NoError(t, err)

	es := f.subscribe(t, ctx, shard0, types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon})
	got, _, _ := collect(t, es, len(want))
	requireData(t, want, got)

	end := nextEvent(t, es)
	require.NotNil(t, end)
	require.Nil(t, end.ContinuationSequenceNumber, "the shard-end event has no continuation")
	require.Empty(t, end.Records)
	require.Len(t, end.ChildShards, 2)
	for i, child := range end.ChildShards {
		require.Equal(t, fmt.Sprintf("shardId-%012d", i+1), aws.ToString(child.ShardId))
		require.Equal(t, []string{shard0}, child.ParentShards)
		require.NotNil(t, child.HashKeyRange)
	}
	require.Nil(t, nextEvent(t, es), "the stream ends after the shard-end event")
	require.NoError(t, es.Err())
}

func TestSubscribeExpiresAfterFiveMinutes(t *testing.T) {
	f := newFanout(t, Options{}, 1)
	es := f.subscribe(t, context.Background(), shard0, types.StartingPosition{Type: types.ShardIteratorTypeLatest})
	require.NotNil(t, nextEvent(t, es))

	// Idle, the subscription sends a heartbeat every 5 seconds.
	f.clk.BlockUntil(1)
	f.clk.Advance(heartbeatInterval)
	hb := nextEvent(t, es)
	require.NotNil(t, hb)
	require.Empty(t, hb.Records)
	require.NotNil(t, hb.ContinuationSequenceNumber)

	f.clk.BlockUntil(1)
	f.clk.Advance(subscriptionLifetime - heartbeatInterval - time.Second)
	hb = nextEvent(t, es)
	require.NotNil(t, hb, "ended before 5 minutes")
	require.Empty(t, hb.Records)

	f.clk.BlockUntil(1)
	f.clk.Advance(time.Second)
	require.Nil(t, nextEvent(t, es), "the stream ends after 5 minutes")
	require.NoError(t, es.Err())
}

func TestSubscribeErrors(t *testing.T) {
	f := newFanout(t, Options{}, 1)
	ctx := context.Background()
	seqs := f.put(t, numbered(1, "r")...)
	sub := func(consumer, shardID string, pos types.StartingPosition) error {
		out, err := f.c.SubscribeToShard(ctx, &kinesis.SubscribeToShardInput{
			ConsumerARN: aws.String(consumer), ShardId: aws.String(shardID), StartingPosition: &pos,
		}, ownCodec)
		if err == nil {
			_ = out.GetStream().Close()
		}
		return err
	}
	trim := types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon}

	var notFound *types.ResourceNotFoundException
	require.ErrorAs(t, sub(f.consumer+"x", shard0, trim), &notFound)
	require.ErrorAs(t, sub(f.consumer, "shardId-000000000009", trim), &notFound)

	var invalid *types.InvalidArgumentException
	other := newFanout(t, Options{}, 1)
	otherSeq := other.put(t, []byte("o"))
	require.ErrorAs(t, sub(f.consumer, shard0, types.StartingPosition{
		Type: types.ShardIteratorTypeAfterSequenceNumber, SequenceNumber: aws.String(otherSeq[0] + "0"),
	}), &invalid)
	require.ErrorAs(t, sub(f.consumer, shard0, types.StartingPosition{Type: types.ShardIteratorTypeAtSequenceNumber}), &invalid)
	require.NoError(t, sub(f.consumer, shard0, types.StartingPosition{Type: types.ShardIteratorTypeAtSequenceNumber, SequenceNumber: aws.String(seqs[0])}))

	f.s.FailNext(OpSubscribeToShard, 1, nil)
	var internal *types.InternalFailureException
	require.ErrorAs(t, sub(f.consumer, shard0, trim), &internal)
}

func TestSubscribeOneAtATimePerConsumerAndShard(t *testing.T) {
	f := newFanout(t, Options{}, 2)
	ctx := context.Background()
	trim := types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon}
	old := f.subscribe(t, ctx, shard0, trim)
	require.NotNil(t, nextEvent(t, old))

	// Within 5 seconds a second subscription is refused...
	_, err := f.c.SubscribeToShard(ctx, &kinesis.SubscribeToShardInput{
		ConsumerARN: aws.String(f.consumer), ShardId: aws.String(shard0), StartingPosition: &trim,
	}, ownCodec)
	var inUse *types.ResourceInUseException
	require.ErrorAs(t, err, &inUse)
	// ...but another shard is independent.
	other := f.subscribe(t, ctx, "shardId-000000000001", trim)
	require.NotNil(t, nextEvent(t, other))

	// After 5 seconds the new call takes over and the old stream fails.
	f.clk.Advance(subscriptionTakeover)
	newer := f.subscribe(t, ctx, shard0, trim)
	require.NotNil(t, nextEvent(t, newer))
	for ev := nextEvent(t, old); ev != nil; ev = nextEvent(t, old) {
		require.Empty(t, ev.Records) // heartbeats due after the advance
	}
	require.ErrorAs(t, old.Err(), &inUse)
}

func TestSubscribeEndsWhenConsumerDeregistered(t *testing.T) {
	f := newFanout(t, Options{}, 1)
	ctx := context.Background()
	es := f.subscribe(t, ctx, shard0, types.StartingPosition{Type: types.ShardIteratorTypeLatest})
	require.NotNil(t, nextEvent(t, es))
	_, err := f.c.DeregisterStreamConsumer(ctx, &kinesis.DeregisterStreamConsumerInput{ConsumerARN: aws.String(f.consumer)})
	require.NoError(t, err)
	require.Nil(t, nextEvent(t, es))
	var notFound *types.ResourceNotFoundException
	require.ErrorAs(t, es.Err(), &notFound)
}

func TestSubscribeRateLimit(t *testing.T) {
	f := newFanout(t, Options{Limits: true}, 1)

	// 6 MiB backlog written over 6 seconds (the write limit is 1 MiB/s).
	var want [][]byte
	for i := 0; i < 12; i++ {
		p := bytes.Repeat([]byte{byte(i)}, 512<<10-16)
		want = append(want, p)
		f.put(t, p)
		if i%2 == 1 {
			f.clk.Advance(time.Second)
		}
	}
	readStart := f.clk.Now()

	es := f.subscribe(t, context.Background(), shard0, types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon})
	events := make(chan *types.SubscribeToShardEvent, 64)
	go func() {
		defer close(events)
		for ev := range es.Events() {
			if m, ok := ev.(*types.SubscribeToShardEventStreamMemberSubscribeToShardEvent); ok {
				events <- &m.Value
			}
		}
	}()
	var got []types.Record
	var bytesSeen int
	for len(got) < len(want) {
		select {
		case ev := <-events:
			require.NotNil(t, ev)
			for _, r := range ev.Records {
				bytesSeen += len(r.Data) + len(aws.ToString(r.PartitionKey))
			}
			got = append(got, ev.Records...)
			// Never more than the 2 MiB burst plus 2 MiB/s since reading began.
			elapsed := f.clk.Now().Sub(readStart).Seconds()
			require.LessOrEqual(t, float64(bytesSeen), float64(fanoutBytesPerSec)*(1+elapsed)+maxEventBytes)
		default:
			f.clk.BlockUntil(1) // the subscription is waiting: let time pass
			f.clk.Advance(250 * time.Millisecond)
		}
	}
	requireData(t, want, got)
	// 6 MiB at 2 MiB/s after a 2 MiB burst needs at least 1.5 s.
	require.GreaterOrEqual(t, f.clk.Now().Sub(readStart), 1500*time.Millisecond)
	_ = es.Close()
	for range events {
	}

	// Subscribing twice within a second is throttled.
	trim := types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon}
	in := &kinesis.SubscribeToShardInput{ConsumerARN: aws.String(f.consumer), ShardId: aws.String(shard0), StartingPosition: &trim}
	out, err := f.c.SubscribeToShard(context.Background(), in, ownCodec)
	require.NoError(t, err)
	require.NoError(t, out.GetStream().Close())
	_, err = f.c.SubscribeToShard(context.Background(), in, ownCodec)
	var limit *types.LimitExceededException
	require.ErrorAs(t, err, &limit)
}

// settledGoroutines returns the goroutine count once goroutines of earlier
// tests (closed streams finish asynchronously in the SDK) have exited: the
// count has stayed the same over 20 samples. A slow machine makes this
// wait longer; a count that settles too early can only raise the baseline,
// which can hide a leak but never fail a test that has none.
func settledGoroutines() int {
	n, stable := runtime.NumGoroutine(), 0
	for stable < 20 {
		time.Sleep(5 * time.Millisecond)
		if m := runtime.NumGoroutine(); m == n {
			stable++
		} else {
			n, stable = m, 0
		}
	}
	return n
}

// waitGoroutines waits for the goroutine count to drop to n, however long
// that takes; goroutines that never exit are reported (with every stack)
// by the test binary's -timeout.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	for runtime.NumGoroutine() > n {
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSubscribeStopsCleanly(t *testing.T) {
	for _, how := range []string{"close stream", "cancel context"} {
		t.Run(how, func(t *testing.T) {
			f := newFanout(t, Options{}, 1)
			f.put(t, numbered(3, "r")...)
			before := settledGoroutines()

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			out, err := f.c.SubscribeToShard(ctx, &kinesis.SubscribeToShardInput{
				ConsumerARN: aws.String(f.consumer), ShardId: aws.String(shard0),
				StartingPosition: &types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon},
			}, ownCodec)
			require.NoError(t, err)
			es := out.GetStream()
			_, _, _ = collect(t, es, 3)

			if how == "close stream" {
				require.NoError(t, es.Close())
			} else {
				cancel()
				for ev := nextEvent(t, es); ev != nil; ev = nextEvent(t, es) {
				}
				_ = es.Close()
			}
			waitGoroutines(t, before)

			// The slot is free again at once: the server side ended too.
			es = f.subscribe(t, context.Background(), shard0, types.StartingPosition{Type: types.ShardIteratorTypeLatest})
			require.NotNil(t, nextEvent(t, es))
		})
	}
}

// TestSubscribeManyShardsConcurrently subscribes to every shard through one
// client (each call with its own codec) while records are written, and
// checks each shard's records arrive complete and in order.
func TestSubscribeManyShardsConcurrently(t *testing.T) {
	const shards, perShard = 4, 50
	f := newFanout(t, Options{}, shards)
	ctx := context.Background()
	list, err := f.c.ListShards(ctx, &kinesis.ListShardsInput{StreamARN: aws.String(f.stream)})
	require.NoError(t, err)
	require.Len(t, list.Shards, shards)

	streams := make([]*kinesis.SubscribeToShardEventStream, shards)
	for i, sh := range list.Shards {
		streams[i] = f.subscribe(t, ctx, aws.ToString(sh.ShardId), types.StartingPosition{Type: types.ShardIteratorTypeLatest})
		require.NotNil(t, nextEvent(t, streams[i]))
	}

	// Explicit hash keys place record j of shard i at the start of its range.
	want := make([][][]byte, shards)
	for j := 0; j < perShard; j++ {
		for i, sh := range list.Shards {
			data := []byte(fmt.Sprintf("shard-%d-rec-%03d", i, j))
			want[i] = append(want[i], data)
			_, err := f.c.PutRecord(ctx, &kinesis.PutRecordInput{
				StreamARN: aws.String(f.stream), PartitionKey: aws.String("k"), Data: data,
				ExplicitHashKey: sh.HashKeyRange.StartingHashKey,
			})
			require.NoError(t, err)
		}
	}

	errs := make(chan error, shards)
	for i := range streams {
		go func() {
			got := 0
			for got < perShard {
				ev, ok := <-streams[i].Events()
				if !ok {
					errs <- fmt.Errorf("shard %d: stream ended after %d records: %v", i, got, streams[i].Err())
					return
				}
				for _, r := range ev.(*types.SubscribeToShardEventStreamMemberSubscribeToShardEvent).Value.Records {
					if string(r.Data) != string(want[i][got]) {
						errs <- fmt.Errorf("shard %d record %d: got %q", i, got, r.Data)
						return
					}
					got++
				}
			}
			errs <- nil
		}()
	}
	for range streams {
		require.NoError(t, <-errs)
	}
}

// The continuation of an empty shard is usable with GetShardIterator too, so
// a consumer can fall back from fan-out to polling at the same position.
func TestContinuationWorksForGetShardIterator(t *testing.T) {
	f := newFanout(t, Options{}, 1)
	ctx := context.Background()
	es := f.subscribe(t, ctx, shard0, types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon})
	ev := nextEvent(t, es)
	require.NotNil(t, ev)
	require.NoError(t, es.Close())
	f.put(t, []byte("first"))

	it, err := f.c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
		StreamARN: aws.String(f.stream), ShardId: aws.String(shard0),
		ShardIteratorType: types.ShardIteratorTypeAfterSequenceNumber, StartingSequenceNumber: ev.ContinuationSequenceNumber,
	})
	require.NoError(t, err)
	out, err := f.c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
	require.NoError(t, err)
	require.Len(t, out.Records, 1)
	require.Equal(t, "first", string(out.Records[0].Data))
}
