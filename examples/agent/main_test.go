package main

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// logWatch is a slog.Handler that hands every record to fn.
type logWatch struct {
	mu sync.Mutex
	fn func(msg string, attrs map[string]slog.Value)
}

func (h *logWatch) Enabled(context.Context, slog.Level) bool { return true }
func (h *logWatch) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logWatch) WithGroup(string) slog.Handler            { return h }
func (h *logWatch) Handle(_ context.Context, r slog.Record) error {
	attrs := map[string]slog.Value{}
	r.Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value; return true })
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fn(r.Message, attrs)
	return nil
}

// baseOptions are the flag defaults, sped up for tests.
func baseOptions(files, offsets string) options {
	return options{
		files: files, stream: "agent", target: "memory", keySpec: "random", csvDelim: ",",
		offsets: offsets, initial: "start", poll: 20 * time.Millisecond, checkpointEvery: 20 * time.Millisecond,
		progress: 20 * time.Millisecond, closeInactive: time.Second, shutdownTimeout: 10 * time.Second,
		maxInFlight: 16 << 20, maxBuffered: 32 << 20, shards: 2,
	}
}

// runUntilSent runs the command until its progress log reports n lines
// sent, then stops it and returns the attributes of its last log records.
func runUntilSent(t *testing.T, o options, n int64) map[string]map[string]slog.Value {
	t.Helper()
	ctx := t.Context() // go test -timeout is the only bound: a slow machine must not fail this
	stopCtx, stop := context.WithCancel(ctx)
	last := map[string]map[string]slog.Value{}
	log := slog.New(&logWatch{fn: func(msg string, attrs map[string]slog.Value) {
		last[msg] = attrs
		if msg == "agent: progress" && attrs["sent"].Int64() >= n {
			stop()
		}
	}})
	require.NoError(t, run(stopCtx, o, log))
	require.NoError(t, ctx.Err(), "timed out before %d lines were sent", n)
	return last
}

func TestRunMemoryTarget(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "data.csv")
	appendLines(t, path, "1,a", "2,b", "oops", "3,c")
	o := baseOptions(filepath.Join(dir, "*.csv"), filepath.Join(dir, "offsets.json"))
	o.keySpec, o.csvFields = "csv:1", "id,name"
	logs := runUntilSent(t, o, 3)
	require.EqualValues(t, 3, logs["agent: in-memory stream"]["lines"].Int64())
	require.EqualValues(t, 1, logs["agent: progress"]["failed"].Int64())
	require.EqualValues(t, 3, logs["agent: line not sent"]["line"].Int64())

	saved, err := loadOffsets(o.offsets)
	require.NoError(t, err)
	require.EqualValues(t, 4, saved[0].Line)
}

func TestRunRejectsBadFlags(t *testing.T) {
	for name, mut := range map[string]func(*options){
		"key":       func(o *options) { o.keySpec = "nope" },
		"delimiter": func(o *options) { o.csvDelim = ";;" },
		"initial":   func(o *options) { o.initial = "middle" },
		"target":    func(o *options) { o.target = "gcp" },
		"files":     func(o *options) { o.files = "" },
	} {
		o := baseOptions("x", "")
		mut(&o)
		require.Error(t, run(context.Background(), o, testLogger(t)), name)
	}
}
