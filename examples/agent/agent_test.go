package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/clock"
)

// fakeSink is a Sink that records what it is given. It confirms records at
// once unless holding, and Put blocks while capacity records are
// unconfirmed, like a producer whose buffer is full.
type fakeSink struct {
	mu          sync.Mutex
	capacity    int  // 0: unlimited
	holding     bool // keep callbacks until release
	failEvery   int  // fail every n-th attempt (first time only), 0: never
	attempts    int
	outstanding []heldRecord
	puts        []string // every record handed over, in order
	confirmed   []string
	changed     chan struct{} // closed and replaced when outstanding shrinks
	blocked     chan struct{} // receives when a Put starts waiting for room
	notify      chan struct{} // closed and replaced on every change
}

func (s *fakeSink) notifyLocked() {
	close(s.notify)
	s.notify = make(chan struct{})
}

// waitUntil blocks until cond holds for the sink's state.
func (s *fakeSink) waitUntil(t *testing.T, cond func(puts, confirmed []string, outstanding int) bool) {
	t.Helper()
	for {
		s.mu.Lock()
		ok := cond(s.puts, s.confirmed, len(s.outstanding))
		ch := s.notify
		s.mu.Unlock()
		if ok {
			return
		}
		<-ch // go test -timeout bounds a hang
	}
}

type heldRecord struct {
	key, data string
	done      func(error)
}

func newFakeSink() *fakeSink {
	return &fakeSink{changed: make(chan struct{}), blocked: make(chan struct{}, 1), notify: make(chan struct{})}
}

var errInjected = errors.New("injected send failure")

func (s *fakeSink) Put(ctx context.Context, key string, data []byte, done func(error)) error {
	s.mu.Lock()
	for s.capacity > 0 && len(s.outstanding) >= s.capacity {
		ch := s.changed
		s.mu.Unlock()
		select {
		case s.blocked <- struct{}{}:
		default:
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
		s.mu.Lock()
	}
	s.attempts++
	s.puts = append(s.puts, string(data))
	s.notifyLocked()
	fail := s.failEvery > 0 && s.attempts%s.failEvery == 0 && !strings.HasSuffix(key, "!")
	if s.holding {
		s.outstanding = append(s.outstanding, heldRecord{key, string(data), done})
		s.mu.Unlock()
		return nil
	}
	if !fail {
		s.confirmed = append(s.confirmed, string(data))
	}
	s.notifyLocked()
	s.mu.Unlock()
	if fail {
		done(errInjected)
	} else {
		done(nil)
	}
	return nil
}

func (s *fakeSink) Flush(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.outstanding) > 0 {
		return errors.New("fake sink: stalled")
	}
	return nil
}

// release confirms up to n held records (all when n < 0) and stops holding
// when all were released and stop is set.
func (s *fakeSink) release(n int, stop bool) {
	s.mu.Lock()
	if n < 0 || n > len(s.outstanding) {
		n = len(s.outstanding)
	}
	out := append([]heldRecord(nil), s.outstanding[:n]...)
	s.outstanding = s.outstanding[n:]
	for _, r := range out {
		s.confirmed = append(s.confirmed, r.data)
	}
	if stop {
		s.holding = false
	}
	close(s.changed)
	s.changed = make(chan struct{})
	s.notifyLocked()
	s.mu.Unlock()
	for _, r := range out {
		r.done(nil)
	}
}

func (s *fakeSink) snapshot() (puts, confirmed []string, outstanding int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.puts...), append([]string(nil), s.confirmed...), len(s.outstanding)
}

// waitFor receives from ch.
func waitFor[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	// No timer of its own: go test -timeout bounds a hang, and a slow machine
	// must not fail the test.
	return <-ch
}

func testLogger(testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func newTestAgent(t *testing.T, cfg Config) *Agent {
	t.Helper()
	if cfg.Clock == nil {
		cfg.Clock = clock.NewFake(time.Time{})
	}
	cfg.Logger = testLogger(t)
	a, err := New(cfg)
	require.NoError(t, err)
	return a
}

func appendLines(t *testing.T, path string, lines ...string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	require.NoError(t, err)
	for _, l := range lines {
		_, err = f.WriteString(l + "\n")
		require.NoError(t, err)
	}
	require.NoError(t, f.Close())
}

func numbered(prefix string, from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprintf("%s-%05d", prefix, i))
	}
	return out
}

