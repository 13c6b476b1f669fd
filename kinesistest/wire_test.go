package kinesistest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	smithy "github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/clock"
)

// noRetries makes a client return the first error instead of retrying it.
func noRetries(o *kinesis.Options) { o.Retryer = aws.NopRetryer{} }

// newWireServer returns a server on a fake clock and a real client for it
// without retries.
func newWireServer(t *testing.T, opts Options) (*Server, *kinesis.Client, *clock.Fake) {
	t.Helper()
	fake := clock.NewFake(time.Time{})
	if opts.Clock == nil {
		opts.Clock = fake
	}
	s := New(opts)
	t.Cleanup(func() { _ = s.Close() })
	return s, s.Client(noRetries), fake
}

func createStream(t *testing.T, api API, name string, shards int32) string {
	t.Helper()
	ctx := context.Background()
	_, err := api.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(shards)})
	require.NoError(t, err)
	out, err := api.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
	require.NoError(t, err)
	return aws.ToString(out.StreamDescriptionSummary.StreamARN)
}

// mirrorSide is one of the two servers the mirror test drives: one called
// directly, one through the wire. Each keeps the iterators and tokens its
// own server issued.
type mirrorSide struct {
	api      API
	iterator *string
	arn      *string
}

// TestWireMirrorsDirectCalls drives two identical servers (same fake clock
// start, same seed) with the same operations, one directly and one through
// the real SDK client and the wire protocol, and requires identical outputs
// and errors. Any member the codec drops, mangles or mistypes shows up as a
// difference.
func TestWireMirrorsDirectCalls(t *testing.T) {
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clkDirect, clkWire := clock.NewFake(start), clock.NewFake(start)
	direct := New(Options{Clock: clkDirect, Seed: 7})
	viaWire := New(Options{Clock: clkWire, Seed: 7})
	defer direct.Close()
	defer viaWire.Close()
	sides := [2]*mirrorSide{{api: direct}, {api: viaWire.Client(noRetries)}}

	ctx := context.Background()
	steps := []struct {
		name   string
		before time.Duration // advance both clocks first
		run    func(m *mirrorSide) (any, error)
	}{
		{"CreateStream", 0, func(m *mirrorSide) (any, error) {
			return m.api.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("orders"), ShardCount: aws.Int32(2)})
		}},
		{"CreateStream on-demand", 0, func(m *mirrorSide) (any, error) {
			return m.api.CreateStream(ctx, &kinesis.CreateStreamInput{
				StreamName:        aws.String("events"),
				StreamModeDetails: &types.StreamModeDetails{StreamMode: types.StreamModeOnDemand},
			})
		}},
		{"CreateStream duplicate", 0, func(m *mirrorSide) (any, error) {
			return m.api.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("orders"), ShardCount: aws.Int32(1)})
		}},
		{"ListStreams", 0, func(m *mirrorSide) (any, error) {
			return m.api.ListStreams(ctx, &kinesis.ListStreamsInput{})
		}},
		{"DescribeStreamSummary", 0, func(m *mirrorSide) (any, error) {
			out, err := m.api.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("orders")})
			if err == nil {
				m.arn = out.StreamDescriptionSummary.StreamARN
			}
			return out, err
		}},
		{"DescribeStream", 0, func(m *mirrorSide) (any, error) {
			return m.api.DescribeStream(ctx, &kinesis.DescribeStreamInput{StreamARN: m.arn})
		}},
		{"DescribeStreamSummary missing", 0, func(m *mirrorSide) (any, error) {
			return m.api.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("nope")})
		}},
		{"PutRecord", 0, func(m *mirrorSide) (any, error) {
			return m.api.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("orders"), PartitionKey: aws.String("a"), Data: []byte("one")})
		}},
		{"PutRecord explicit hash key", 0, func(m *mirrorSide) (any, error) {
			return m.api.PutRecord(ctx, &kinesis.PutRecordInput{
				StreamARN: m.arn, PartitionKey: aws.String("b"), Data: []byte{0, 1, 2, 255},
				ExplicitHashKey: aws.String("340282366920938463463374607431768211455"),
			})
		}},
		{"PutRecord empty partition key", 0, func(m *mirrorSide) (any, error) {
			return m.api.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("orders"), PartitionKey: aws.String(""), Data: []byte("x")})
		}},
		{"PutRecords", 1500 * time.Millisecond, func(m *mirrorSide) (any, error) {
			entries := make([]types.PutRecordsRequestEntry, 5)
			for i := range entries {
				entries[i] = types.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprint("key-", i)), Data: []byte(fmt.Sprint("data-", i))}
			}
			return m.api.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("orders"), Records: entries})
		}},
		{"GetShardIterator TRIM_HORIZON", 2 * time.Second, func(m *mirrorSide) (any, error) {
			out, err := m.api.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
				StreamName: aws.String("orders"), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
			})
			if err == nil {
				m.iterator = out.ShardIterator
			}
			return out, err
		}},
		{"GetRecords limit", 0, func(m *mirrorSide) (any, error) {
			out, err := m.api.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: m.iterator, Limit: aws.Int32(2)})
			if err == nil {
				m.iterator = out.NextShardIterator
			}
			return out, err
		}},
		{"GetRecords rest", 0, func(m *mirrorSide) (any, error) {
			return m.api.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: m.iterator})
		}},
		{"GetShardIterator AT_TIMESTAMP", 0, func(m *mirrorSide) (any, error) {
			out, err := m.api.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
				StreamName: aws.String("orders"), ShardId: aws.String("shardId-000000000001"),
				ShardIteratorType: types.ShardIteratorTypeAtTimestamp, Timestamp: aws.Time(start.Add(1250 * time.Millisecond)),
			})
			if err == nil {
				m.iterator = out.ShardIterator
			}
			return out, err
		}},
		{"GetRecords at timestamp", 0, func(m *mirrorSide) (any, error) {
			return m.api.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: m.iterator})
		}},
		{"GetRecords bad iterator", 0, func(m *mirrorSide) (any, error) {
			return m.api.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: aws.String("bogus")})
		}},
		{"ListShards", 0, func(m *mirrorSide) (any, error) {
			return m.api.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("orders")})
		}},
		{"SplitShard", 0, func(m *mirrorSide) (any, error) {
			return m.api.SplitShard(ctx, &kinesis.SplitShardInput{
				StreamName: aws.String("orders"), ShardToSplit: aws.String("shardId-000000000000"),
				NewStartingHashKey: aws.String("85070591730234615865843651857942052864"),
			})
		}},
		{"MergeShards", time.Second, func(m *mirrorSide) (any, error) {
			return m.api.MergeShards(ctx, &kinesis.MergeShardsInput{
				StreamName: aws.String("orders"), ShardToMerge: aws.String("shardId-000000000002"),
				AdjacentShardToMerge: aws.String("shardId-000000000003"),
			})
		}},
		{"UpdateShardCount", time.Second, func(m *mirrorSide) (any, error) {
			return m.api.UpdateShardCount(ctx, &kinesis.UpdateShardCountInput{
				StreamName: aws.String("events"), TargetShardCount: aws.Int32(8), ScalingType: types.ScalingTypeUniformScaling,
			})
		}},
		{"ListShards after resharding", time.Second, func(m *mirrorSide) (any, error) {
			return m.api.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("orders")})
		}},
		{"ListShards filter", 0, func(m *mirrorSide) (any, error) {
			return m.api.ListShards(ctx, &kinesis.ListShardsInput{
				StreamName:  aws.String("orders"),
				ShardFilter: &types.ShardFilter{Type: types.ShardFilterTypeAtTimestamp, Timestamp: aws.Time(start.Add(time.Hour))},
			})
		}},
		{"GetRecords closed shard end", 0, func(m *mirrorSide) (any, error) {
			out, err := m.api.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
				StreamName: aws.String("orders"), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeLatest,
			})
			if err != nil {
				return out, err
			}
			return m.api.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: out.ShardIterator})
		}},
		{"RegisterStreamConsumer", 0, func(m *mirrorSide) (any, error) {
			return m.api.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: m.arn, ConsumerName: aws.String("app")})
		}},
		{"DescribeStreamConsumer", 0, func(m *mirrorSide) (any, error) {
			return m.api.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{StreamARN: m.arn, ConsumerName: aws.String("app")})
		}},
		{"ListStreamConsumers", 0, func(m *mirrorSide) (any, error) {
			return m.api.ListStreamConsumers(ctx, &kinesis.ListStreamConsumersInput{StreamARN: m.arn})
		}},
		{"DeregisterStreamConsumer", 0, func(m *mirrorSide) (any, error) {
			return m.api.DeregisterStreamConsumer(ctx, &kinesis.DeregisterStreamConsumerInput{StreamARN: m.arn, ConsumerName: aws.String("app")})
		}},
		{"DescribeStreamConsumer missing", 0, func(m *mirrorSide) (any, error) {
			return m.api.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{StreamARN: m.arn, ConsumerName: aws.String("gone")})
		}},
		{"DeleteStream", 0, func(m *mirrorSide) (any, error) {
			return m.api.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String("events")})
		}},
		{"ListStreams after delete", 0, func(m *mirrorSide) (any, error) {
			return m.api.ListStreams(ctx, &kinesis.ListStreamsInput{})
		}},
	}
	for _, step := range steps {
		clkDirect.Advance(step.before)
		clkWire.Advance(step.before)
		outD, errD := step.run(sides[0])
		outW, errW := step.run(sides[1])
		if errD != nil {
			require.Error(t, errW, "%s: direct failed with %v but the wire call succeeded", step.name, errD)
			var apiD, apiW smithy.APIError
			require.True(t, errors.As(errD, &apiD), "%s: direct error %v is not an API error", step.name, errD)
			require.True(t, errors.As(errW, &apiW), "%s: wire error %v is not an API error", step.name, errW)
			require.IsType(t, apiD, apiW, step.name)
			require.Equal(t, apiD.ErrorCode(), apiW.ErrorCode(), step.name)
			require.Equal(t, apiD.ErrorMessage(), apiW.ErrorMessage(), step.name)
			continue
		}
		require.NoError(t, errW, step.name)
		require.Equal(t, normalizeOutput(outD), normalizeOutput(outW), step.name)
	}
}

