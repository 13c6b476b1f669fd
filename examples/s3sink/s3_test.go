package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"maps"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/stretchr/testify/require"
)

// fakeS3 starts gofakes3, a real S3 REST API server, on 127.0.0.1 for the
// test, and returns an aws-sdk-go-v2 client for it with bucket created.
// The sink talks to it over HTTP exactly as to AWS.
func fakeS3(t testing.TB, bucket string) *s3.Client {
	t.Helper()
	faker := gofakes3.New(s3mem.New(), gofakes3.WithLogger(gofakes3.DiscardLog()))
	srv := httptest.NewServer(faker.Server())
	t.Cleanup(srv.Close)
	return fakeS3At(t, srv.URL, bucket)
}

// fakeS3At returns a client for the S3 server at url, with bucket created.
func fakeS3At(t testing.TB, url, bucket string) *s3.Client {
	t.Helper()
	c := newS3Client(aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
	}, url)
	_, err := c.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(bucket)})
	require.NoError(t, err)
	return c
}

// object is one object read back from S3.
type object struct {
	Key  string
	Body []byte
	ETag string
}

// listAll reads every object under prefix back, in key order.
func listAll(t testing.TB, c *s3.Client, bucket, prefix string) []object {
	t.Helper()
	ctx := context.Background()
	var objs []object
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		require.NoError(t, err)
		for _, o := range page.Contents {
			out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: o.Key})
			require.NoError(t, err)
			body, err := io.ReadAll(out.Body)
			out.Body.Close()
			require.NoError(t, err)
			objs = append(objs, object{Key: aws.ToString(o.Key), Body: body, ETag: aws.ToString(o.ETag)})
		}
	}
	sort.Slice(objs, func(i, j int) bool { return objs[i].Key < objs[j].Key })
	return objs
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestUploadSingleAndMultipart(t *testing.T) {
	c := fakeS3(t, "bkt")
	ctx := context.Background()
	small := bytes.Repeat([]byte("a"), 100)
	big := make([]byte, 2*MinPartSize+12345)
	for i := range big {
		big[i] = byte(i * 7)
	}
	cs := &countingS3{S3: c}
	require.NoError(t, upload(ctx, cs, "bkt", "small", "text/plain", small, MinPartSize))
	require.Equal(t, map[string]int{"PutObject": 1}, cs.snapshot())
	require.NoError(t, upload(ctx, cs, "bkt", "big", "application/octet-stream", big, MinPartSize))
	require.Equal(t, map[string]int{"PutObject": 1, "CreateMultipartUpload": 1, "UploadPart": 3, "CompleteMultipartUpload": 1}, cs.snapshot())
	objs := listAll(t, c, "bkt", "")
	require.Len(t, objs, 2)
	require.Equal(t, "big", objs[0].Key)
	require.Equal(t, big, objs[0].Body)
	require.Equal(t, small, objs[1].Body)

	// Writing a key again replaces it whole.
	require.NoError(t, upload(ctx, c, "bkt", "big", "application/octet-stream", small, MinPartSize))
	objs = listAll(t, c, "bkt", "big")
	require.Equal(t, small, objs[0].Body)
}

// countingS3 counts the calls that reach S3 by operation. before, when
// set, runs first and its error fails the call without sending it; after
// runs when a call succeeded and its error replaces the result (the call
// landed, the caller sees a failure: a crash right after an upload).
type countingS3 struct {
	S3
	before func(op, key string) error
	after  func(op, key string) error
	mu     sync.Mutex
	calls  map[string]int
}

func (c *countingS3) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.calls)
}

func call[O any](c *countingS3, op string, key *string, f func() (O, error)) (O, error) {
	var zero O
	if c.before != nil {
		if err := c.before(op, aws.ToString(key)); err != nil {
			return zero, err
		}
	}
	out, err := f()
	if err != nil {
		return out, err
	}
	c.mu.Lock()
	if c.calls == nil {
		c.calls = map[string]int{}
	}
	c.calls[op]++
	c.mu.Unlock()
	if c.after != nil {
		if err := c.after(op, aws.ToString(key)); err != nil {
			return zero, err
		}
	}
	return out, nil
}

func (c *countingS3) PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	return call(c, "PutObject", in.Key, func() (*s3.PutObjectOutput, error) { return c.S3.PutObject(ctx, in, optFns...) })
}

