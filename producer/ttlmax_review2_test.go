// REVIEW: fails on 66056a1 because a record's TTL instant is computed as
// p.epoch.Add(f.enq + p.cfg.RecordTTL) (producer.go:709, 737, 778, 849,
// 856, 883): with the largest RecordTTL Config accepts (the KPL's RecordTtl
// maximum is Long.MAX_VALUE, "never"), the Duration sum overflows to a
// negative value and the record is expired at once.

package producer

import (
	"context"
	"fmt"
	"math"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/kinesistest"
)

// TestReviewHugeRecordTTL: Config accepts RecordTTL = math.MaxInt64 (New
// succeeds). Correct: records never expire, so they are stored; or New
// refuses the value naming the field. Actual: without aggregation every
// record put a moment after New fails with ErrRecordExpired without being
// sent; with aggregation so does one put before the first shard map.
func TestReviewHugeRecordTTL(t *testing.T) {
	for _, agg := range []bool{false, true} {
		t.Run(fmt.Sprintf("aggregation=%v", agg), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				clk := newBubbleClock()
				srv, stream := newFake(t, 1, kinesistest.Options{Clock: clk})
				release := make(chan struct{})
				srv.SetHook(func(ctx context.Context, op string) error {
					if op == kinesistest.OpListShards && agg {
						<-release // the first map arrives after the Put
					}
					return nil
				})
				p, err := New(srv, stream, Config{Clock: clk, Logger: discardLogger(),
					DisableAggregation: !agg, RecordTTL: math.MaxInt64})
				if err != nil {
					require.ErrorIs(t, err, ErrInvalidConfig) // refusing it is fine too
					return
				}
				t.Cleanup(func() { _ = p.Close(context.Background()) })
				clk.Advance(time.Millisecond)
				f, err := p.Put(context.Background(), "k", []byte("x"))
				require.NoError(t, err)
				synctest.Wait()
				if agg {
					close(release)
				}
				res, err := f.Wait(context.Background())
				require.NoError(t, err, "%+v", res)
			})
		})
	}
}