// normalizeOutput makes outputs of two servers comparable: iterators are
// per-server secrets, metadata is the SDK's, and the wire carries
// timestamps at millisecond precision in UTC and empty lists like absent
// ones.
func normalizeOutput(v any) any {
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Pointer && rv.IsNil() {
		return nil
	}
	cp := reflect.New(rv.Elem().Type())
	cp.Elem().Set(rv.Elem())
	normalizeValue(cp.Elem())
	return cp.Interface()
}

func normalizeValue(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return
		}
		cp := reflect.New(v.Elem().Type())
		cp.Elem().Set(v.Elem())
		normalizeValue(cp.Elem())
		v.Set(cp)
	case reflect.Struct:
		if v.Type() == timeType {
			t := v.Interface().(time.Time)
			v.Set(reflect.ValueOf(t.UTC().Truncate(time.Millisecond)))
			return
		}
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			switch {
			case !f.IsExported():
			case f.Type == metadataType, f.Name == "ShardIterator", f.Name == "NextShardIterator":
				v.Field(i).Set(reflect.Zero(f.Type))
			default:
				normalizeValue(v.Field(i))
			}
		}
	case reflect.Slice:
		if v.Len() == 0 {
			v.Set(reflect.Zero(v.Type()))
			return
		}
		if v.Type() == bytesType {
			return
		}
		cp := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		reflect.Copy(cp, v)
		for i := 0; i < cp.Len(); i++ {
			normalizeValue(cp.Index(i))
		}
		v.Set(cp)
	}
}

