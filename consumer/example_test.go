package consumer_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/shardflow/shardflow/consumer"
	"github.com/shardflow/shardflow/kinesistest"
	"github.com/shardflow/shardflow/lease"
)

// A worker reading a stream with a per-record function. In production pass
// a *kinesis.Client and a lease.NewDynamoStore (or use NewWithDynamoDB);
// here both are in memory.
func Example() {
	ctx := context.Background()
	kc := kinesistest.New(kinesistest.Options{})
	kc.MustCreateStream("orders", 1)
	for _, d := range []string{"first", "second", "third"} {
		kc.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("orders"), PartitionKey: aws.String("k"), Data: []byte(d)})
	}

	seen := make(chan struct{}, 3)
	c, err := consumer.New(kc, lease.NewMemoryStore(),
		consumer.ProcessRecord(func(ctx context.Context, shardID string, r consumer.Record) error {
			fmt.Printf("%s %s\n", shardID, r.Data)
			seen <- struct{}{}
			return nil // an error would deliver the record again after a backoff
		}),
		consumer.Config{
			ApplicationName: "orders-app", // the lease table
			StreamName:      "orders",
			InitialPosition: consumer.InitialPosition{Type: consumer.TrimHorizon},
		})
	if err != nil {
		panic(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	for i := 0; i < 3; i++ {
		<-seen
	}
	// Checkpoint, release the leases, stop.
	if err := c.Shutdown(ctx); err != nil {
		panic(err)
	}
	fmt.Println("run:", <-done)
	// Output:
	// shardId-000000000000 first
	// shardId-000000000000 second
	// shardId-000000000000 third
	// run: <nil>
}

// A RecordProcessor with KCL's full lifecycle, checkpointing every batch.
type orderProcessor struct{ shardID string }

func (p *orderProcessor) Initialize(ctx context.Context, in consumer.InitializeInput) error {
	p.shardID = in.ShardID
	return nil
}

func (p *orderProcessor) ProcessRecords(ctx context.Context, in consumer.ProcessRecordsInput) error {
	for _, r := range in.Records {
		_ = r // handle r.Data; return an error to get the batch again
	}
	return in.Checkpointer.Checkpoint(ctx)
}

func (p *orderProcessor) LeaseLost(ctx context.Context, in consumer.LeaseLostInput) {}

func (p *orderProcessor) ShardEnded(ctx context.Context, in consumer.ShardEndedInput) error {
	return in.Checkpointer.Checkpoint(ctx) // required: lets the child shards start
}

func (p *orderProcessor) ShutdownRequested(ctx context.Context, in consumer.ShutdownRequestedInput) error {
	return in.Checkpointer.Checkpoint(ctx)
}

func ExampleProcessorFactoryFunc() {
	factory := consumer.ProcessorFactoryFunc(func(shardID string) consumer.RecordProcessor {
		return &orderProcessor{}
	})
	_, err := consumer.New(kinesistest.New(kinesistest.Options{}), lease.NewMemoryStore(), factory,
		consumer.Config{ApplicationName: "orders-app", StreamName: "orders", EnhancedFanOut: false})
	fmt.Println(err)
	// Output: <nil>
}

// One worker consuming two streams with one lease table (KCL's
// multi-stream mode). The stream set comes from a function the consumer
// calls again every StreamSyncInterval; each record's stream is passed
// along with it.
func Example_multiStream() {
	ctx := context.Background()
	kc := kinesistest.New(kinesistest.Options{})
	for _, s := range []string{"orders", "payments"} {
		kc.MustCreateStream(s, 1)
		kc.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String(s), PartitionKey: aws.String("k"), Data: []byte(s + "-1")})
	}
	trim := consumer.InitialPosition{Type: consumer.TrimHorizon}

	var mu sync.Mutex
	var got []string
	seen := make(chan struct{}, 2)
	c, err := consumer.New(kc, lease.NewMemoryStore(),
		consumer.ProcessStreamRecord(func(ctx context.Context, st consumer.StreamRef, shardID string, r consumer.Record) error {
			mu.Lock()
			got = append(got, fmt.Sprintf("%s/%s %s (lease %s)", st.Name, shardID, r.Data, st.LeaseKey))
			mu.Unlock()
			seen <- struct{}{}
			return nil
		}),
		consumer.Config{
			ApplicationName: "billing", // one lease table for both streams
			Streams: func(context.Context) ([]consumer.StreamConfig, error) {
				return []consumer.StreamConfig{
					{Name: "orders", InitialPosition: &trim, ID: lease.StreamIdentifier{AccountID: "123456789012", StreamName: "orders", CreationEpoch: 1700000000}},
					{Name: "payments", InitialPosition: &trim, ID: lease.StreamIdentifier{AccountID: "123456789012", StreamName: "payments", CreationEpoch: 1700000000}},
				}, nil
			},
			FormerStreamsDeleteAfter: time.Hour, // leases of a stream gone for an hour are deleted
			LeaseInitialTakeDelay:    -1,        // a lone worker: take every lease in the first pass
		})
	if err != nil {
		panic(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	<-seen
	<-seen
	if err := c.Shutdown(ctx); err != nil {
		panic(err)
	}
	fmt.Println("run:", <-done)
	slices.Sort(got)
	for _, g := range got {
		fmt.Println(g)
	}
	// Output:
	// run: <nil>
	// orders/shardId-000000000000 orders-1 (lease 123456789012:orders:1700000000:shardId-000000000000)
	// payments/shardId-000000000000 payments-1 (lease 123456789012:payments:1700000000:shardId-000000000000)
}
