//go:build integration

package main

import (
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/aggregation"
	"github.com/shardflow/shardflow/internal/itest"
)

// The README's real-endpoint command, against kinesalite: -target aws with
// -endpoint, credentials and region from the environment.
func TestRunAgainstKinesalite(t *testing.T) {
	endpoint := itest.Endpoint(t, itest.Kinesalite)
	kc := itest.Kinesis(t, itest.Kinesalite)
	stream := itest.Name("agent")
	itest.CreateStream(t, kc, stream, 2)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))

	dir := t.TempDir()
	lines := numbered("kl", 1, 500)
	appendLines(t, filepath.Join(dir, "app.log"), lines...)
	o := baseOptions(filepath.Join(dir, "*.log"), filepath.Join(dir, "offsets.json"))
	o.target, o.endpoint, o.stream = "aws", endpoint, stream
	runUntilSent(t, o, int64(len(lines)))

	ctx := t.Context() // go test -timeout is the only bound: a slow machine must not fail this
	var got []string
	shards, err := kc.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	require.NoError(t, err)
	for _, sh := range shards.Shards {
		it, err := kc.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
			StreamName: aws.String(stream), ShardId: sh.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
		})
		require.NoError(t, err)
		iter := it.ShardIterator
		for iter != nil {
			out, err := kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
			require.NoError(t, err)
			for _, r := range out.Records {
				recs, _ := aggregation.Deaggregate(nil, r.Data, aws.ToString(r.PartitionKey))
				for _, u := range recs {
					got = append(got, string(u.Data))
				}
			}
			if len(out.Records) == 0 {
				break
			}
			iter = out.NextShardIterator
		}
	}
	require.ElementsMatch(t, lines, got)
}