func TestWireListShardsPagination(t *testing.T) {
	_, c, _ := newWireServer(t, Options{})
	ctx := context.Background()
	createStream(t, c, "paged", 5)

	var ids []string
	var pages int
	in := &kinesis.ListShardsInput{StreamName: aws.String("paged"), MaxResults: aws.Int32(2)}
	for {
		out, err := c.ListShards(ctx, in)
		require.NoError(t, err)
		require.LessOrEqual(t, len(out.Shards), 2)
		for _, sh := range out.Shards {
			ids = append(ids, aws.ToString(sh.ShardId))
		}
		pages++
		if out.NextToken == nil {
			break
		}
		// With a token the stream is implied, as with the service.
		in = &kinesis.ListShardsInput{NextToken: out.NextToken, MaxResults: aws.Int32(2)}
	}
	require.Equal(t, 3, pages)
	require.Equal(t, []string{
		"shardId-000000000000", "shardId-000000000001", "shardId-000000000002",
		"shardId-000000000003", "shardId-000000000004",
	}, ids)
}

func TestWireTypedErrors(t *testing.T) {
	s, c, _ := newWireServer(t, Options{})
	ctx := context.Background()
	createStream(t, c, "errs", 1)

	_, err := c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("missing")})
	var notFound *types.ResourceNotFoundException
	require.ErrorAs(t, err, &notFound)
	require.Contains(t, notFound.ErrorMessage(), "missing")

	_, err = c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: aws.String("not-an-iterator")})
	var invalid *types.InvalidArgumentException
	require.ErrorAs(t, err, &invalid)

	s.Throttle(OpPutRecord, 1)
	_, err = c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("errs"), PartitionKey: aws.String("k"), Data: []byte("x")})
	var throttled *types.ProvisionedThroughputExceededException
	require.ErrorAs(t, err, &throttled)
	s.ResetFaults()

	s.FailNext(OpListShards, 1, nil)
	_, err = c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("errs")})
	var internal *types.InternalFailureException
	require.ErrorAs(t, err, &internal)
	var respErr interface{ HTTPStatusCode() int }
	require.ErrorAs(t, err, &respErr)
	require.Equal(t, http.StatusInternalServerError, respErr.HTTPStatusCode())

	// The default retryer retries throttling; the next call succeeds.
	s.FailNext(OpPutRecord, 1, &types.ProvisionedThroughputExceededException{Message: aws.String("slow down")})
	_, err = s.Client().PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("errs"), PartitionKey: aws.String("k"), Data: []byte("x")})
	require.NoError(t, err)

	// Schema violations keep the service's ValidationException code.
	_, err = c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("errs"), PartitionKey: aws.String(strings.Repeat("k", 257)), Data: []byte("x")})
	var validation *types.ValidationException
	require.ErrorAs(t, err, &validation)
}

