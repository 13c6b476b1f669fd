package shardlist

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/kinesistest"
)

func TestAllPages(t *testing.T) {
	srv := kinesistest.New(kinesistest.Options{})
	srv.MustCreateStream("s", 7)
	var calls []*kinesis.ListShardsInput
	list := func(ctx context.Context, in *kinesis.ListShardsInput) (*kinesis.ListShardsOutput, error) {
		calls = append(calls, in)
		paged := *in
		paged.MaxResults = aws.Int32(3)
		return srv.ListShards(ctx, &paged)
	}
	shards, err := All(context.Background(), list, &kinesis.ListShardsInput{StreamName: aws.String("s")})
	require.NoError(t, err)
	require.Len(t, shards, 7)
	for i, s := range shards {
		require.Equal(t, fmt.Sprintf("shardId-%012d", i), aws.ToString(s.ShardId))
	}
	require.Len(t, calls, 3, "pages of 3, 3 and 1")
	for _, in := range calls[1:] {
		require.NotNil(t, in.NextToken)
		require.Nil(t, in.StreamName, "the stream is not named beside a token")
	}
}

func TestAllError(t *testing.T) {
	boom := &types.LimitExceededException{Message: aws.String("slow")}
	n := 0
	list := func(context.Context, *kinesis.ListShardsInput) (*kinesis.ListShardsOutput, error) {
		n++
		if n == 2 {
			return nil, boom
		}
		return &kinesis.ListShardsOutput{Shards: []types.Shard{{}}, NextToken: aws.String("t")}, nil
	}
	shards, err := All(context.Background(), list, &kinesis.ListShardsInput{StreamName: aws.String("s")})
	require.True(t, errors.Is(err, boom))
	require.Nil(t, shards)
}
