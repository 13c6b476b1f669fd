package kinesistest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	smithy "github.com/aws/smithy-go"
)

// Wire protocol constants of Kinesis Data Streams (awsJson1.1).
const (
	targetPrefix           = "Kinesis_20131202."
	jsonContentType        = "application/x-amz-json-1.1"
	eventStreamContentType = "application/vnd.amazon.eventstream"

	// clientEndpoint is the base endpoint of clients returned by Client. The
	// transport never dials it; a name that cannot resolve makes sure a
	// client whose HTTPClient was swapped out never reaches AWS by accident.
	clientEndpoint = "http://kinesistest.invalid"

	// maxRequestBody bounds a request body: a full PutRecords (5 MiB of data
	// and keys) base64-encoded with its JSON framing stays well below it.
	maxRequestBody = 16 << 20
)

// Client returns a real *kinesis.Client whose requests are served in
// process by s over the Kinesis wire protocol (no sockets): requests are
// signed, serialized and deserialized by the SDK exactly as against AWS, so
// code under test exercises the SDK's real paths, including the
// SubscribeToShard event stream. The client uses region us-east-1, static
// credentials and the SDK's default retryer; optFns override any of it, for
// example
//
//	s.Client(func(o *kinesis.Options) { o.Retryer = aws.NopRetryer{} })
//
// to see throttling errors instead of retrying them.
//
// The pinned SDK shares one event-stream decoder between all
// SubscribeToShard streams of a client without synchronization
// (aws/smithy-go#714), which `go test -race` reports as soon as two
// subscriptions of one client overlap, against AWS as against s. Give each
// SubscribeToShard call its own protocol instance:
//
//	client.SubscribeToShard(ctx, in, func(o *kinesis.Options) {
//		o.Protocol = awsjson.New11(schemas.Kinesis_20131202)
//	})
//
// (awsjson is github.com/aws/smithy-go/transport/http/protocol/awsjson,
// schemas is github.com/aws/aws-sdk-go-v2/service/kinesis/schemas).
func (s *Server) Client(optFns ...func(*kinesis.Options)) *kinesis.Client {
	opts := kinesis.Options{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIAKINESISTEST", "kinesistest", ""),
		BaseEndpoint: aws.String(clientEndpoint),
		HTTPClient:   &http.Client{Transport: &inProcessTransport{handler: s.Handler()}},
	}
	return kinesis.New(opts, optFns...)
}

// Handler returns an http.Handler serving s over the Kinesis awsJson1.1
// protocol (POST /, X-Amz-Target: Kinesis_20131202.<Operation>), including
// SubscribeToShard as an application/vnd.amazon.eventstream response. Put it
// behind httptest.NewServer to point any SDK or tool at s:
//
//	ts := httptest.NewServer(s.Handler())
//	defer ts.Close()
//	cfg.BaseEndpoint = aws.String(ts.URL)
//
// Requests are not authenticated; signatures are ignored.
//
// Over plain HTTP (HTTP/1.1), give the SDK client an HTTPClient wrapped by
// [HTTPClient]:
//
//	cfg.HTTPClient = kinesistest.HTTPClient(nil)
//
// Without it, a SubscribeToShard event stream over HTTP/1.1 now and then dies
// right after it starts with "use of closed network connection". The pinned
// smithy-go closes the request body as soon as the HTTP client's Do returns
// (transport/http.ClientHandler), and its body wrapper then answers WriteTo
// with io.EOF where io.WriterTo requires a nil error. When net/http has not
// yet finished writing the request (after Content-Length bytes it checks for
// more with io.Copy, which prefers WriteTo), it takes that io.EOF for a write
// failure and closes the connection under the streaming response; a unary
// call usually just loses its keep-alive connection. The server is not at
// fault (it reads the whole request before answering, as any server may), so
// this happens against any HTTP/1.1 endpoint, emulators included. HTTP/2,
// which real AWS speaks for SubscribeToShard, reads request bodies with Read
// and is not affected.
func (s *Server) Handler() http.Handler {
	return &wireHandler{
		s:   s,
		ops: wireOperations(s),
	}
}

// HTTPClient wraps next (the SDK's default HTTP client when nil) so that
// request bodies reach net/http with Read and Close only, which keeps
// HTTP/1.1 connections alive under the SDK's early request-body Close (see
// [Server.Handler]). Use it for SDK clients that reach a Handler, or any
// other HTTP/1.1 Kinesis endpoint, over plain HTTP:
//
//	client := kinesis.New(kinesis.Options{
//		BaseEndpoint: aws.String(ts.URL),
//		HTTPClient:   kinesistest.HTTPClient(nil),
//		// ...
//	})
func HTTPClient(next kinesis.HTTPClient) kinesis.HTTPClient {
	if next == nil {
		next = awshttp.NewBuildableClient()
	}
	return readOnlyBodyClient{next: next}
}