func TestWireRoundTripsBinaryData(t *testing.T) {
	_, c, _ := newWireServer(t, Options{})
	ctx := context.Background()
	createStream(t, c, "bin", 1)
	payloads := [][]byte{{}, {0}, bytes.Repeat([]byte{0xff, 0x00, '"', '\\', '<'}, 1000), []byte("héllo, 世界")}
	for _, p := range payloads {
		_, err := c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("bin"), PartitionKey: aws.String("ключ"), Data: p})
		require.NoError(t, err)
	}
	it, err := c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("bin"), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	require.NoError(t, err)
	out, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
	require.NoError(t, err)
	require.Len(t, out.Records, len(payloads))
	for i, r := range out.Records {
		require.Equal(t, len(payloads[i]), len(r.Data))
		require.True(t, bytes.Equal(payloads[i], r.Data), "record %d", i)
		require.Equal(t, "ключ", aws.ToString(r.PartitionKey))
	}
}

func TestWireRejectsNonKinesisRequests(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	h := s.Handler()
	cases := []struct {
		name, method, target, body, code string
	}{
		{"wrong method", http.MethodGet, "Kinesis_20131202.ListStreams", "", "UnknownOperationException"},
		{"wrong service", http.MethodPost, "DynamoDB_20120810.ListTables", "{}", "UnknownOperationException"},
		{"unknown operation", http.MethodPost, "Kinesis_20131202.AddTagsToStream", "{}", "UnknownOperationException"},
		{"malformed body", http.MethodPost, "Kinesis_20131202.ListStreams", "{", "SerializationException"},
		{"wrong member type", http.MethodPost, "Kinesis_20131202.ListStreams", `{"Limit":"ten"}`, "SerializationException"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, "/", strings.NewReader(tc.body))
			req.Header.Set("X-Amz-Target", tc.target)
			req.Header.Set("Content-Type", jsonContentType)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			require.Equal(t, http.StatusBadRequest, rec.Code)
			require.Contains(t, rec.Body.String(), `"__type":"`+tc.code+`"`)
		})
	}
}

// TestHandlerOverHTTP points an SDK client at s.Handler() behind a real
// HTTP server, the way users wire other tools to the fake.
func TestHandlerOverHTTP(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	c := kinesis.New(kinesis.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(ts.URL),
		Credentials:  aws.AnonymousCredentials{},
		Retryer:      aws.NopRetryer{},
		HTTPClient:   HTTPClient(nil),
	})
	ctx := context.Background()
	createStream(t, c, "http", 1)
	put, err := c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("http"), PartitionKey: aws.String("k"), Data: []byte("over the wire")})
	require.NoError(t, err)
	it, err := c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("http"), ShardId: put.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	require.NoError(t, err)
	out, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
	require.NoError(t, err)
	require.Len(t, out.Records, 1)
	require.Equal(t, "over the wire", string(out.Records[0].Data))

	// Enhanced fan-out streams over HTTP/1.1 too: events are flushed as
	// they are written.
	reg, err := c.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{
		StreamARN: aws.String(s.streamARN("http")), ConsumerName: aws.String("efo"),
	})
	require.NoError(t, err)
	sub, err := c.SubscribeToShard(ctx, &kinesis.SubscribeToShardInput{
		ConsumerARN: reg.Consumer.ConsumerARN, ShardId: put.ShardId,
		StartingPosition: &types.StartingPosition{Type: types.ShardIteratorTypeLatest},
	})
	require.NoError(t, err)
	es := sub.GetStream()
	require.NotNil(t, nextEvent(t, es))
	_, err = c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("http"), PartitionKey: aws.String("k"), Data: []byte("pushed")})
	require.NoError(t, err)
	got, _, _ := collect(t, es, 1)
	require.Equal(t, "pushed", string(got[0].Data))
	require.NoError(t, es.Close())

	raw, err := http.Post(ts.URL, jsonContentType, strings.NewReader("{}"))
	require.NoError(t, err)
	body, _ := io.ReadAll(raw.Body)
	raw.Body.Close()
	require.Equal(t, http.StatusBadRequest, raw.StatusCode)
	require.Contains(t, string(body), "UnknownOperationException")
}

