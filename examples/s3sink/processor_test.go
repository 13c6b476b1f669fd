package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/checkpoint"
	"github.com/shardflow/shardflow/clock"
	"github.com/shardflow/shardflow/consumer"
)

const bucket = "lake"

var t0 = time.Date(2026, 12, 1, 7, 50, 0, 0, time.UTC)

// seq returns the i-th sequence number of a shard, all of one length so
// keys sort in shard order.
func seq(i int) string { return fmt.Sprintf("4963%052d", i) }

func rec(i int, arrival time.Time, data string) consumer.Record {
	return consumer.Record{SequenceNumber: seq(i), PartitionKey: fmt.Sprint(i), Data: []byte(data), ApproximateArrivalTimestamp: arrival}
}

type harness struct {
	t    *testing.T
	s3   *s3.Client
	cs   *countingS3
	sink *Sink
	clk  *clock.Fake
	w    *memWriter
}

func newHarness(t *testing.T, cfg Config) *harness {
	c := fakeS3(t, bucket)
	h := &harness{t: t, s3: c, cs: &countingS3{S3: c}, clk: clock.NewFake(t0), w: &memWriter{}}
	cfg.Bucket, cfg.Clock, cfg.Logger = bucket, h.clk, quietLogger()
	if cfg.Schema == nil {
		var err error
		cfg.Schema, err = ParseSchema("id:bigint,name:string")
		require.NoError(t, err)
	}
	var err error
	h.sink, err = NewSink(h.cs, cfg)
	require.NoError(t, err)
	return h
}

// start makes a processor the way the consumer does after taking the lease:
// from the writer's checkpoint and pending checkpoint.
func (h *harness) start() (*Processor, *checkpoint.Checkpointer) {
	return h.startWith(h.sink)
}

// startWith is start for a processor of sink (another worker's
// configuration over the same S3, lease table and clock).
func (h *harness) startWith(sink *Sink) (*Processor, *checkpoint.Checkpointer) {
	h.w.mu.Lock()
	start, pending, state := h.w.checkpoint, h.w.pending, h.w.pendingState
	h.w.mu.Unlock()
	if start.IsZero() {
		start = checkpoint.TrimHorizon
	}
	p := sink.Factory().NewProcessor("shardId-000000000001").(*Processor)
	cp := checkpoint.NewCheckpointer("shardId-000000000001", h.w, start)
	require.NoError(h.t, p.Initialize(context.Background(), consumer.InitializeInput{ShardID: "shardId-000000000001",
		StartingPosition: start, PendingCheckpoint: pending, PendingCheckpointState: state}))
	return p, cp
}

func (h *harness) process(p *Processor, cp *checkpoint.Checkpointer, recs ...consumer.Record) error {
	if len(recs) > 0 {
		cp.Delivered(recs[len(recs)-1].Position())
	}
	return p.ProcessRecords(context.Background(), consumer.ProcessRecordsInput{ShardID: p.shardID, Records: recs, Checkpointer: cp})
}

func keys(objs []object) []string {
	var ks []string
	for _, o := range objs {
		ks = append(ks, o.Key)
	}
	return ks
}

func key(part string, first, last int, ext string) string {
	return fmt.Sprintf("%sshardId-000000000001-%s.0-%s.0%s", part, seq(first), seq(last), ext)
}

