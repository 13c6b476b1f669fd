package shardlist

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// Lister is one ListShards call; (*kinesis.Client).ListShards, with its
// options left out, is one.
type Lister func(ctx context.Context, in *kinesis.ListShardsInput) (*kinesis.ListShardsOutput, error)

// All returns every shard listed for in, following NextToken until the
// last page. A page's error ends it, returned as is. The pages after the
// first carry only NextToken: Kinesis refuses a request that names the
// stream (or a filter) beside a token.
func All(ctx context.Context, list Lister, in *kinesis.ListShardsInput) ([]types.Shard, error) {
	var shards []types.Shard
	for {
		out, err := list(ctx, in)
		if err != nil {
			return nil, err
		}
		shards = append(shards, out.Shards...)
		if out.NextToken == nil || *out.NextToken == "" {
			return shards, nil
		}
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
}
