package producer

import (
	"context"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/aggregation"
	"github.com/shardflow/shardflow/kinesistest"
)

// TestSplitAndMergeDuringRun reshards while records flow: every record
// has one outcome and is stored once where reported, and once the map is
// refreshed records land on the shard their own hash key belongs to.
func TestSplitAndMergeDuringRun(t *testing.T) {
	for _, accept := range []bool{false, true} {
		t.Run(fmt.Sprintf("AcceptMisroutedAggregates=%v", accept), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				testSplitAndMerge(t, accept)
			})
		})
	}
}

func testSplitAndMerge(t *testing.T, accept bool) {
	srv, stream := newFake(t, 4, kinesistest.Options{})
	cfg := fastConfig()
	cfg.RateLimit = 100000
	cfg.AcceptMisroutedAggregates = accept
	p := newProducer(t, srv, stream, cfg)
	ctx := context.Background()

	// Records are buffered and in flight while the shards change.
	puts := putN(t, p, "a", 3000)
	shards, err := srv.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	require.NoError(t, err)
	s0 := shards.Shards[0]
	start, _ := new(big.Int).SetString(*s0.HashKeyRange.StartingHashKey, 10)
	end, _ := new(big.Int).SetString(*s0.HashKeyRange.EndingHashKey, 10)
	mid := new(big.Int).Rsh(new(big.Int).Add(start, end), 1)
	_, err = srv.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String(stream), ShardToSplit: s0.ShardId, NewStartingHashKey: aws.String(mid.String())})
	require.NoError(t, err)
	puts = append(puts, putN(t, p, "b", 3000)...)
	_, err = srv.MergeShards(ctx, &kinesis.MergeShardsInput{StreamName: aws.String(stream), ShardToMerge: shards.Shards[2].ShardId, AdjacentShardToMerge: shards.Shards[3].ShardId})
	require.NoError(t, err)
	puts = append(puts, putN(t, p, "c", 3000)...)
	require.NoError(t, p.Flush(ctx))
	// Results naming other shards make the producer re-read the map
	// (3 + 2 - 1 open shards).
	refreshed := func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.shards) == 4 && p.shards[0].id != *s0.ShardId && p.shards[3].id != *shards.Shards[3].ShardId
	}
	for !refreshed() { // a refresh that never comes hangs (go test -timeout)
		time.Sleep(time.Millisecond) // a poll that lets a synctest bubble's time move
	}
	before := len(puts)
	puts = append(puts, putN(t, p, "d", 3000)...)
	require.NoError(t, p.Flush(ctx))
	require.Empty(t, reconcile(t, srv, stream, puts, false))

	// The copy each Result names is on the record's own shard (unless
	// misrouted aggregates are accepted), and always once the map is
	// refreshed.
	ranges := allRanges(t, srv, stream)
	resends := 0
	for i, pu := range puts {
		res := pu.f.Result()
		if resent(res) {
			resends++
		}
		if accept && i < before {
			continue
		}
		hi, lo, _ := hashKey(pu.key, "")
		require.True(t, ranges[res.ShardID].contains(hi, lo), "record %s on shard %s outside its range", pu.data, res.ShardID)
	}
	if accept {
		require.Zero(t, resends)
	}
	t.Logf("records re-sent after landing on a sibling shard: %d", resends)
}

