package kinesistest

import (
	"context"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// BenchmarkPutRecords stores batches of 500 100-byte records in 4 shards.
func BenchmarkPutRecords(b *testing.B) {
	ctx := context.Background()
	s := New(Options{})
	s.MustCreateStream("s", 4)
	recs := make([]types.PutRecordsRequestEntry, 500)
	for i := range recs {
		recs[i] = types.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprintf("pk-%d", i)), Data: make([]byte, 100)}
	}
	in := &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: recs}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.PutRecords(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(recs)), "ns/record")
}

// BenchmarkGetRecords reads 1,000 100-byte records per call from a shard
// holding 100,000.
func BenchmarkGetRecords(b *testing.B) {
	ctx := context.Background()
	s := New(Options{})
	s.MustCreateStream("s", 1)
	recs := make([]types.PutRecordsRequestEntry, 500)
	for i := range recs {
		recs[i] = types.PutRecordsRequestEntry{PartitionKey: aws.String("pk"), Data: make([]byte, 100)}
	}
	for i := 0; i < 200; i++ {
		if _, err := s.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: recs}); err != nil {
			b.Fatal(err)
		}
	}
	start, err := s.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("s"), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	if err != nil {
		b.Fatal(err)
	}
	it := start.ShardIterator
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for i := 0; i < b.N; i++ {
		out, err := s.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it, Limit: aws.Int32(1000)})
		if err != nil {
			b.Fatal(err)
		}
		n += len(out.Records)
		it = out.NextShardIterator
		if len(out.Records) == 0 {
			it = start.ShardIterator
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(max(n, 1)), "ns/record")
}