// A file is cut when the buffer reaches BufferSize (after the record that
// reached it), when a record of another arrival hour comes (before it),
// and when BufferInterval has passed on the worker's clock.
func TestCuts(t *testing.T) {
	h := newHarness(t, Config{BufferSize: MinBufferSize, BufferInterval: MinBufferInterval, Partitioning: PartitionHive})
	p, cp := h.start()
	pad := strings.Repeat("x", 100_000)
	var recs []consumer.Record
	for i := 1; i <= 12; i++ { // 11 records of ~100 kB reach 1 MiB
		recs = append(recs, rec(i, t0, fmt.Sprintf(`{"id":%d,"name":"%s"}`, i, pad)))
	}
	recs = append(recs, rec(13, t0.Add(10*time.Minute+time.Second), `{"id":13}`)) // 08:00:01: next hour
	recs = append(recs, rec(14, t0.Add(11*time.Minute), `{"id":14}`))
	require.NoError(t, h.process(p, cp, recs...))
	require.Equal(t, []string{
		key("dt=2026-12-01/hour=07/", 1, 11, ".parquet"),
		key("dt=2026-12-01/hour=07/", 12, 12, ".parquet"),
	}, keys(listAll(t, h.s3, bucket, "")))
	require.Equal(t, checkpoint.At(seq(12), 0), cp.Last())

	// An empty batch before the interval changes nothing; after it, the
	// buffer is cut.
	h.clk.Advance(MinBufferInterval - time.Second)
	require.NoError(t, h.process(p, cp))
	require.Len(t, listAll(t, h.s3, bucket, ""), 2)
	h.clk.Advance(time.Second)
	require.NoError(t, h.process(p, cp))
	objs := listAll(t, h.s3, bucket, "")
	require.Equal(t, key("dt=2026-12-01/hour=08/", 13, 14, ".parquet"), objs[2].Key)
	require.Equal(t, checkpoint.At(seq(14), 0), cp.Last())
	rows := readParquet(t, objs[2].Body)
	require.Len(t, rows, 2)
	require.EqualValues(t, 13, rows[0]["id"].Int64())
	require.True(t, rows[0]["name"].IsNull())
	require.Len(t, readParquet(t, objs[0].Body), 11)

	// Every cut was prepared before its upload and checkpointed after it.
	require.Equal(t, []string{
		"prepare " + seq(11), "checkpoint " + seq(11),
		"prepare " + seq(12), "checkpoint " + seq(12),
		"prepare " + seq(14), "checkpoint " + seq(14),
	}, h.w.writes)
}

// Records that are not JSON objects or do not fit the schema go to the
// error prefix with the reason and the raw record; the others to Parquet.
func TestBadRecordsGoToErrorPrefix(t *testing.T) {
	h := newHarness(t, Config{})
	p, cp := h.start()
	require.NoError(t, h.process(p, cp,
		rec(1, t0, `{"id":1,"name":"a"}`),
		rec(2, t0, `not json`),
		rec(3, t0, `{"id":"three"}`),
		rec(4, t0, `[1,2]`),
		rec(5, t0, `{"id":5,"name":"e","extra":{"x":1}}`),
		rec(6, t0, `{"id":1.5}`),
	))
	require.NoError(t, p.ShutdownRequested(context.Background(), consumer.ShutdownRequestedInput{ShardID: p.shardID, Checkpointer: cp}))
	objs := listAll(t, h.s3, bucket, "")
	require.Equal(t, []string{
		key("2026/12/01/07/", 1, 5, ".parquet"),
		key("format-conversion-failed/2026/12/01/07/", 2, 6, ".json"),
	}, keys(objs))
	rows := readParquet(t, objs[0].Body)
	require.Len(t, rows, 2)
	require.Equal(t, "e", rows[1]["name"].String())

	lines := strings.Split(strings.TrimSpace(string(objs[1].Body)), "\n")
	require.Len(t, lines, 4)
	want := map[string]string{seq(2): "not JSON", seq(3): `field "id" (column id bigint): want a number`, seq(4): "not a JSON object", seq(6): "not an integer"}
	raw := map[string]string{seq(2): `not json`, seq(3): `{"id":"three"}`, seq(4): `[1,2]`, seq(6): `{"id":1.5}`}
	for _, l := range lines {
		var e errorLine
		require.NoError(t, json.Unmarshal([]byte(l), &e))
		require.Contains(t, e.ErrorMessage, want[e.SequenceNumber])
		data, err := base64.StdEncoding.DecodeString(e.RawData)
		require.NoError(t, err)
		require.Equal(t, raw[e.SequenceNumber], string(data))
		require.Equal(t, "shardId-000000000001", e.ShardID)
	}
	require.Equal(t, Stats{Objects: 1, ErrorObjects: 1, Records: 2, BadRecords: 4, BytesIn: h.sink.Stats().BytesIn,
		BytesOut: int64(len(objs[0].Body) + len(objs[1].Body))}, h.sink.Stats())
}