func TestWireContextCancelled(t *testing.T) {
	s, c, fake := newWireServer(t, Options{})
	createStream(t, c, "slow", 1)
	s.SetLatency(OpListShards, time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("slow")})
		errc <- err
	}()
	fake.BlockUntil(1) // the call waits on the injected latency
	cancel()
	require.ErrorIs(t, <-errc, context.Canceled)
}

// closingBody models the SDK's request body: once closed, WriteTo answers
// io.EOF (and Read a clean io.EOF). Past its content, a read waits for Close,
// which makes deterministic the race in which the SDK closes the body (after
// the response headers arrived) before net/http has finished writing the
// request. drained is closed when that read returns.
type closingBody struct {
	r       *strings.Reader
	closed  chan struct{}
	drained chan struct{}
}

func newClosingBody(s string) *closingBody {
	return &closingBody{r: strings.NewReader(s), closed: make(chan struct{}), drained: make(chan struct{})}
}

func (b *closingBody) wait() bool {
	if b.r.Len() > 0 {
		return false
	}
	<-b.closed
	select {
	case <-b.drained:
	default:
		close(b.drained)
	}
	return true
}

func (b *closingBody) Read(p []byte) (int, error) {
	if b.wait() {
		return 0, io.EOF
	}
	return b.r.Read(p)
}

func (b *closingBody) WriteTo(w io.Writer) (int64, error) {
	if b.wait() {
		return 0, io.EOF
	}
	return b.r.WriteTo(w)
}

func (b *closingBody) Close() error {
	select {
	case <-b.closed:
	default:
		close(b.closed)
	}
	return nil
}

// closeSignalConn closes closed when the transport closes the connection.
type closeSignalConn struct {
	net.Conn
	once   sync.Once
	closed chan struct{}
}

func (c *closeSignalConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// roundTripFunc adapts a function to http.RoundTripper.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestHTTPClientKeepsStreamAlive shows why HTTPClient exists: over HTTP/1.1,
// net/http drains a request body past Content-Length with io.Copy, which
// calls WriteTo; an io.EOF from a body closed early makes it close the
// connection under the streaming response. HTTPClient hides WriteTo so the
// stream survives. If the bare case stops failing, net/http no longer needs
// the workaround.
func TestHTTPClientKeepsStreamAlive(t *testing.T) {
	for _, wrap := range []bool{false, true} {
		t.Run(fmt.Sprint("wrap=", wrap), func(t *testing.T) {
			release := make(chan struct{})
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.ReadAll(r.Body) // the whole request, then the response
				_, _ = io.WriteString(w, "first,")
				w.(http.Flusher).Flush()
				select {
				case <-release:
				case <-r.Context().Done():
				}
				_, _ = io.WriteString(w, "second")
			}))
			defer ts.Close()
			connClosed := make(chan struct{})
			tr := ts.Client().Transport.(*http.Transport).Clone()
			tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
				c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				return &closeSignalConn{Conn: c, closed: connClosed}, nil
			}
			defer tr.CloseIdleConnections()
			var sawWriterTo atomic.Bool
			var doer kinesis.HTTPClient = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
				_, ok := r.Body.(io.WriterTo)
				sawWriterTo.Store(ok)
				return tr.RoundTrip(r)
			})}
			if wrap {
				doer = HTTPClient(doer)
			}

			body := newClosingBody(`{"k":"v"}`)
			req, err := http.NewRequest(http.MethodPost, ts.URL, body)
			require.NoError(t, err)
			req.ContentLength = int64(body.r.Len())
			resp, err := doer.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			require.NoError(t, body.Close()) // what the SDK does once Do returns
			<-body.drained
			require.Equal(t, !wrap, sawWriterTo.Load())
			first := make([]byte, len("first,"))
			_, err = io.ReadFull(resp.Body, first)
			require.NoError(t, err)
			if !wrap {
				<-connClosed // net/http took the io.EOF for a write error
				close(release)
				_, err = io.ReadAll(resp.Body)
				require.ErrorIs(t, err, net.ErrClosed)
				return
			}
			close(release)
			rest, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			require.Equal(t, "first,second", string(first)+string(rest))
			select {
			case <-connClosed:
				t.Fatal("the transport closed the connection")
			default:
			}
		})
	}
}
