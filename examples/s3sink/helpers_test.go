package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/checkpoint"
)

// memWriter is a checkpoint.Writer keeping one shard's checkpoint and
// pending checkpoint in memory, as the lease table would.
type memWriter struct {
	mu           sync.Mutex
	checkpoint   checkpoint.Position
	pending      *checkpoint.Position
	pendingState []byte
	writes       []string // "prepare <pos>" / "checkpoint <pos>", in order
	// lostReply, when set, is returned by the next write after it landed
	// (the reply was lost), then cleared.
	lostReply error
}

func (w *memWriter) reply() error {
	err := w.lostReply
	w.lostReply = nil
	return err
}

func (w *memWriter) WriteCheckpoint(_ context.Context, _ string, pos checkpoint.Position) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.checkpoint, w.pending, w.pendingState = pos, nil, nil
	w.writes = append(w.writes, "checkpoint "+pos.String())
	return w.reply()
}

func (w *memWriter) WritePendingCheckpoint(_ context.Context, _ string, pos checkpoint.Position, state []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	p := pos
	w.pending, w.pendingState = &p, state
	w.writes = append(w.writes, "prepare "+pos.String())
	return w.reply()
}

// readParquet decodes a Parquet file into rows of column name to value,
// and checks that every column chunk is Snappy-compressed.
func readParquet(t testing.TB, body []byte) []map[string]parquet.Value {
	t.Helper()
	f, err := parquet.OpenFile(bytes.NewReader(body), int64(len(body)))
	require.NoError(t, err)
	for _, rg := range f.Metadata().RowGroups {
		for _, c := range rg.Columns {
			require.Equal(t, format.Snappy, c.MetaData.Codec, "column %v", c.MetaData.PathInSchema)
		}
	}
	cols := f.Schema().Columns()
	r := parquet.NewReader(bytes.NewReader(body))
	defer r.Close()
	var out []map[string]parquet.Value
	buf := make([]parquet.Row, 64)
	for {
		n, err := r.ReadRows(buf)
		for _, row := range buf[:n] {
			m := map[string]parquet.Value{}
			for _, v := range row {
				m[cols[v.Column()][0]] = v.Clone()
			}
			out = append(out, m)
		}
		if errors.Is(err, io.EOF) {
			return out
		}
		require.NoError(t, err)
	}
}

var errS3Down = errors.New("s3 down (injected)")