func (c *countingS3) CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, optFns ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error) {
	return call(c, "CreateMultipartUpload", in.Key, func() (*s3.CreateMultipartUploadOutput, error) { return c.S3.CreateMultipartUpload(ctx, in, optFns...) })
}

func (c *countingS3) UploadPart(ctx context.Context, in *s3.UploadPartInput, optFns ...func(*s3.Options)) (*s3.UploadPartOutput, error) {
	return call(c, "UploadPart", in.Key, func() (*s3.UploadPartOutput, error) { return c.S3.UploadPart(ctx, in, optFns...) })
}

func (c *countingS3) CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, optFns ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error) {
	return call(c, "CompleteMultipartUpload", in.Key, func() (*s3.CompleteMultipartUploadOutput, error) {
		return c.S3.CompleteMultipartUpload(ctx, in, optFns...)
	})
}

func (c *countingS3) AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, optFns ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error) {
	return call(c, "AbortMultipartUpload", in.Key, func() (*s3.AbortMultipartUploadOutput, error) { return c.S3.AbortMultipartUpload(ctx, in, optFns...) })
}

func (c *countingS3) DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, optFns ...func(*s3.Options)) (*s3.DeleteObjectOutput, error) {
	return call(c, "DeleteObject", in.Key, func() (*s3.DeleteObjectOutput, error) { return c.S3.DeleteObject(ctx, in, optFns...) })
}

func itoa(i int) string { return strconv.Itoa(i) }

// AWS_ENDPOINT_URL_S3 alone aims the client at a local server, with
// path-style addressing (a virtual-hosted bucket.127.0.0.1 name would not
// resolve).
func TestS3EndpointFromEnvironment(t *testing.T) {
	srv := httptest.NewServer(gofakes3.New(s3mem.New(), gofakes3.WithLogger(gofakes3.DiscardLog())).Server())
	t.Cleanup(srv.Close)
	// A host name, not an IP address: the SDK picks path-style by itself
	// for IP endpoints only.
	t.Setenv("AWS_ENDPOINT_URL_S3", strings.Replace(srv.URL, "127.0.0.1", "localhost", 1))
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_REGION", "eu-west-1")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	cfg, err := config.LoadDefaultConfig(context.Background())
	require.NoError(t, err)
	c := newS3Client(cfg, "")
	_, err = c.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String("env-bucket")})
	require.NoError(t, err)
	require.NoError(t, upload(context.Background(), c, "env-bucket", "k", "text/plain", []byte("v"), MinPartSize))
	objs := listAll(t, c, "env-bucket", "")
	require.Len(t, objs, 1)
	require.Equal(t, "v", string(objs[0].Body))
}

// stuckAbortS3 fails a multipart upload's first part because the caller's
// context ended (a shutdown), and then never answers AbortMultipartUpload
// until the abort's own context ends: an S3 endpoint that accepts the
// connection and hangs.
type stuckAbortS3 struct {
	S3
	cancel   context.CancelFunc
	abortErr chan error
}

func (s *stuckAbortS3) CreateMultipartUpload(context.Context, *s3.CreateMultipartUploadInput, ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error) {
	return &s3.CreateMultipartUploadOutput{UploadId: aws.String("u1")}, nil
}

func (s *stuckAbortS3) UploadPart(ctx context.Context, _ *s3.UploadPartInput, _ ...func(*s3.Options)) (*s3.UploadPartOutput, error) {
	s.cancel()
	return nil, ctx.Err()
}

func (s *stuckAbortS3) AbortMultipartUpload(ctx context.Context, _ *s3.AbortMultipartUploadInput, _ ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error) {
	<-ctx.Done()
	s.abortErr <- ctx.Err()
	return nil, ctx.Err()
}

// The abort of a failed multipart upload outlives the caller's context
// (its parts would be billed forever otherwise) but not forever: a hung
// endpoint must not keep a shard's processor, and so the consumer's
// Shutdown, from returning. In a synctest bubble, so the bound passes in
// fake time.
func TestMultipartAbortIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		s := &stuckAbortS3{cancel: cancel, abortErr: make(chan error, 1)}
		err := upload(ctx, s, "bkt", "k", "application/octet-stream", make([]byte, MinPartSize+1), MinPartSize)
		require.ErrorIs(t, err, context.Canceled)
		require.ErrorContains(t, err, "abort failed too")
		require.ErrorIs(t, <-s.abortErr, context.DeadlineExceeded)
	})
}
