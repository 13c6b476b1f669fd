//go:build integration

package producer

import (
	"context"
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/aggregation"
	"github.com/shardflow/shardflow/internal/itest"
)

// TestIntegrationProduce100k produces 100,000 aggregated 100-byte records
// (12 MB, so several shard-seconds of traffic) over 4 shards, reads every
// shard back raw, deaggregates, and finds each record at the shard and
// sequence number its Result names. A call whose response was lost (it
// timed out, or the connection failed, after the emulator applied it) is
// ambiguous and retried, so a record may be stored more than once: every
// extra copy must belong to a record whose Attempts show such a failure.
// Nothing here depends on the emulator's speed: RecordTTL is long enough
// that a slow emulator only causes retries, never expiry.
func TestIntegrationProduce100k(t *testing.T) {
	for _, emu := range itest.KinesisEmulators {
		t.Run(string(emu), func(t *testing.T) {
			client := itest.Kinesis(t, emu)
			stream := itest.Name("producer")
			itest.CreateStream(t, client, stream, 4)
			ctx := context.Background()
			p, err := New(client, stream, Config{Logger: discardLogger(), MaxConnections: 8, RecordTTL: time.Hour})
			require.NoError(t, err)
			const n = 100_000
			type want struct {
				key        string
				shard, seq string
				ambiguous  bool // an attempt may have landed unseen
			}
			futs := make([]*Future, n)
			for i := range futs {
				futs[i], err = p.Put(ctx, fmt.Sprintf("key-%d", i%4099), payload(i))
				require.NoError(t, err)
			}
			require.NoError(t, p.Close(ctx))
			wants := map[string]want{}
			retried := 0
			for i, f := range futs {
				res := f.Result()
				if len(res.Attempts) > 1 {
					retried++
				}
				require.NotNil(t, res)
				require.NoError(t, res.Err)
				wants[string(payload(i))] = want{fmt.Sprintf("key-%d", i%4099), res.ShardID, res.SequenceNumber, ambiguous(res)}
			}

			found := map[string]int{}
			atReported := map[string]bool{}
			kinesisRecords := 0
			readAll(t, ctx, client, stream, func(shard string, r types.Record, ur aggregation.Record) {
				if shard == "" {
					kinesisRecords++
					return
				}
				w, ok := wants[string(ur.Data)]
				require.True(t, ok, "unexpected record %q", ur.Data)
				require.Equal(t, w.key, ur.PartitionKey)
				if shard == w.shard && *r.SequenceNumber == w.seq {
					atReported[string(ur.Data)] = true
				}
				found[string(ur.Data)]++
			})
			require.Len(t, found, n)
			dups := 0
			for d, c := range found {
				require.True(t, atReported[d], "record %s not at its reported %s/%s", d, wants[d].shard, wants[d].seq)
				if c > 1 {
					dups++
					require.True(t, wants[d].ambiguous, "record %s stored %d times without a timed-out or failed attempt", d, c)
				}
			}
			t.Logf("%s: %d user records in %d Kinesis records; %d needed more than one attempt; %d stored more than once after an ambiguous attempt",
				emu, n, kinesisRecords, retried, dups)
		})
	}
}

// readAll reads every shard of the stream from TRIM_HORIZON and calls fn
// for each Kinesis record (shard "") and each user record in it.
func readAll(t *testing.T, ctx context.Context, client *kinesis.Client, stream string, fn func(shard string, r types.Record, ur aggregation.Record)) {
	t.Helper()
	shards, err := client.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	require.NoError(t, err)
	for _, sh := range shards.Shards {
		it, err := client.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
			StreamName: aws.String(stream), ShardId: sh.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
		})
		require.NoError(t, err)
		iter := it.ShardIterator
		for iter != nil {
			out, err := client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(10000)})
			require.NoError(t, err)
			for _, r := range out.Records {
				fn("", r, aggregation.Record{})
				recs, _ := aggregation.Deaggregate(nil, r.Data, aws.ToString(r.PartitionKey))
				for _, ur := range recs {
					fn(*sh.ShardId, r, ur)
				}
			}
			if len(out.Records) == 0 && aws.ToInt64(out.MillisBehindLatest) == 0 {
				break
			}
			iter = out.NextShardIterator
		}
	}
}