func TestOffsetsFileIsNotTailed(t *testing.T) {
	dir := t.TempDir()
	appendLines(t, filepath.Join(dir, "app.log"), "x")
	sink := newFakeSink()
	a := newTestAgent(t, Config{Files: filepath.Join(dir, "*"), Sink: sink, OffsetsPath: filepath.Join(dir, "offsets.json")})
	for range 3 {
		require.NoError(t, a.Poll(context.Background()))
		require.NoError(t, a.SaveOffsets())
	}
	_, got, _ := sink.snapshot()
	require.Equal(t, []string{"x"}, got)
	require.Equal(t, 1, a.Stats().Files)
}

func TestSendsLinesAndSkipsEmptyOnes(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	appendLines(t, path, "one", "", "two\r")
	sink := newFakeSink()
	a := newTestAgent(t, Config{Files: filepath.Join(dir, "*.log"), Sink: sink, Format: Formatter{Key: KeySpec{Mode: KeyFixed, Fixed: "k"}}})
	require.NoError(t, a.Poll(context.Background()))
	_, got, _ := sink.snapshot()
	require.Equal(t, []string{"one", "two"}, got)

	// An unterminated line waits for its newline.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.WriteString("thr")
	require.NoError(t, err)
	require.NoError(t, a.Poll(context.Background()))
	_, got, _ = sink.snapshot()
	require.Len(t, got, 2)
	_, err = f.WriteString("ee\n")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.NoError(t, a.Poll(context.Background()))
	_, got, _ = sink.snapshot()
	require.Equal(t, []string{"one", "two", "three"}, got)

	st := a.Stats()
	require.EqualValues(t, 4, st.LinesRead)
	require.EqualValues(t, 3, st.LinesSent)
	require.EqualValues(t, 1, st.LinesSkipped)
	require.EqualValues(t, 0, st.LagBytes)
	require.Equal(t, 1, st.Files)
}

// A restart in the middle: lines confirmed before the stop are not sent
// again, lines handed over but unconfirmed are, and none is lost.
func TestRestartInTheMiddle(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	offsets := filepath.Join(dir, "offsets.json")
	appendLines(t, path, numbered("a", 1, 100)...)

	sink1 := newFakeSink()
	sink1.holding = true
	a1 := newTestAgent(t, Config{Files: path, Sink: sink1, OffsetsPath: offsets})
	require.NoError(t, a1.Poll(context.Background()))
	// Confirm 60 out of order: the first 50, then 52..61. Offsets may only
	// cover the contiguous prefix 1..50; 51 holds the rest back.
	sink1.mu.Lock()
	out := sink1.outstanding
	first50, rest := out[:50], out[50:]
	skip51, next10 := rest[0], rest[1:11]
	sink1.outstanding = append([]heldRecord{skip51}, rest[11:]...)
	sink1.mu.Unlock()
	for _, r := range append(append([]heldRecord(nil), first50...), next10...) {
		r.done(nil)
	}
	appendLines(t, path, numbered("a", 101, 120)...) // still being written
	require.NoError(t, a1.shutdown(context.Background()))
	puts1, _, _ := sink1.snapshot()
	require.Len(t, puts1, 100)

	saved, err := loadOffsets(offsets)
	require.NoError(t, err)
	require.Len(t, saved, 1)
	require.EqualValues(t, 50, saved[0].Line)
	require.EqualValues(t, 50*len("a-00001\n"), saved[0].Offset)

	sink2 := newFakeSink()
	a2 := newTestAgent(t, Config{Files: path, Sink: sink2, OffsetsPath: offsets})
	require.NoError(t, a2.Poll(context.Background()))
	_, got2, _ := sink2.snapshot()
	require.Equal(t, numbered("a", 51, 120), got2, "resumes after the confirmed prefix")
	require.NoError(t, a2.shutdown(context.Background()))

	saved, err = loadOffsets(offsets)
	require.NoError(t, err)
	require.EqualValues(t, 120, saved[0].Line)

	// A third start sends nothing.
	sink3 := newFakeSink()
	a3 := newTestAgent(t, Config{Files: path, Sink: sink3, OffsetsPath: offsets})
	require.NoError(t, a3.Poll(context.Background()))
	puts3, _, _ := sink3.snapshot()
	require.Empty(t, puts3)
}

