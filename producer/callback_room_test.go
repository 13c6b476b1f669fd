package producer

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/kinesistest"
)

// TestReturnedCallbacksFreeRoom: MaxBufferedRecords 4,
// FailWhenBufferFull; four records in one call, so their callbacks run as
// one batch; the first three return at once, the fourth blocks. Correct
// (package doc: a record "keeps its room ... until its callback has
// returned"): one record is outstanding and a Put finds room. Before the fix: all
// four are outstanding and the Put fails with ErrBufferFull until the slow
// callback returns.
func TestReturnedCallbacksFreeRoom(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, stream := newFake(t, 1, kinesistest.Options{})
		cfg := fastConfig()
		cfg.DisableAggregation = true
		cfg.MaxBufferedRecords = 4
		cfg.FailWhenBufferFull = true
		p := newProducer(t, srv, stream, cfg)
		blocked, release := make(chan struct{}), make(chan struct{})
		t.Cleanup(func() { close(release) }) // before Close, which waits for callbacks
		var returned atomic.Int64
		ctx := context.Background()
		for i := 0; i < 4; i++ {
			_, err := p.PutRecord(ctx, Record{PartitionKey: fmt.Sprint("k", i), Data: []byte("x")}, func(*Result) {
				if i == 3 {
					close(blocked)
					<-release
					return
				}
				returned.Add(1)
			})
			require.NoError(t, err)
		}
		<-blocked
		require.EqualValues(t, 3, returned.Load(), "precondition: three callbacks have returned")
		recs, _ := p.Outstanding()
		require.Equal(t, 1, recs, "records whose callback returned still hold room")
		_, err := p.Put(ctx, "more", []byte("y"))
		require.NoError(t, err)
	})
}