type readOnlyBodyClient struct{ next kinesis.HTTPClient }

func (c readOnlyBodyClient) Do(req *http.Request) (*http.Response, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return c.next.Do(req)
	}
	r := new(http.Request)
	*r = *req
	r.Body = readOnlyBody{req.Body}
	return c.next.Do(r)
}

// readOnlyBody hides every method of a request body but Read and Close, in
// particular the SDK body's WriteTo, which fails with io.EOF once closed.
// Read after Close returns a clean io.EOF.
type readOnlyBody struct{ rc io.ReadCloser }

func (b readOnlyBody) Read(p []byte) (int, error) { return b.rc.Read(p) }
func (b readOnlyBody) Close() error               { return b.rc.Close() }

// wireOp decodes an operation's input from body, calls s and returns the
// output shape to encode.
type wireOp func(ctx context.Context, body []byte) (any, error)

func bindOp[I, O any](call func(context.Context, *I, ...func(*kinesis.Options)) (*O, error)) wireOp {
	return func(ctx context.Context, body []byte) (any, error) {
		in := new(I)
		if err := unmarshalShape(body, in); err != nil {
			return nil, &smithy.GenericAPIError{Code: "SerializationException", Message: err.Error()}
		}
		out, err := call(ctx, in)
		if err != nil {
			return nil, err
		}
		if out == nil {
			return new(O), nil
		}
		return out, nil
	}
}

func wireOperations(s *Server) map[string]wireOp {
	return map[string]wireOp{
		"CreateStream":             bindOp(s.CreateStream),
		"DeleteStream":             bindOp(s.DeleteStream),
		"DescribeStream":           bindOp(s.DescribeStream),
		"DescribeStreamSummary":    bindOp(s.DescribeStreamSummary),
		"ListStreams":              bindOp(s.ListStreams),
		"ListShards":               bindOp(s.ListShards),
		"PutRecord":                bindOp(s.PutRecord),
		"PutRecords":               bindOp(s.PutRecords),
		"GetShardIterator":         bindOp(s.GetShardIterator),
		"GetRecords":               bindOp(s.GetRecords),
		"SplitShard":               bindOp(s.SplitShard),
		"MergeShards":              bindOp(s.MergeShards),
		"UpdateShardCount":         bindOp(s.UpdateShardCount),
		"RegisterStreamConsumer":   bindOp(s.RegisterStreamConsumer),
		"DescribeStreamConsumer":   bindOp(s.DescribeStreamConsumer),
		"ListStreamConsumers":      bindOp(s.ListStreamConsumers),
		"DeregisterStreamConsumer": bindOp(s.DeregisterStreamConsumer),
	}
}

type wireHandler struct {
	s   *Server
	ops map[string]wireOp
}

var requestIDs atomic.Uint64

func (h *wireHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Amzn-RequestId", "kinesistest-"+strconv.FormatUint(requestIDs.Add(1), 10))
	if r.Method != http.MethodPost {
		writeWireError(w, &smithy.GenericAPIError{
			Code:    "UnknownOperationException",
			Message: "kinesistest: only POST is supported, got " + r.Method,
		})
		return
	}
	target := r.Header.Get("X-Amz-Target")
	name, ok := strings.CutPrefix(target, targetPrefix)
	if !ok {
		writeWireError(w, &smithy.GenericAPIError{
			Code:    "UnknownOperationException",
			Message: fmt.Sprintf("kinesistest: X-Amz-Target %q is not a %s operation", target, strings.TrimSuffix(targetPrefix, ".")),
		})
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody+1))
	if err != nil {
		writeWireError(w, &smithy.GenericAPIError{Code: "SerializationException", Message: "kinesistest: reading request body: " + err.Error()})
		return
	}
	if len(body) > maxRequestBody {
		writeWireError(w, &smithy.GenericAPIError{Code: "SerializationException", Message: "kinesistest: request body too large"})
		return
	}
	if name == "SubscribeToShard" {
		h.s.serveSubscribeToShard(w, r, body)
		return
	}
	op, ok := h.ops[name]
	if !ok {
		writeWireError(w, &smithy.GenericAPIError{
			Code:    "UnknownOperationException",
			Message: "kinesistest: operation " + name + " is not implemented",
		})
		return
	}
	out, err := op(r.Context(), body)
	if err != nil {
		writeWireError(w, err)
		return
	}
	payload, err := marshalShape(out)
	if err != nil {
		writeWireError(w, fmt.Errorf("kinesistest: encoding %s output: %w", name, err))
		return
	}
	w.Header().Set("Content-Type", jsonContentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(payload)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(payload)
}