// A worker cuts on its interval, records the cut, uploads and dies before
// the checkpoint. Its successor receives more records in its first batch
// than the dead worker had buffered; it must cut exactly where the dead one
// did and rewrite the same key, not one object over records 1-10.
func TestSuccessorHonoursPlannedCut(t *testing.T) {
	h := newHarness(t, Config{BufferInterval: MinBufferInterval})
	crashed := false
	h.cs.after = func(op, _ string) error {
		if op == "PutObject" && !crashed {
			crashed = true
			return fmt.Errorf("worker killed after %s", op)
		}
		return nil
	}
	var recs []consumer.Record
	for i := 1; i <= 10; i++ {
		recs = append(recs, rec(i, t0, fmt.Sprintf(`{"id":%d}`, i)))
	}
	p1, cp1 := h.start()
	require.NoError(t, h.process(p1, cp1, recs[:3]...))
	h.clk.Advance(MinBufferInterval)
	require.ErrorContains(t, h.process(p1, cp1, recs[3:5]...), "worker killed")
	first := listAll(t, h.s3, bucket, "")
	require.Equal(t, []string{key("2026/12/01/07/", 1, 5, ".parquet")}, keys(first))
	require.Equal(t, checkpoint.Position{}, h.w.checkpoint, "no checkpoint after the crash")
	require.NotNil(t, h.w.pending)

	// The successor starts from TRIM_HORIZON with the prepared cut and gets
	// all ten records at once. Its clock has not reached the interval.
	p2, cp2 := h.start()
	require.NoError(t, h.process(p2, cp2, recs...))
	require.Equal(t, checkpoint.At(seq(5), 0), cp2.Last())
	require.NoError(t, p2.ShutdownRequested(context.Background(), consumer.ShutdownRequestedInput{Checkpointer: cp2}))
	objs := listAll(t, h.s3, bucket, "")
	require.Equal(t, []string{key("2026/12/01/07/", 1, 5, ".parquet"), key("2026/12/01/07/", 6, 10, ".parquet")}, keys(objs))
	require.Equal(t, first[0].Body, objs[0].Body, "the rewrite is byte-identical")
	require.EqualValues(t, 1, h.sink.Stats().Recovered)
	var ids []int64
	for _, o := range objs {
		for _, r := range readParquet(t, o.Body) {
			ids = append(ids, r["id"].Int64())
		}
	}
	require.Equal(t, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, ids)
}

// A failed upload is retried by the consumer with the same records; the
// processor must neither add them twice nor lose the sealed file.
func TestRetryAfterUploadFailure(t *testing.T) {
	h := newHarness(t, Config{BufferSize: MinBufferSize, PartSize: MinPartSize})
	down := true
	h.cs.before = func(op, _ string) error {
		if down {
			return errS3Down
		}
		return nil
	}
	pad := strings.Repeat("y", 300_000)
	var recs []consumer.Record
	for i := 1; i <= 5; i++ {
		recs = append(recs, rec(i, t0, fmt.Sprintf(`{"id":%d,"name":"%s"}`, i, pad)))
	}
	p, cp := h.start()
	require.ErrorIs(t, h.process(p, cp, recs...), errS3Down)
	require.ErrorIs(t, h.process(p, cp, recs...), errS3Down)
	down = false
	require.NoError(t, h.process(p, cp, recs...))
	require.NoError(t, p.ShardEnded(context.Background(), consumer.ShardEndedInput{Checkpointer: func() *checkpoint.Checkpointer { cp.ShardEnded(); return cp }()}))
	objs := listAll(t, h.s3, bucket, "")
	require.Equal(t, []string{key("2026/12/01/07/", 1, 4, ".parquet"), key("2026/12/01/07/", 5, 5, ".parquet")}, keys(objs))
	require.Len(t, readParquet(t, objs[0].Body), 4)
	require.Len(t, readParquet(t, objs[1].Body), 1)
	require.Equal(t, checkpoint.ShardEnd, cp.Last())
	require.Equal(t, map[string]int{"PutObject": 2}, h.cs.snapshot(), "each file uploaded once")
}

