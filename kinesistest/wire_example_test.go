package kinesistest_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardflow/shardflow/kinesistest"
)

// A real *kinesis.Client served in process: requests go through the SDK's
// serializers, signers and deserializers, and errors come back typed.
func ExampleServer_Client() {
	ctx := context.Background()
	srv := kinesistest.New(kinesistest.Options{})
	defer srv.Close()
	client := srv.Client()

	_, _ = client.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("orders"), ShardCount: aws.Int32(1)})
	put, _ := client.PutRecord(ctx, &kinesis.PutRecordInput{
		StreamName: aws.String("orders"), PartitionKey: aws.String("customer-42"), Data: []byte("hello"),
	})
	it, _ := client.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
		StreamName: aws.String("orders"), ShardId: put.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
	})
	out, _ := client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
	fmt.Println(string(out.Records[0].Data))

	_, err := client.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("missing")})
	var notFound *types.ResourceNotFoundException
	fmt.Println(errors.As(err, &notFound))
	// Output:
	// hello
	// true
}

// Enhanced fan-out through the SDK's event-stream reader.
func ExampleServer_Client_subscribeToShard() {
	ctx := context.Background()
	srv := kinesistest.New(kinesistest.Options{})
	defer srv.Close()
	client := srv.Client()

	arn := srv.MustCreateStream("orders", 1)
	reg, _ := client.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{
		StreamARN: aws.String(arn), ConsumerName: aws.String("billing"),
	})
	_, _ = client.PutRecord(ctx, &kinesis.PutRecordInput{
		StreamARN: aws.String(arn), PartitionKey: aws.String("k"), Data: []byte("pushed"),
	})

	sub, err := client.SubscribeToShard(ctx, &kinesis.SubscribeToShardInput{
		ConsumerARN:      reg.Consumer.ConsumerARN,
		ShardId:          aws.String("shardId-000000000000"),
		StartingPosition: &types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	stream := sub.GetStream()
	defer stream.Close()
	ev := (<-stream.Events()).(*types.SubscribeToShardEventStreamMemberSubscribeToShardEvent)
	fmt.Println(string(ev.Value.Records[0].Data), *ev.Value.MillisBehindLatest)
	// Output: pushed 0
}

// The same server over real HTTP, for tools and SDKs outside the process.
func ExampleServer_Handler() {
	srv := kinesistest.New(kinesistest.Options{})
	defer srv.Close()
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()

	client := kinesis.New(kinesis.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(ts.URL),
		Credentials:  aws.AnonymousCredentials{},
		HTTPClient:   kinesistest.HTTPClient(nil), // see Server.Handler
	})
	srv.MustCreateStream("orders", 3)
	out, err := client.ListShards(context.Background(), &kinesis.ListShardsInput{StreamName: aws.String("orders")})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(out.Shards))
	// Output: 3
}