func allRanges(t *testing.T, srv *kinesistest.Server, stream string) map[string]shardRange {
	out, err := srv.ListShards(context.Background(), &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	require.NoError(t, err)
	ranges := map[string]shardRange{}
	for _, s := range out.Shards {
		r, err := toRange(s)
		require.NoError(t, err)
		ranges[r.id] = r
	}
	return ranges
}

// TestOrderedByPartitionKey: with failures injected, each key's records
// are stored in Put order.
func TestOrderedByPartitionKey(t *testing.T) {
	for _, agg := range []bool{true, false} {
		t.Run(fmt.Sprintf("aggregation=%v", agg), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv, stream := newFake(t, 2, kinesistest.Options{Seed: 11})
				srv.FailRecords(0.3, "InternalFailure")
				srv.FailNext(kinesistest.OpPutRecords, 3, nil)
				cfg := fastConfig()
				cfg.OrderedByPartitionKey = true
				cfg.DisableAggregation = !agg
				cfg.RateLimit = 100000
				p := newProducer(t, srv, stream, cfg)
				var puts []put
				for i := 0; i < 3000; i++ {
					if i == 1500 {
						// Reshard mid-run: order must hold across the parent
						// and its children.
						_, err := srv.SplitShard(context.Background(), &kinesis.SplitShardInput{
							StreamName: aws.String(stream), ShardToSplit: aws.String("shardId-000000000000"),
							NewStartingHashKey: aws.String("85070591730234615865843651857942052864"),
						})
						require.NoError(t, err)
					}
					k := fmt.Sprintf("key%d", i%20)
					d := fmt.Sprintf("%s/%06d", k, i)
					f, err := p.Put(context.Background(), k, []byte(d))
					require.NoError(t, err)
					puts = append(puts, put{k, d, f})
				}
				require.NoError(t, p.Flush(context.Background()))
				require.Empty(t, reconcile(t, srv, stream, puts, false))
				retried := 0
				for _, pu := range puts {
					if len(pu.f.Result().Attempts) > 1 {
						retried++
					}
				}
				require.Greater(t, retried, 100)
				requireKeyOrder(t, srv, stream)
			})
		})
	}
}

// requireKeyOrder checks that each key's records (data "key/n") are
// stored in increasing n, misrouted copies aside.
func requireKeyOrder(t *testing.T, srv *kinesistest.Server, stream string) {
	t.Helper()
	last := map[string]int{}
	ranges := allRanges(t, srv, stream)
	// ShardIDs lists parents before children.
	for _, sh := range srv.ShardIDs(stream) {
		for _, r := range srv.Records(stream, sh) {
			recs, _ := aggregation.Deaggregate(nil, r.Data, aws.ToString(r.PartitionKey))
			for _, ur := range recs {
				if hi, lo, _ := hashKey(ur.PartitionKey, ""); !ranges[sh].contains(hi, lo) {
					continue // a misrouted copy, re-sent; the KCL drops it too
				}
				k, n, _ := strings.Cut(string(ur.Data), "/")
				i, _ := strconv.Atoi(n)
				prev, ok := last[k]
				require.True(t, !ok || i > prev, "key %s: %d stored after %d", k, i, prev)
				last[k] = i
			}
		}
	}
}

// TestOrderedConcurrentPutsAcrossSplit: goroutines Put their own keys at
// once (through the lanes' own locks, not the producer's) while a split
// installs a new shard map: each key's records are stored in Put order,
// and every record once.
func TestOrderedConcurrentPutsAcrossSplit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, stream := newFake(t, 2, kinesistest.Options{Seed: 5})
		srv.FailRecords(0.2, "InternalFailure")
		cfg := fastConfig()
		cfg.OrderedByPartitionKey = true
		cfg.RateLimit = 100000
		p := newProducer(t, srv, stream, cfg)
		const goroutines, each = 4, 800
		var (
			mu   sync.Mutex
			puts []put
			wg   sync.WaitGroup
		)
		for g := 0; g < goroutines; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < each; i++ {
					if g == 0 && i == each/2 {
						_, err := srv.SplitShard(context.Background(), &kinesis.SplitShardInput{
							StreamName: aws.String(stream), ShardToSplit: aws.String("shardId-000000000000"),
							NewStartingHashKey: aws.String("85070591730234615865843651857942052864"),
						})
						if err != nil {
							t.Error(err)
						}
					}
					k := fmt.Sprintf("g%dkey%d", g, i%5)
					d := fmt.Sprintf("%s/%06d", k, i)
					f, err := p.Put(context.Background(), k, []byte(d))
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					puts = append(puts, put{k, d, f})
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		require.NoError(t, p.Flush(context.Background()))
		require.Len(t, puts, goroutines*each)
		require.Empty(t, reconcile(t, srv, stream, puts, false))
		requireKeyOrder(t, srv, stream)
	})
}
