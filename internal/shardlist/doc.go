// Package shardlist pages through Kinesis ListShards for the producer's
// shard map and the consumer's shard sync.
//
//	shards, err := shardlist.All(ctx, client.ListShards, &kinesis.ListShardsInput{StreamName: &name})
package shardlist
