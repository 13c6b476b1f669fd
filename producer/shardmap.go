package producer

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// shardRange is one open shard of the map.
type shardRange struct {
	id               string
	startHi, startLo uint64
	endHi, endLo     uint64
	startKey, endKey string // decimal, as ListShards gives them
}

// listOpenShards reads every open shard of the stream, sorted by starting
// hash key, and the ranges of all shards, open or closed, by id.
func (p *Producer) listOpenShards(ctx context.Context) ([]shardRange, map[string]shardRange, error) {
	var out []shardRange
	all := map[string]shardRange{}
	in := &kinesis.ListShardsInput{StreamName: p.streamName, StreamARN: p.streamARN}
	for {
		res, err := p.listShards(ctx, in)
		if err != nil {
			return nil, nil, err
		}
		for _, s := range res.Shards {
			r, err := toRange(s)
			if err != nil {
				return nil, nil, err
			}
			all[r.id] = r
			if s.SequenceNumberRange != nil && s.SequenceNumberRange.EndingSequenceNumber != nil {
				continue // closed
			}
			out = append(out, r)
		}
		if res.NextToken == nil || *res.NextToken == "" {
			break
		}
		in = &kinesis.ListShardsInput{NextToken: res.NextToken}
	}
	slices.SortFunc(out, func(a, b shardRange) int {
		if less128(a.startHi, a.startLo, b.startHi, b.startLo) {
			return -1
		}
		if a.startHi == b.startHi && a.startLo == b.startLo {
			return 0
		}
		return 1
	})
	return out, all, nil
}

// listShards is one ListShards call bounded by Config.RequestTimeout on
// the producer's clock: a hung call would otherwise stop every shard map
// refresh, and with it the records waiting for one.
func (p *Producer) listShards(ctx context.Context, in *kinesis.ListShardsInput) (*kinesis.ListShardsOutput, error) {
	cctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	t := p.clk.NewTimer(p.cfg.RequestTimeout)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer t.Stop()
		select {
		case <-t.C():
			cancel(ErrRequestTimeout)
		case <-done:
		}
	}()
	res, err := p.client.ListShards(cctx, in)
	close(done)
	wg.Wait()
	if err != nil && cctx.Err() != nil && ctx.Err() == nil {
		err = fmt.Errorf("ListShards: %w: %w", context.Cause(cctx), err)
	}
	return res, err
}

func (r shardRange) contains(hi, lo uint64) bool {
	return !less128(hi, lo, r.startHi, r.startLo) && !less128(r.endHi, r.endLo, hi, lo)
}

func toRange(s types.Shard) (shardRange, error) {
	if s.ShardId == nil || s.HashKeyRange == nil || s.HashKeyRange.StartingHashKey == nil || s.HashKeyRange.EndingHashKey == nil {
		return shardRange{}, fmt.Errorf("producer: ListShards returned a shard without id or hash key range")
	}
	r := shardRange{id: *s.ShardId, startKey: *s.HashKeyRange.StartingHashKey, endKey: *s.HashKeyRange.EndingHashKey}
	var ok1, ok2 bool
	r.startHi, r.startLo, ok1 = parseHashKey(r.startKey)
	r.endHi, r.endLo, ok2 = parseHashKey(r.endKey)
	if !ok1 || !ok2 {
		return shardRange{}, fmt.Errorf("producer: shard %s has a malformed hash key range", r.id)
	}
	return r, nil
}

// lookup returns the index of the shard whose range holds (hi, lo), or -1.
func lookup(shards []shardRange, hi, lo uint64) int {
	// first shard whose start > key, minus one
	i, j := 0, len(shards)
	for i < j {
		m := int(uint(i+j) >> 1)
		if less128(hi, lo, shards[m].startHi, shards[m].startLo) {
			j = m
		} else {
			i = m + 1
		}
	}
	i--
	if i < 0 || less128(shards[i].endHi, shards[i].endLo, hi, lo) {
		return -1
	}
	return i
}
