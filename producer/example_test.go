package producer_test

import (
	"context"
	"fmt"

	"github.com/shardflow/shardflow/kinesistest"
	"github.com/shardflow/shardflow/producer"
)

func Example() {
	// Any *kinesis.Client works; the in-memory fake keeps the example
	// self-contained.
	srv := kinesistest.New(kinesistest.Options{})
	srv.MustCreateStream("orders", 4)

	p, err := producer.New(srv, "orders", producer.Config{})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	f, err := p.Put(ctx, "customer-42", []byte(`{"order":1}`))
	if err != nil {
		panic(err) // bad input, ErrBufferFull or ErrClosed
	}
	if err := p.Close(ctx); err != nil { // flushes and waits for every outcome
		panic(err)
	}
	res, err := f.Wait(ctx)
	fmt.Println(err == nil, res.ShardID != "", len(res.Attempts))
	// Output: true true 1
}

func ExampleProducer_PutRecord() {
	srv := kinesistest.New(kinesistest.Options{})
	srv.MustCreateStream("events", 2)
	p, _ := producer.New(srv, "events", producer.Config{OrderedByPartitionKey: true})
	ctx := context.Background()

	// The callback runs once per record on a producer goroutine.
	done := make(chan *producer.Result, 1)
	_, err := p.PutRecord(ctx, producer.Record{
		PartitionKey:    "device-7",
		ExplicitHashKey: "0", // route to the first shard
		Data:            []byte("temperature=21"),
	}, func(r *producer.Result) { done <- r })
	if err != nil {
		panic(err)
	}
	r := <-done
	fmt.Println(r.Err, r.ShardID)
	_ = p.Close(ctx)
	// Output: <nil> shardId-000000000000
}

func ExampleProducer_PutSync() {
	srv := kinesistest.New(kinesistest.Options{})
	srv.MustCreateStream("audit", 1)
	p, _ := producer.New(srv, "audit", producer.Config{})
	defer p.Close(context.Background())

	res, err := p.PutSync(context.Background(), producer.Record{PartitionKey: "user-1", Data: []byte("login")})
	fmt.Println(err, res.SequenceNumber != "")
	// Output: <nil> true
}