// A crash (no final save) only repeats lines, never loses them.
func TestCrashRepeatsButNeverLoses(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	offsets := filepath.Join(dir, "offsets.json")
	appendLines(t, path, numbered("c", 1, 30)...)
	sink1 := newFakeSink()
	a1 := newTestAgent(t, Config{Files: path, Sink: sink1, OffsetsPath: offsets})
	require.NoError(t, a1.Poll(context.Background()))
	require.NoError(t, a1.SaveOffsets())
	appendLines(t, path, numbered("c", 31, 40)...)
	require.NoError(t, a1.Poll(context.Background())) // confirmed, never saved: the process dies

	sink2 := newFakeSink()
	a2 := newTestAgent(t, Config{Files: path, Sink: sink2, OffsetsPath: offsets})
	require.NoError(t, a2.Poll(context.Background()))
	_, got, _ := sink2.snapshot()
	require.Equal(t, numbered("c", 31, 40), got)
}

// rotator drives a file being written and rotated, and checks that every
// line written reaches the sink exactly once and in order per file.
func TestRotationDuringWriting(t *testing.T) {
	for _, mode := range []string{"rename", "rename-glob-matches-rotated", "copytruncate", "mixed"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "app.log")
			clk := clock.NewFake(time.Time{})
			sink := newFakeSink()
			offsets := filepath.Join(dir, "offsets.json")
			glob := path
			if mode == "rename-glob-matches-rotated" {
				glob = path + "*" // app.log.1 etc. stay tailed under their new names
			}
			a := newTestAgent(t, Config{Files: glob, Sink: sink, Clock: clk, OffsetsPath: offsets, CloseInactive: 5 * time.Second})
			rng := rand.New(rand.NewPCG(1, uint64(len(mode))))

			w, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
			require.NoError(t, err)
			var written []string
			rotations := 0
			// A file must carry the glob's name for at least one poll to be
			// seen at all; logrotate rotates far less often than that.
			polledSinceRotation := false
			for i := 1; i <= 3000; i++ {
				line := fmt.Sprintf("line-%05d", i)
				_, err := w.WriteString(line + "\n")
				require.NoError(t, err)
				written = append(written, line)
				switch r := rng.IntN(100); {
				case r < 10:
					require.NoError(t, a.Poll(context.Background()))
					clk.Advance(time.Second)
					polledSinceRotation = true
				case r < 12 && mode != "copytruncate" && polledSinceRotation:
					polledSinceRotation = false
					// logrotate's default: rename, create a new file. The
					// writer keeps its handle for a few more lines first.
					rotations++
					require.NoError(t, os.Rename(path, fmt.Sprintf("%s.%d", path, rotations)))
					for j := 0; j < rng.IntN(3); j++ {
						i++
						line := fmt.Sprintf("line-%05d", i)
						_, err := w.WriteString(line + "\n")
						require.NoError(t, err)
						written = append(written, line)
					}
					require.NoError(t, w.Close())
					w, err = os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
					require.NoError(t, err)
				case r < 14 && (mode == "copytruncate" || mode == "mixed"):
					// copytruncate loses lines written between the last read
					// and the truncation (true of every tailer), so rotate
					// right after a poll, as a slow-writing log would.
					require.NoError(t, a.Poll(context.Background()))
					rotations++
					copyFile(t, path, fmt.Sprintf("%s.%d", path, rotations))
					require.NoError(t, os.Truncate(path, 0))
				}
			}
			require.NoError(t, w.Close())
			for k := 0; k < 3; k++ { // read the rest, let rotated files close
				require.NoError(t, a.Poll(context.Background()))
				clk.Advance(10 * time.Second)
			}
			require.NoError(t, a.Poll(context.Background()))
			require.Positive(t, rotations)

			_, got, _ := sink.snapshot()
			require.Equal(t, len(written), len(got), "every line exactly once")
			require.ElementsMatch(t, written, got)
			st := a.Stats()
			if mode != "rename-glob-matches-rotated" {
				require.Equal(t, 1, st.Files, "rotated files are closed")
			}
			require.EqualValues(t, 0, st.LagBytes)
			require.EqualValues(t, len(written), st.LinesSent)
		})
	}
}

func copyFile(t *testing.T, from, to string) {
	b, err := os.ReadFile(from)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(to, b, 0o644))
}