// wireError is the awsJson error body the SDK turns back into a typed error:
// __type names the error shape, message fills its Message field.
type wireError struct {
	Type    string `json:"__type"`
	Message string `json:"message,omitempty"`
}

// errorCode returns the wire error code, message and HTTP status for err.
// SDK typed errors keep their code; anything else is an internal failure.
func errorCode(err error) (code, message string, status int) {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		status = http.StatusBadRequest
		if apiErr.ErrorFault() == smithy.FaultServer {
			status = http.StatusInternalServerError
		}
		return apiErr.ErrorCode(), apiErr.ErrorMessage(), status
	}
	return "InternalFailure", err.Error(), http.StatusInternalServerError
}

func writeWireError(w http.ResponseWriter, err error) {
	code, message, status := errorCode(err)
	payload, _ := json.Marshal(wireError{Type: code, Message: message})
	w.Header().Set("Content-Type", jsonContentType)
	w.Header().Set("X-Amzn-ErrorType", code)
	w.Header().Set("Content-Length", strconv.Itoa(len(payload)))
	w.WriteHeader(status)
	_, _ = w.Write(payload)
}

// inProcessTransport is an http.RoundTripper that serves each request by
// calling an http.Handler in a goroutine, streaming the response body
// through a pipe so event-stream responses arrive as they are written.
// Closing the response body (or cancelling the request's context) cancels
// the handler's context, and Close returns only after the handler has
// returned, so no goroutine outlives the response.
type inProcessTransport struct {
	handler http.Handler
}

func (t *inProcessTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancel(req.Context())
	sreq := req.Clone(ctx)
	if sreq.Body == nil {
		sreq.Body = http.NoBody
	}
	if sreq.RemoteAddr == "" {
		sreq.RemoteAddr = "127.0.0.1:0"
	}
	if sreq.RequestURI == "" {
		sreq.RequestURI = req.URL.RequestURI()
	}
	pr, pw := io.Pipe()
	rw := &pipeResponseWriter{header: make(http.Header), pw: pw, ready: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer cancel()
		defer sreq.Body.Close()
		t.handler.ServeHTTP(rw, sreq)
		rw.WriteHeader(http.StatusOK) // no-op when the handler wrote one
		_ = pw.Close()
	}()

	gaveUp := false
	select {
	case <-rw.ready:
		// The caller may have given up as the handler answered, perhaps
		// because the handler saw that and answered with it (a 500
		// "context canceled"): the caller gets its own error, as from a
		// network client whose ctx ended before the response.
		gaveUp = req.Context().Err() != nil
	case <-ctx.Done():
		gaveUp = true
	}
	if gaveUp {
		// Stop the handler and wait for it.
		cancel()
		_ = pr.CloseWithError(ctx.Err())
		<-done
		return nil, ctx.Err()
	}
	return &http.Response{
		Status:        fmt.Sprintf("%d %s", rw.status, http.StatusText(rw.status)),
		StatusCode:    rw.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        rw.sent,
		Body:          &pipeBody{pr: pr, cancel: cancel, done: done},
		ContentLength: contentLength(rw.sent),
		Request:       req,
	}, nil
}

func contentLength(h http.Header) int64 {
	if v := h.Get("Content-Length"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return n
		}
	}
	return -1
}

// pipeResponseWriter is the handler's side of inProcessTransport.
type pipeResponseWriter struct {
	header http.Header
	pw     *io.PipeWriter

	once   sync.Once
	ready  chan struct{} // closed once status and sent are set
	status int
	sent   http.Header
}

func (w *pipeResponseWriter) Header() http.Header { return w.header }

func (w *pipeResponseWriter) WriteHeader(status int) {
	w.once.Do(func() {
		w.status = status
		w.sent = w.header.Clone()
		close(w.ready)
	})
}

func (w *pipeResponseWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.pw.Write(p)
}

// Flush implements http.Flusher; writes reach the reader directly, so there
// is nothing to flush.
func (w *pipeResponseWriter) Flush() { w.WriteHeader(http.StatusOK) }

// pipeBody is the client's side of inProcessTransport.
type pipeBody struct {
	pr     *io.PipeReader
	cancel context.CancelFunc
	done   <-chan struct{}
	once   sync.Once
}

func (b *pipeBody) Read(p []byte) (int, error) { return b.pr.Read(p) }

func (b *pipeBody) Close() error {
	b.once.Do(func() {
		b.cancel()
		_ = b.pr.Close()
		<-b.done
	})
	return nil
}