// A worker that lost the lease cannot record a cut, so it uploads nothing:
// the next owner's cuts are the only ones.
func TestNoUploadWithoutRecordedCut(t *testing.T) {
	h := newHarness(t, Config{BufferSize: MinBufferSize})
	p, cp := h.start()
	pad := strings.Repeat("z", 600_000)
	require.NoError(t, h.process(p, cp, rec(1, t0, `{"id":1,"name":"`+pad+`"}`)))
	cp.LeaseLost()
	err := h.process(p, cp, rec(2, t0, `{"id":2,"name":"`+pad+`"}`))
	require.ErrorIs(t, err, checkpoint.ErrLeaseLost)
	require.Empty(t, h.cs.snapshot(), "nothing uploaded")
	require.Empty(t, h.w.writes)
}

// A file over PartSize goes up in a multipart upload and reads back whole.
func TestLargeFileMultipart(t *testing.T) {
	h := newHarness(t, Config{PartSize: MinPartSize})
	p, cp := h.start()
	rng := rand.New(rand.NewPCG(7, 7))
	var recs []consumer.Record
	for i := 1; i <= 80; i++ {
		noise := make([]byte, 75_000) // incompressible: the file exceeds 5 MiB
		for j := range noise {
			noise[j] = byte(rng.Uint32())
		}
		recs = append(recs, rec(i, t0, fmt.Sprintf(`{"id":%d,"name":"%s"}`, i, base64.StdEncoding.EncodeToString(noise))))
	}
	require.NoError(t, h.process(p, cp, recs...))
	require.NoError(t, p.ShutdownRequested(context.Background(), consumer.ShutdownRequestedInput{Checkpointer: cp}))
	calls := h.cs.snapshot()
	require.Equal(t, 1, calls["CreateMultipartUpload"])
	require.Equal(t, 1, calls["CompleteMultipartUpload"])
	require.GreaterOrEqual(t, calls["UploadPart"], 2)
	objs := listAll(t, h.s3, bucket, "")
	require.Len(t, objs, 1)
	require.Greater(t, len(objs[0].Body), MinPartSize)
	rows := readParquet(t, objs[0].Body)
	require.Len(t, rows, 80)
	require.Equal(t, string(recs[79].Data[len(`{"id":80,"name":"`):len(recs[79].Data)-2]), rows[79]["name"].String())
}

// Worker 1 dies at each point of a delivery; worker 2 starts from what the
// lease table then holds and gets every record again in one batch. The lake
// must hold each record exactly once whatever the point.
func TestCrashAtEveryStep(t *testing.T) {
	for _, point := range []string{"prepare reply lost", "after data upload", "after error upload", "checkpoint reply lost"} {
		t.Run(point, func(t *testing.T) {
			h := newHarness(t, Config{BufferInterval: MinBufferInterval})
			errKilled := fmt.Errorf("killed: %s", point)
			dead := false
			h.cs.before = func(string, string) error {
				if dead {
					return errKilled
				}
				return nil
			}
			h.cs.after = func(op, key string) error {
				if (point == "after data upload" && strings.HasSuffix(key, ".parquet")) ||
					(point == "after error upload" && strings.HasSuffix(key, ".json")) {
					dead = true
					return errKilled
				}
				return nil
			}
			var recs []consumer.Record
			for i := 1; i <= 12; i++ {
				data := fmt.Sprintf(`{"id":%d}`, i)
				if i%4 == 0 {
					data = "bad " + fmt.Sprint(i)
				}
				recs = append(recs, rec(i, t0, data))
			}
			p1, cp1 := h.start()
			require.NoError(t, h.process(p1, cp1, recs[:5]...))
			h.clk.Advance(MinBufferInterval)
			switch point {
			case "prepare reply lost":
				h.w.lostReply = errKilled
			case "checkpoint reply lost":
				// The prepare succeeds; the checkpoint after the uploads
				// lands and its reply is lost.
				h.cs.after = func(op, key string) error {
					if strings.HasSuffix(key, ".json") {
						h.w.lostReply = errKilled
					}
					return nil
				}
			}
			require.ErrorIs(t, h.process(p1, cp1, recs[5:7]...), errKilled)
			dead, h.cs.after = false, nil // worker 2 reaches S3

			p2, cp2 := h.start()
			require.NoError(t, h.process(p2, cp2, recs...))
			require.NoError(t, p2.ShutdownRequested(context.Background(), consumer.ShutdownRequestedInput{Checkpointer: cp2}))

			objs := listAll(t, h.s3, bucket, "")
			checkNoOverlap(t, objs)
			var ids []int64
			var bad []string
			for _, o := range objs {
				if strings.HasSuffix(o.Key, ".json") {
					for _, l := range strings.Split(strings.TrimSpace(string(o.Body)), "\n") {
						var e errorLine
						require.NoError(t, json.Unmarshal([]byte(l), &e))
						raw, _ := base64.StdEncoding.DecodeString(e.RawData)
						bad = append(bad, string(raw))
					}
					continue
				}
				for _, r := range readParquet(t, o.Body) {
					ids = append(ids, r["id"].Int64())
				}
			}
			slices.Sort(ids)
			require.Equal(t, []int64{1, 2, 3, 5, 6, 7, 9, 10, 11}, ids)
			slices.Sort(bad)
			require.Equal(t, []string{"bad 12", "bad 4", "bad 8"}, bad)
			require.Equal(t, checkpoint.At(seq(12), 0), cp2.Last())
		})
	}
}