// Truncated and rewritten past the old offset between two polls: the
// fingerprint shows new content, which is read from the start.
func TestRewrittenFileIsReadFromTheStart(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	appendLines(t, path, numbered("old", 1, 5)...)
	sink := newFakeSink()
	a := newTestAgent(t, Config{Files: path, Sink: sink})
	require.NoError(t, a.Poll(context.Background()))
	require.NoError(t, os.Truncate(path, 0))
	appendLines(t, path, numbered("new", 1, 20)...)
	require.NoError(t, a.Poll(context.Background()))
	_, got, _ := sink.snapshot()
	require.Equal(t, append(numbered("old", 1, 5), numbered("new", 1, 20)...), got)
}

// A file rotated away while the agent was stopped is found by its inode in
// the same directory and finished.
func TestRotatedWhileStopped(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	offsets := filepath.Join(dir, "offsets.json")
	appendLines(t, path, numbered("r", 1, 10)...)
	sink1 := newFakeSink()
	a1 := newTestAgent(t, Config{Files: path, Sink: sink1, OffsetsPath: offsets})
	require.NoError(t, a1.Poll(context.Background()))
	require.NoError(t, a1.shutdown(context.Background()))

	appendLines(t, path, numbered("r", 11, 15)...)
	require.NoError(t, os.Rename(path, path+".1"))
	appendLines(t, path, numbered("r", 16, 20)...)

	clk := clock.NewFake(time.Time{})
	sink2 := newFakeSink()
	a2 := newTestAgent(t, Config{Files: path, Sink: sink2, OffsetsPath: offsets, Clock: clk})
	require.NoError(t, a2.Poll(context.Background()))
	_, got, _ := sink2.snapshot()
	require.Equal(t, numbered("r", 11, 20), got)
	clk.Advance(time.Minute)
	require.NoError(t, a2.Poll(context.Background()))
	require.Equal(t, 1, a2.Stats().Files)
}

// A file truncated and rewritten while the agent was stopped is read from
// the start, even with EndOfFile.
func TestTruncatedWhileStopped(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	offsets := filepath.Join(dir, "offsets.json")
	appendLines(t, path, numbered("t", 1, 10)...)
	a1 := newTestAgent(t, Config{Files: path, Sink: newFakeSink(), OffsetsPath: offsets})
	require.NoError(t, a1.Poll(context.Background()))
	require.NoError(t, a1.shutdown(context.Background()))

	require.NoError(t, os.Truncate(path, 0))
	appendLines(t, path, numbered("u", 1, 3)...)
	sink := newFakeSink()
	a2 := newTestAgent(t, Config{Files: path, Sink: sink, OffsetsPath: offsets, InitialPosition: EndOfFile})
	require.NoError(t, a2.Poll(context.Background()))
	_, got, _ := sink.snapshot()
	require.Equal(t, numbered("u", 1, 3), got)
}

// A new file that reuses a remembered inode is not mistaken for it.
func TestInodeReuseIsDetected(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	offsets := filepath.Join(dir, "offsets.json")
	appendLines(t, path, numbered("x", 1, 10)...)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	id, ok := idOf(fi)
	require.True(t, ok)
	// Pretend we had read 5 lines of a different file with this inode.
	other := strings.NewReader(strings.Repeat("z", 100))
	fp, err := readFingerprint(other, 100)
	require.NoError(t, err)
	require.NoError(t, saveOffsets(offsets, []savedFile{{Path: path, ID: id, Fingerprint: fp, Offset: 40, Line: 5}}))

	sink := newFakeSink()
	a := newTestAgent(t, Config{Files: path, Sink: sink, OffsetsPath: offsets})
	require.NoError(t, a.Poll(context.Background()))
	_, got, _ := sink.snapshot()
	require.Equal(t, numbered("x", 1, 10), got)
}

// A stalled stream: the sink's buffer fills, Put blocks, and the agent
// stops reading instead of buffering the file in memory. When the stream
// recovers every line arrives, failed sends included.
func TestStalledStreamBoundsMemoryAndLosesNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	lines := numbered("s", 1, 20000)
	appendLines(t, path, lines...)

	sink := newFakeSink()
	sink.capacity = 50
	sink.holding = true
	a := newTestAgent(t, Config{Files: path, Sink: sink})
	ctx := context.Background()
	done := make(chan error, 1)
	go func() { done <- a.Poll(ctx) }()
	waitFor(t, sink.blocked) // Put is waiting for room

	st := a.Stats()
	require.LessOrEqual(t, st.LinesRead, int64(51), "reading stops while the sink is full")
	require.LessOrEqual(t, st.InFlight, int64(51))
	a.mu.Lock()
	for _, tf := range a.files {
		require.LessOrEqual(t, len(tf.pending), 51)
		require.Less(t, tf.readOff, int64(52*len("s-00001\n")))
	}
	a.mu.Unlock()

	// Recovery, with every 7th send failing once: failures are retried on
	// the next poll, and offsets wait for them.
	sink.mu.Lock()
	sink.failEvery = 7
	sink.mu.Unlock()
	sink.release(-1, true)
	require.NoError(t, waitFor(t, done))
	for k := 0; k < 10 && a.Stats().InFlight > 0; k++ {
		require.NoError(t, a.Poll(ctx))
	}
	_, got, _ := sink.snapshot()
	require.ElementsMatch(t, lines, got, "no line lost or duplicated")
	st = a.Stats()
	require.EqualValues(t, len(lines), st.LinesSent)
	require.Positive(t, st.Retries)
	require.Zero(t, st.InFlight)
	require.Zero(t, st.LagBytes)
}

