package kinesistest_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardflow/shardflow/clock"
	"github.com/shardflow/shardflow/kinesistest"
)

// The fake stands in for *kinesis.Client wherever code accepts an interface
// cut from it.
func ExampleNew() {
	ctx := context.Background()
	srv := kinesistest.New(kinesistest.Options{})
	defer srv.Close()
	srv.MustCreateStream("orders", 2)

	put, _ := srv.PutRecord(ctx, &kinesis.PutRecordInput{
		StreamName:   aws.String("orders"),
		PartitionKey: aws.String("customer-42"),
		Data:         []byte("hello"),
	})
	it, _ := srv.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
		StreamName:        aws.String("orders"),
		ShardId:           put.ShardId,
		ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
	})
	out, _ := srv.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
	fmt.Println(aws.ToString(put.ShardId), len(aws.ToString(put.SequenceNumber)), string(out.Records[0].Data))
	// Output: shardId-000000000001 56 hello
}

// Faults are injected per operation; errors are the SDK's own types.
func ExampleServer_FailNext() {
	ctx := context.Background()
	srv := kinesistest.New(kinesistest.Options{Seed: 1})
	srv.MustCreateStream("orders", 1)

	srv.FailNext(kinesistest.OpPutRecord, 1, &types.ProvisionedThroughputExceededException{Message: aws.String("slow down")})
	in := &kinesis.PutRecordInput{StreamName: aws.String("orders"), PartitionKey: aws.String("k"), Data: []byte("x")}
	_, err := srv.PutRecord(ctx, in)
	var throttled *types.ProvisionedThroughputExceededException
	fmt.Println(errors.As(err, &throttled))
	_, err = srv.PutRecord(ctx, in)
	fmt.Println(err)

	// Half of the entries of each PutRecords fail; the call succeeds.
	srv.FailRecords(0.5, "")
	res, _ := srv.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("orders"), Records: []types.PutRecordsRequestEntry{
		{PartitionKey: aws.String("a"), Data: []byte("1")},
		{PartitionKey: aws.String("b"), Data: []byte("2")},
		{PartitionKey: aws.String("c"), Data: []byte("3")},
		{PartitionKey: aws.String("d"), Data: []byte("4")},
	}})
	fmt.Println(aws.ToInt32(res.FailedRecordCount) < 4, len(srv.Records("orders", "shardId-000000000000"))+int(aws.ToInt32(res.FailedRecordCount)))
	// Output:
	// true
	// <nil>
	// true 5
}

// Iterators expire after five minutes on the injected clock.
func ExampleOptions_clock() {
	ctx := context.Background()
	clk := clock.NewFake(time.Time{})
	srv := kinesistest.New(kinesistest.Options{Clock: clk})
	srv.MustCreateStream("orders", 1)
	it, _ := srv.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
		StreamName:        aws.String("orders"),
		ShardId:           aws.String("shardId-000000000000"),
		ShardIteratorType: types.ShardIteratorTypeLatest,
	})
	clk.Advance(5*time.Minute + time.Second)
	_, err := srv.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
	var expired *types.ExpiredIteratorException
	fmt.Println(errors.As(err, &expired))
	// Output: true
}