// TestIntegrationSplitDuringRun splits a shard of kinesalite while
// producing: every record is stored, and the copy its Result names is on
// the shard its hash key belongs to.
func TestIntegrationSplitDuringRun(t *testing.T) {
	client := itest.Kinesis(t, itest.Kinesalite)
	stream := itest.Name("producer-split")
	itest.CreateStream(t, client, stream, 2)
	ctx := context.Background()
	p, err := New(client, stream, Config{Logger: discardLogger(), RecordMaxBufferedTime: 10 * time.Millisecond, RecordTTL: time.Hour})
	require.NoError(t, err)
	var futs []*Future
	var keys []string
	putBatch := func(m int) {
		for j := 0; j < m; j++ {
			i := len(futs)
			k := fmt.Sprintf("key-%d", i%1999)
			f, err := p.Put(ctx, k, []byte(fmt.Sprintf("payload-%06d", i)))
			require.NoError(t, err)
			futs, keys = append(futs, f), append(keys, k)
		}
		require.NoError(t, p.Flush(ctx))
	}
	putBatch(5000)
	shards, err := client.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	require.NoError(t, err)
	s0 := shards.Shards[0]
	start, _ := new(big.Int).SetString(*s0.HashKeyRange.StartingHashKey, 10)
	end, _ := new(big.Int).SetString(*s0.HashKeyRange.EndingHashKey, 10)
	mid := new(big.Int).Rsh(new(big.Int).Add(start, end), 1)
	_, err = client.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String(stream), ShardToSplit: s0.ShardId, NewStartingHashKey: aws.String(mid.String())})
	require.NoError(t, err)
	// Keep producing while the stream is UPDATING, then some more.
	for {
		putBatch(500)
		d, err := client.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
		require.NoError(t, err)
		if d.StreamDescriptionSummary.StreamStatus == types.StreamStatusActive {
			break
		}
	}
	for i := 0; i < 10; i++ {
		putBatch(1000)
	}
	require.NoError(t, p.Close(ctx))
	shards, err = client.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	require.NoError(t, err)
	require.Len(t, shards.Shards, 4)
	ranges := map[string]shardRange{}
	for _, s := range shards.Shards {
		r, err := toRange(s)
		require.NoError(t, err)
		ranges[r.id] = r
	}
	type loc struct{ shard, seq string }
	stored := map[string][]loc{}
	readAll(t, ctx, client, stream, func(shard string, r types.Record, ur aggregation.Record) {
		if shard != "" {
			stored[string(ur.Data)] = append(stored[string(ur.Data)], loc{shard, *r.SequenceNumber})
		}
	})
	resent := 0
	for i, f := range futs {
		res := f.Result()
		require.NotNil(t, res)
		require.NoError(t, res.Err)
		hi, lo, _ := hashKey(keys[i], "")
		require.True(t, ranges[res.ShardID].contains(hi, lo), "record %d reported on %s outside its range", i, res.ShardID)
		require.Contains(t, stored[fmt.Sprintf("payload-%06d", i)], loc{res.ShardID, res.SequenceNumber})
		if len(stored[fmt.Sprintf("payload-%06d", i)]) > 1 {
			resent++
		}
	}
	t.Logf("%d records stored twice (re-sent after landing on a sibling shard)", resent)
}

// payload is record i's 100-byte body.
func payload(i int) []byte {
	b := make([]byte, 100)
	copy(b, fmt.Sprintf("payload-%06d-", i))
	for j := 15; j < len(b); j++ {
		b[j] = 'a' + byte((i+j)%26)
	}
	return b
}