// MaxInFlightBytes bounds memory even when the sink itself never pushes back.
func TestInFlightByteLimit(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	lines := numbered("b", 1, 1000)
	appendLines(t, path, lines...)
	sink := newFakeSink()
	sink.holding = true
	a := newTestAgent(t, Config{Files: path, Sink: sink, MaxInFlightBytes: 700})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Poll(ctx) }()
	// 700 bytes hold 100 lines of 7 bytes.
	sink.waitUntil(t, func(_, _ []string, n int) bool { return n == 100 })
	select {
	case err := <-done:
		t.Fatalf("poll returned while the limit holds: %v", err)
	default:
	}
	require.LessOrEqual(t, a.Stats().LinesRead, int64(101))
	sink.release(-1, true)
	cancel()
	err := waitFor(t, done)
	require.True(t, err == nil || errors.Is(err, context.Canceled))
	require.NoError(t, a.Poll(context.Background()))
	_, got, _ := sink.snapshot()
	require.Equal(t, lines, got)
}

func TestMalformedCSVLinesAreReportedNotSent(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "data.csv")
	appendLines(t, path,
		`1,alice,10`,
		`2,bob`,                // too few columns
		`"3,carol,30`,          // unterminated quote
		`4,"dave ""d"" jr",40`, // quoted, fine
		``,
		`5,eve,50,extra`, // too many
		`,nokey,60`,      // empty key column
		`6,frank,60`,
	)
	sink := newFakeSink()
	var reported []*LineError
	offsets := filepath.Join(dir, "offsets.json")
	a := newTestAgent(t, Config{
		Files:       path,
		Sink:        sink,
		OffsetsPath: offsets,
		Format:      Formatter{Key: KeySpec{Mode: KeyCSVColumn, Column: 1}, CSVFields: []string{"id", "name", "score"}},
		OnLineError: func(le *LineError) { reported = append(reported, le) },
	})
	require.NoError(t, a.Poll(context.Background()))

	sink.mu.Lock()
	puts := sink.puts
	sink.mu.Unlock()
	require.Equal(t, []string{
		`{"id":"1","name":"alice","score":"10"}`,
		`{"id":"4","name":"dave \"d\" jr","score":"40"}`,
		`{"id":"6","name":"frank","score":"60"}`,
	}, puts)

	var where []string
	for _, le := range reported {
		require.ErrorIs(t, le, ErrMalformed)
		require.Equal(t, path, le.Path)
		where = append(where, fmt.Sprint(le.Line))
	}
	require.Equal(t, []string{"2", "3", "6", "7"}, where)
	require.Contains(t, reported[0].Error(), path+":2:")

	st := a.Stats()
	require.EqualValues(t, 8, st.LinesRead)
	require.EqualValues(t, 3, st.LinesSent)
	require.EqualValues(t, 4, st.LinesFailed)
	require.EqualValues(t, 1, st.LinesSkipped)
	require.Zero(t, st.LagBytes, "offsets move over malformed lines")
	require.NoError(t, a.SaveOffsets())
	saved, err := loadOffsets(offsets)
	require.NoError(t, err)
	require.EqualValues(t, 8, saved[0].Line)
}

func TestOverlongLineIsReportedAndSkipped(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	appendLines(t, path, "before", strings.Repeat("x", MaxRecordBytes+10), "after")
	sink := newFakeSink()
	var reported []*LineError
	a := newTestAgent(t, Config{Files: path, Sink: sink, OnLineError: func(le *LineError) { reported = append(reported, le) }})
	require.NoError(t, a.Poll(context.Background()))
	_, got, _ := sink.snapshot()
	require.Equal(t, []string{"before", "after"}, got)
	require.Len(t, reported, 1)
	require.EqualValues(t, 2, reported[0].Line)
}

