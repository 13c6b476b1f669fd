//go:build integration

package main

import (
	"context"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/internal/itest"
	"github.com/shardflow/shardflow/lease"
	"github.com/shardflow/shardflow/producer"
)

// The end-to-end scenario on kinesalite and dynalite: the lease table, its
// conditional writes and the pending checkpoint are DynamoDB's, the shard
// split kinesalite's.
func TestEndToEndAgainstEmulators(t *testing.T) {
	kc := itest.Kinesis(t, itest.Kinesalite)
	ddb := itest.DynamoDB(t)
	stream, app := itest.Name("s3sink"), itest.Name("s3sink-app")
	itest.CreateStream(t, kc, stream, 2)
	ctx := t.Context() // go test -timeout is the only bound
	store, err := lease.NewDynamoStore(ctx, ddb, app)
	require.NoError(t, err)
	runE2E(t, e2eEnv{kinesis: kc, store: store, stream: stream, app: app, phase1: 600, phase2: 1200})
}

// The README's -target aws command against kinesalite, dynalite and an S3
// server, all reached through the SDK's AWS_ENDPOINT_URL_<SERVICE>
// variables, as against AWS.
func TestRunAgainstEmulators(t *testing.T) {
	kc := itest.Kinesis(t, itest.Kinesalite)
	stream, app := itest.Name("s3sink"), itest.Name("s3sink-run")
	itest.CreateStream(t, kc, stream, 2)
	s3srv := httptest.NewServer(gofakes3.New(s3mem.New(), gofakes3.WithLogger(gofakes3.DiscardLog())).Server())
	t.Cleanup(s3srv.Close)
	client := fakeS3At(t, s3srv.URL, bucket)
	t.Setenv("AWS_ENDPOINT_URL_KINESIS", itest.Endpoint(t, itest.Kinesalite))
	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", itest.Endpoint(t, itest.Dynalite))
	t.Setenv("AWS_ENDPOINT_URL_S3", s3srv.URL)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))

	ctx := t.Context() // go test -timeout is the only bound
	const total = 300
	p, err := producer.New(kc, stream, producer.Config{Logger: quietLogger()})
	require.NoError(t, err)
	for i := range total {
		data := `{"id":` + itoa(i) + `,"name":"r","ts":1796108400000}`
		if i%30 == 29 {
			data = "{broken"
		}
		_, err := p.Put(ctx, itoa(i), []byte(data))
		require.NoError(t, err)
	}
	require.NoError(t, p.Close(ctx))

	// Run the command until the records are consumed; its graceful
	// shutdown at the end of -duration delivers the buffers (the interval
	// is far away), so the lake is complete when run returns.
	o := options{target: "aws", stream: stream, app: app, bucket: bucket, errorPrefix: DefaultErrorPrefix,
		partitioning: "hive", schema: e2eSchema, bufferMiB: 128, bufferInterval: DefaultBufferInterval,
		initialPos: "trim_horizon", progress: time.Hour, idleTimeReads: 200 * time.Millisecond, failoverTime: 2 * time.Second}
	// Each run resumes from the checkpoints the last one left; one too
	// short to deliver everything (a slow machine) is followed by one twice
	// as long, so go test -timeout is the only bound.
	for d := 5 * time.Second; ; d *= 2 {
		runCtx, stop := context.WithTimeout(ctx, d)
		err := run(runCtx, o, quietLogger())
		stop()
		if errors.Is(err, context.DeadlineExceeded) {
			continue // ended while setting up (the lease table)
		}
		require.NoError(t, err)
		rows, errs := lakeContents(t, client)
		if len(rows)+len(errs) >= total {
			require.Len(t, rows, total-total/30)
			require.Len(t, errs, total/30)
			for _, e := range errs {
				require.True(t, strings.HasPrefix(e, "{broken"))
			}
			return
		}
		t.Logf("after a run of %v: %d rows, %d errors; again, longer", d, len(rows), len(errs))
	}
}