// A deploy changes the layout (here the partitioning) while a cut is
// pending: worker 1 (default layout) uploaded the cut's data object and
// died; worker 2 (Hive layout) rewrites the cut under its own keys and
// dies before the checkpoint; worker 3 (the default layout again, a
// rollback) finishes. Every owner's keys for the cut but the last one's
// must be gone, or records 1-5 are in two objects.
func TestLayoutChangeWhileCutPending(t *testing.T) {
	h := newHarness(t, Config{BufferInterval: MinBufferInterval})
	cols, err := ParseSchema("id:bigint,name:string")
	require.NoError(t, err)
	hive, err := NewSink(h.cs, Config{Bucket: bucket, Partitioning: PartitionHive, Schema: cols, BufferInterval: MinBufferInterval, Clock: h.clk, Logger: quietLogger()})
	require.NoError(t, err)
	errKilled := errors.New("killed")
	var recs []consumer.Record
	for i := 1; i <= 10; i++ {
		data := fmt.Sprintf(`{"id":%d}`, i)
		if i == 2 || i == 8 {
			data = "bad " + fmt.Sprint(i)
		}
		recs = append(recs, rec(i, t0, data))
	}

	// Worker 1: cut 1-5 on its interval, data object up, dead.
	h.cs.after = func(op, key string) error {
		if op == "PutObject" && strings.HasSuffix(key, ".parquet") {
			return errKilled
		}
		return nil
	}
	p1, cp1 := h.start()
	require.NoError(t, h.process(p1, cp1, recs[:3]...))
	h.clk.Advance(MinBufferInterval)
	require.ErrorIs(t, h.process(p1, cp1, recs[3:5]...), errKilled)
	require.Equal(t, []string{key("2026/12/01/07/", 1, 5, ".parquet")}, keys(listAll(t, h.s3, bucket, "")))

	// Worker 2, Hive layout: both objects of the cut up, dead right after
	// the second, before anything else.
	h.cs.after = func(op, key string) error {
		if strings.HasSuffix(key, ".json") {
			return errKilled
		}
		return nil
	}
	p2, cp2 := h.startWith(hive)
	require.ErrorIs(t, h.process(p2, cp2, recs...), errKilled)
	require.Len(t, listAll(t, h.s3, bucket, ""), 3)
	require.True(t, h.w.checkpoint.IsZero(), "no checkpoint yet")

	// Worker 3, the default layout again, gets everything.
	h.cs.before, h.cs.after = nil, nil
	p3, cp3 := h.start()
	require.NoError(t, h.process(p3, cp3, recs...))
	require.NoError(t, p3.ShutdownRequested(context.Background(), consumer.ShutdownRequestedInput{Checkpointer: cp3}))
	require.Equal(t, checkpoint.At(seq(10), 0), cp3.Last())
	require.Equal(t, []string{
		key("2026/12/01/07/", 1, 5, ".parquet"),
		key("2026/12/01/07/", 6, 10, ".parquet"),
		key("format-conversion-failed/2026/12/01/07/", 2, 2, ".json"),
		key("format-conversion-failed/2026/12/01/07/", 8, 8, ".json"),
	}, keys(listAll(t, h.s3, bucket, "")), "worker 2's Hive objects of the cut deleted")
}