func TestPermanentErrorsAreCountedAndSkipped(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	appendLines(t, path, numbered("p", 1, 10)...)
	sink := newFakeSink()
	sink.failEvery = 3
	var reported []*LineError
	a := newTestAgent(t, Config{
		Files: path, Sink: sink,
		IsPermanent: func(err error) bool { return errors.Is(err, errInjected) },
		OnLineError: func(le *LineError) { reported = append(reported, le) },
	})
	require.NoError(t, a.Poll(context.Background()))
	st := a.Stats()
	require.EqualValues(t, 7, st.LinesSent)
	require.EqualValues(t, 3, st.LinesFailed)
	require.Zero(t, st.LagBytes)
	require.Len(t, reported, 3)
	require.ErrorIs(t, reported[0], errInjected)
}

func TestEndOfFileStartsAfterExistingLines(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	appendLines(t, path, numbered("e", 1, 5)...)
	sink := newFakeSink()
	a := newTestAgent(t, Config{Files: filepath.Join(dir, "*.log"), Sink: sink, InitialPosition: EndOfFile, Format: Formatter{Key: KeySpec{Mode: KeyCSVColumn, Column: 2}}})
	require.NoError(t, a.Poll(context.Background()))
	appendLines(t, path, "a,b", "c")
	appendLines(t, filepath.Join(dir, "later.log"), "x,y")
	var reported []*LineError
	a.cfg.OnLineError = func(le *LineError) { reported = append(reported, le) }
	require.NoError(t, a.Poll(context.Background()))
	_, got, _ := sink.snapshot()
	require.ElementsMatch(t, []string{"a,b", "x,y"}, got, "a file found later is read from its start")
	require.Len(t, reported, 1)
	require.EqualValues(t, 7, reported[0].Line, "line numbers count the lines skipped at start")
}

// Run polls on its interval, saves offsets and stops cleanly.
func TestRunSavesOffsetsOnStop(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	offsets := filepath.Join(dir, "offsets.json")
	appendLines(t, path, numbered("n", 1, 3)...)
	clk := clock.NewFake(time.Time{})
	sink := newFakeSink()
	var progress []Stats
	var pmu sync.Mutex
	a := newTestAgent(t, Config{Files: path, Sink: sink, Clock: clk, OffsetsPath: offsets,
		OnProgress: func(s Stats) { pmu.Lock(); progress = append(progress, s); pmu.Unlock() }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	clk.BlockUntil(3) // poll, save and progress tickers armed, first poll done
	sink.waitUntil(t, func(_, c []string, _ int) bool { return len(c) == 3 })
	appendLines(t, path, numbered("n", 4, 6)...)
	clk.Advance(time.Second) // poll (and save) tick
	sink.waitUntil(t, func(_, c []string, _ int) bool { return len(c) == 6 })
	clk.Advance(30 * time.Second) // progress tick
	cancel()
	require.NoError(t, waitFor(t, done))
	saved, err := loadOffsets(offsets)
	require.NoError(t, err)
	require.EqualValues(t, 6, saved[0].Line)
	pmu.Lock()
	defer pmu.Unlock()
	require.NotEmpty(t, progress)
	require.EqualValues(t, 6, progress[len(progress)-1].LinesSent)
}

func TestConfigValidation(t *testing.T) {
	sink := newFakeSink()
	for name, cfg := range map[string]Config{
		"no files":   {Sink: sink},
		"bad glob":   {Files: "[", Sink: sink},
		"no sink":    {Files: "x"},
		"dup fields": {Files: "x", Sink: sink, Format: Formatter{CSVFields: []string{"a", "a"}}},
		"key column": {Files: "x", Sink: sink, Format: Formatter{CSVFields: []string{"a"}, Key: KeySpec{Mode: KeyCSVColumn, Column: 2}}},
		"negative":   {Files: "x", Sink: sink, PollInterval: -1},
	} {
		_, err := New(cfg)
		require.Error(t, err, name)
	}
	dir := t.TempDir()
	bad := filepath.Join(dir, "offsets.json")
	require.NoError(t, os.WriteFile(bad, []byte("{not json"), 0o644))
	_, err := New(Config{Files: "x", Sink: sink, OffsetsPath: bad})
	require.Error(t, err)
}
