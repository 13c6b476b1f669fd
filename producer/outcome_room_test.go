package producer

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/kinesistest"
)

// slowSinkMetrics is a Metrics whose second KinesisRecordPut blocks until
// released, as a metrics exporter with a slow sink would: it holds the
// worker between the outcomes of two Kinesis records of one call.
type slowSinkMetrics struct {
	NopMetrics
	n       atomic.Int64
	blocked chan struct{}
	release chan struct{}
}

func (m *slowSinkMetrics) KinesisRecordPut(string, int, int, int) {
	if m.n.Add(1) == 2 {
		close(m.blocked)
		<-m.release
	}
}

// TestOutcomeThenRoom: MaxBufferedRecords 2, FailWhenBufferFull. A
// and B travel in one call; A's outcome is known (Wait returned, no
// callback) while the worker still reads B's result. Correct: A no longer
// counts (Outstanding is 1) and a Put finds room for one record. Before the fix:
// Outstanding is 2 and the Put fails with ErrBufferFull.
func TestOutcomeThenRoom(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, stream := newFake(t, 1, kinesistest.Options{})
		m := &slowSinkMetrics{blocked: make(chan struct{}), release: make(chan struct{})}
		cfg := fastConfig()
		cfg.DisableAggregation = true
		cfg.MaxBufferedRecords = 2
		cfg.FailWhenBufferFull = true
		cfg.Metrics = m
		p := newProducer(t, srv, stream, cfg)
		t.Cleanup(func() { close(m.release) }) // before Close
		ctx := context.Background()
		fa, err := p.Put(ctx, "a", []byte("A"))
		require.NoError(t, err)
		_, err = p.Put(ctx, "b", []byte("B"))
		require.NoError(t, err)
		<-m.blocked
		res, err := fa.Wait(ctx)
		require.NoError(t, err)
		require.NotEmpty(t, res.SequenceNumber)

		recs, _ := p.Outstanding()
		require.Equal(t, 1, recs, "A has its outcome and no callback, yet is outstanding")
		_, err = p.Put(ctx, "c", []byte("C"))
		require.NoError(t, err, "one record outstanding of 2")
	})
}
