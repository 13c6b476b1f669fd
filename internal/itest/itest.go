// Package itest gives integration tests (build tag `integration`) clients for
// the real emulators that .ci/emulators.sh starts: kinesalite, kinesis-mock
// and dynalite. A test that needs an emulator whose endpoint is not set is
// skipped locally and fails under CI (CI=true), so CI can never pass by
// skipping.
//
//	client := itest.Kinesis(t, itest.Kinesalite)
//	stream := itest.Name("producer") // unique per run
//	itest.CreateStream(t, client, stream, 4)
package itest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
)

// Emulator names a real service emulator.
type Emulator string

const (
	Kinesalite  Emulator = "kinesalite"   // SHARDFLOW_KINESALITE_ENDPOINT
	KinesisMock Emulator = "kinesis-mock" // SHARDFLOW_KINESIS_MOCK_ENDPOINT
	Dynalite    Emulator = "dynalite"     // SHARDFLOW_DYNALITE_ENDPOINT
)

// KinesisEmulators lists the Kinesis emulators conformance suites run against.
var KinesisEmulators = []Emulator{Kinesalite, KinesisMock}

func (e Emulator) envVar() string {
	switch e {
	case Kinesalite:
		return "SHARDFLOW_KINESALITE_ENDPOINT"
	case KinesisMock:
		return "SHARDFLOW_KINESIS_MOCK_ENDPOINT"
	case Dynalite:
		return "SHARDFLOW_DYNALITE_ENDPOINT"
	}
	panic("itest: unknown emulator " + string(e))
}

// Endpoint returns the emulator's endpoint, skipping the test (or failing it
// under CI) when it is not configured.
func Endpoint(t testing.TB, e Emulator) string {
	t.Helper()
	ep := os.Getenv(e.envVar())
	if ep == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not set under CI: .ci/run must start %s", e.envVar(), e)
		}
		t.Skipf("%s not set; run `source .ci/emulators.sh && emulators_start` first", e.envVar())
	}
	return ep
}

// AWSConfig returns a configuration with static credentials and us-east-1
// aimed at the emulator's endpoint, with the SDK's retries kept (the
// emulators throttle like the real services).
func AWSConfig(endpoint string) aws.Config {
	return aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIAEXAMPLE", "secret", ""),
		BaseEndpoint: aws.String(endpoint),
	}
}

// Kinesis returns a real SDK client for a Kinesis emulator.
func Kinesis(t testing.TB, e Emulator) *kinesis.Client {
	t.Helper()
	return kinesis.NewFromConfig(AWSConfig(Endpoint(t, e)))
}

// DynamoDB returns a real SDK client for dynalite.
func DynamoDB(t testing.TB) *dynamodb.Client {
	t.Helper()
	return dynamodb.NewFromConfig(AWSConfig(Endpoint(t, Dynalite)))
}

// NodeModules returns the folder where aws-kinesis-agg is installed.
func NodeModules(t testing.TB) string {
	t.Helper()
	nm := os.Getenv("SHARDFLOW_NODE_MODULES")
	if nm == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("SHARDFLOW_NODE_MODULES is not set under CI")
		}
		t.Skip("SHARDFLOW_NODE_MODULES not set; run `source .ci/emulators.sh && emulators_start` first")
	}
	return nm
}

// Name returns a unique resource name (stream, table) for one test, so tests
// can share one emulator process and run in parallel.
func Name(prefix string) string {
	return fmt.Sprintf("%s-%d-%06d", prefix, time.Now().UnixNano()%1e9, rand.IntN(1e6))
}

// CreateStream creates a stream and waits until it is ACTIVE; it deletes it
// when the test ends.
func CreateStream(t testing.TB, c *kinesis.Client, name string, shards int32) {
	t.Helper()
	// No deadline of its own: go test -timeout bounds a hang, and a slow
	// emulator must not fail the test.
	ctx := context.Background()
	if _, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(shards)}); err != nil {
		t.Fatalf("create stream %s: %v", name, err)
	}
	w := kinesis.NewStreamExistsWaiter(c, func(o *kinesis.StreamExistsWaiterOptions) {
		o.MinDelay, o.MaxDelay = 50*time.Millisecond, 500*time.Millisecond
	})
	if err := w.Wait(ctx, &kinesis.DescribeStreamInput{StreamName: aws.String(name)}, time.Hour); err != nil {
		t.Fatalf("wait for stream %s: %v", name, err)
	}
	t.Cleanup(func() {
		_, _ = c.DeleteStream(context.Background(), &kinesis.DeleteStreamInput{StreamName: aws.String(name)})
	})
}

// Soak reports whether long soak and chaos runs were asked for
// (SHARDFLOW_SOAK set, as .ci/run does, and not -short). Tests use it to pick
// their size: `go test ./...` stays quick, CI runs the long path.
func Soak() bool {
	return os.Getenv("SHARDFLOW_SOAK") != "" && !testing.Short()
}
