// Package shardflow is a Go library for Amazon Kinesis Data Streams that does
// what AWS's Java KPL (Kinesis Producer Library) and KCL (Kinesis Client
// Library) do, on aws-sdk-go-v2. This root package holds no code; the work is
// done by its packages. Every external service sits behind a small interface
// with the SDK's own method signatures, so *kinesis.Client, *dynamodb.Client
// and the in-memory fakes are interchangeable.
//
// # producer
//
// Buffers, aggregates (KPL format), rate-limits per shard, retries, and
// reports exactly one outcome per record:
//
//	p, _ := producer.New(kinesisClient, "orders", producer.Config{})
//	f, _ := p.Put(ctx, "customer-42", payload)
//	res, err := f.Wait(ctx) // shard id and sequence number, or a typed error
//	p.Close(ctx)
//
// # consumer
//
// A worker that processes every shard at least once and in order, sharing the
// shards with the rest of the fleet through a KCL-compatible lease table;
// polling or enhanced fan-out; follows resharding:
//
//	store, _ := lease.NewDynamoStore(ctx, dynamodbClient, "orders-app")
//	c, _ := consumer.New(kinesisClient, store, consumer.ProcessRecord(
//		func(ctx context.Context, shardID string, r consumer.Record) error { return handle(r.Data) }),
//		consumer.Config{ApplicationName: "orders-app", StreamName: "orders"})
//	go c.Run(ctx)
//	defer c.Shutdown(ctx) // checkpoint, hand the leases over, stop
//
// # aggregation
//
// The KPL aggregated record format, byte-compatible with KPL, KCL and
// aws-kinesis-agg:
//
//	blob, _ := aggregation.Marshal([]aggregation.Record{{PartitionKey: "k", Data: data}})
//	records, _ := aggregation.Unmarshal(blob)
//
// # lease and checkpoint
//
// Package lease keeps the lease table (DynamoDB or in memory) in KCL's layout
// and runs the coordinator that renews, takes, balances and releases leases,
// every write fenced by a condition on the lease counter. Package checkpoint
// has positions in a shard (sequence and sub-sequence number, or a sentinel)
// and the Checkpointer that record processors call.
//
// # kinesistest
//
// An in-memory Kinesis that behaves like the real service (resharding,
// iterator expiry, limits, fault injection, and the real wire protocol
// including SubscribeToShard) for tests without a network:
//
//	srv := kinesistest.New(kinesistest.Options{})
//	srv.MustCreateStream("orders", 4)
//	p, _ := producer.New(srv, "orders", producer.Config{})
package shardflow
