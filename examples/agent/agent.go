package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/shardflow/shardflow/clock"
)

// Sink is where the agent sends records: the shardflow producer in
// production (see producerSink), a fake in tests.
type Sink interface {
	// Put hands one record to the sink. It blocks while the sink's buffer
	// is full, which is how a stalled stream stops the agent reading. It
	// returns an error only when it did not take the record (ctx ended,
	// sink closed); after a nil return done is called exactly once, from
	// any goroutine, with nil once the stream has the record or with the
	// error that made it fail.
	Put(ctx context.Context, key string, data []byte, done func(error)) error
	// Flush returns once every record taken so far has had done called, or
	// when ctx ends.
	Flush(ctx context.Context) error
}

// InitialPosition says where to start reading a file that is present when
// the agent starts and has no saved offset.
type InitialPosition int

const (
	// StartOfFile reads existing files from the start.
	StartOfFile InitialPosition = iota
	// EndOfFile sends only lines written after the agent started (the
	// Kinesis Agent's default). Files that appear later are always read
	// from the start, so lines of a rotated-in file are never skipped.
	EndOfFile
)

// Config configures an Agent. Zero durations take the defaults shown.
type Config struct {
	// Files is a glob (filepath.Match syntax) naming the files to tail,
	// like the Kinesis Agent's filePattern. Required.
	Files string
	// Sink receives the records. Required.
	Sink Sink
	// Format turns lines into records; the zero value sends each line as
	// it is with a random partition key.
	Format Formatter
	// OffsetsPath is where confirmed read positions are saved. Empty means
	// they are not saved and a restart reads from InitialPosition again.
	OffsetsPath string
	// InitialPosition applies to files found at start without an offset.
	InitialPosition InitialPosition
	// PollInterval is how often the glob and the files are checked: the
	// agent polls rather than using inotify, which works the same on every
	// platform and on network filesystems. Default 1s.
	PollInterval time.Duration
	// CheckpointInterval is how often changed offsets are written. Default 1s.
	CheckpointInterval time.Duration
	// ProgressInterval is how often progress is logged. Default 30s.
	ProgressInterval time.Duration
	// CloseInactive is how long a file that no longer matches the glob
	// (renamed away or deleted by rotation) stays open after its last
	// growth, so late writes by the logging process are still read.
	// Default 5s.
	CloseInactive time.Duration
	// MaxInFlightBytes bounds the data read but not yet confirmed. When it
	// is reached the agent stops reading until confirmations arrive.
	// Default 16 MiB.
	MaxInFlightBytes int64
	// ShutdownTimeout bounds how long Run waits for the sink to flush when
	// its context ends. Default 30s.
	ShutdownTimeout time.Duration
	// IsPermanent reports whether a sink error can never succeed on retry;
	// such lines are counted as failed and skipped. By default every sink
	// error is retried, so no line is ever dropped.
	IsPermanent func(error) bool
	// OnLineError is called for every line that is not sent (malformed,
	// too large, permanently failed); default: logged only.
	OnLineError func(*LineError)
	// OnProgress is called with the counters every ProgressInterval.
	OnProgress func(Stats)
	Clock      clock.Clock
	Logger     *slog.Logger
}

func (c *Config) validate() error {
	if c.Files == "" {
		return errors.New("agent: Files glob is required")
	}
	if _, err := filepath.Match(c.Files, ""); err != nil {
		return fmt.Errorf("agent: Files %q: %w", c.Files, err)
	}
	if c.Sink == nil {
		return errors.New("agent: Sink is required")
	}
	if err := c.Format.Validate(); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	for _, d := range []*struct {
		v   *time.Duration
		def time.Duration
	}{
		{&c.PollInterval, time.Second},
		{&c.CheckpointInterval, time.Second},
		{&c.ProgressInterval, 30 * time.Second},
		{&c.CloseInactive, 5 * time.Second},
		{&c.ShutdownTimeout, 30 * time.Second},
	} {
		if *d.v < 0 {
			return fmt.Errorf("agent: negative duration %v", *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.MaxInFlightBytes < 0 {
		return errors.New("agent: negative MaxInFlightBytes")
	}
	if c.MaxInFlightBytes == 0 {
		c.MaxInFlightBytes = 16 << 20
	}
	c.Clock = clock.OrReal(c.Clock)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Stats are the agent's counters.
type Stats struct {
	LinesRead    int64 // complete lines read from the files
	LinesSent    int64 // confirmed written to the stream
	LinesFailed  int64 // malformed, too large or permanently failed: not sent
	LinesSkipped int64 // empty lines
	Retries      int64 // sends retried after a sink error
	InFlight     int64 // lines handed to the sink and not yet confirmed
	LagBytes     int64 // bytes in the files not yet confirmed
	Files        int   // files open
}

// Agent tails files into a Sink. Create it with New and start it with Run.
type Agent struct {
	cfg Config
	clk clock.Clock
	log *slog.Logger

	// mu guards everything below; sink callbacks take it from other
	// goroutines.
	mu          sync.Mutex
	files       map[fileID]*tailedFile
	saved       []savedFile // loaded offsets not yet matched to a file
	retry       []*pending
	inflight    int64 // bytes held by unconfirmed lines
	dirty       bool  // offsets changed since the last save
	closing     bool  // Run is shutting down: no more retries
	lastSendErr error // latest sink failure, logged with the next resend
	polled      bool  // the first poll has happened
	stats       Stats

	released chan struct{} // signalled when in-flight bytes drop
}

// tailedFile is one file being tailed. Positions are byte offsets.
type tailedFile struct {
	id   fileID
	path string
	f    *os.File
	fp   fingerprint

	gen      int   // bumped on truncation; older confirmations are stale
	readOff  int64 // next byte to read: start of the first line not yet read
	readLine int64 // lines before readOff
	skipping bool  // inside a line longer than MaxRecordBytes

	confOff  int64 // every line before confOff is confirmed
	confLine int64
	pending  []*pending // lines after confOff in file order

	size       int64
	modTime    time.Time
	rotated    bool // no longer matched by the glob
	lastChange time.Time
}

// pending is a line handed to the sink (or a run of lines finished without
// being sent) waiting for the lines before it.
type pending struct {
	tf   *tailedFile
	gen  int
	end  int64 // offset after the line
	line int64 // its 1-based line number
	key  string
	data []byte
	done bool
}

// New validates cfg and loads the saved offsets.
func New(cfg Config) (*Agent, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	a := &Agent{
		cfg:      cfg,
		clk:      cfg.Clock,
		log:      cfg.Logger,
		files:    make(map[fileID]*tailedFile),
		released: make(chan struct{}, 1),
	}
	if cfg.OffsetsPath != "" {
		saved, err := loadOffsets(cfg.OffsetsPath)
		if err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
		a.saved = saved
	}
	return a, nil
}

// Run tails the files until ctx ends, then flushes the sink (bounded by
// ShutdownTimeout), saves the offsets and closes the files. It returns nil
// after a clean stop and an error only if the final offsets could not be
// saved.
func (a *Agent) Run(ctx context.Context) error {
	poll := a.clk.NewTicker(a.cfg.PollInterval)
	defer poll.Stop()
	save := a.clk.NewTicker(a.cfg.CheckpointInterval)
	defer save.Stop()
	progress := a.clk.NewTicker(a.cfg.ProgressInterval)
	defer progress.Stop()

	a.poll(ctx)
	for {
		select {
		case <-ctx.Done():
			return a.shutdown(ctx)
		case <-poll.C():
			a.poll(ctx)
		case <-save.C():
			if err := a.SaveOffsets(); err != nil {
				a.log.Error("agent: saving offsets", "err", err)
			}
		case <-progress.C():
			a.reportProgress()
		}
	}
}

func (a *Agent) poll(ctx context.Context) {
	if err := a.Poll(ctx); err != nil && ctx.Err() == nil {
		a.log.Error("agent: poll", "err", err)
	}
}

func (a *Agent) shutdown(ctx context.Context) error {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.ShutdownTimeout)
	defer cancel()
	if err := a.cfg.Sink.Flush(fctx); err != nil {
		a.log.Warn("agent: flush at shutdown; unconfirmed lines are sent again on restart", "err", err)
	}
	a.mu.Lock()
	a.closing = true
	a.mu.Unlock()
	err := a.SaveOffsets()
	a.mu.Lock()
	for _, tf := range a.files {
		tf.f.Close()
	}
	a.mu.Unlock()
	a.reportProgress()
	return err
}

// Stats returns the current counters.
func (a *Agent) Stats() Stats {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.stats
	s.Files = len(a.files)
	for _, tf := range a.files {
		s.LagBytes += max(tf.size-tf.confOff, 0)
	}
	return s
}

func (a *Agent) reportProgress() {
	s := a.Stats()
	a.log.Info("agent: progress", "read", s.LinesRead, "sent", s.LinesSent, "failed", s.LinesFailed,
		"skipped", s.LinesSkipped, "retries", s.Retries, "in_flight", s.InFlight, "lag_bytes", s.LagBytes, "files", s.Files)
	if a.cfg.OnProgress != nil {
		a.cfg.OnProgress(s)
	}
}

// SaveOffsets writes the confirmed positions if they changed.
func (a *Agent) SaveOffsets() error {
	if a.cfg.OffsetsPath == "" {
		return nil
	}
	a.mu.Lock()
	if !a.dirty {
		a.mu.Unlock()
		return nil
	}
	files := make([]savedFile, 0, len(a.files)+len(a.saved))
	for _, tf := range a.files {
		files = append(files, savedFile{Path: tf.path, ID: tf.id, Fingerprint: tf.fp, Offset: tf.confOff, Line: tf.confLine})
	}
	files = append(files, a.saved...) // not yet matched: keep until the first poll decides
	a.dirty = false
	a.mu.Unlock()
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	if err := saveOffsets(a.cfg.OffsetsPath, files); err != nil {
		a.mu.Lock()
		a.dirty = true
		a.mu.Unlock()
		return err
	}
	return nil
}

// Poll does one pass: it resends failed lines, picks up new and rotated
// files, and reads every file to its end, handing lines to the sink. It
// blocks while the sink or the in-flight limit pushes back and returns
// early, with ctx's error, when ctx ends. Run calls it every PollInterval;
// it must not run concurrently with itself or with Run.
func (a *Agent) Poll(ctx context.Context) error {
	if err := a.resend(ctx); err != nil {
		return err
	}
	a.discover()
	a.mu.Lock()
	order := make([]*tailedFile, 0, len(a.files))
	for _, tf := range a.files {
		order = append(order, tf)
	}
	a.mu.Unlock()
	// Rotated files first: they hold the older lines.
	sort.Slice(order, func(i, j int) bool {
		if order[i].rotated != order[j].rotated {
			return order[i].rotated
		}
		if order[i].path != order[j].path {
			return order[i].path < order[j].path
		}
		return order[i].id.Ino < order[j].id.Ino
	})
	for _, tf := range order {
		if err := a.readFile(ctx, tf); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			a.log.Warn("agent: reading file", "path", tf.path, "err", err)
			continue
		}
		if err := a.maybeClose(ctx, tf); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			a.log.Warn("agent: closing rotated file", "path", tf.path, "err", err)
		}
	}
	return ctx.Err()
}

// discover matches the glob against the open files.
func (a *Agent) discover() {
	paths, _ := filepath.Glob(a.cfg.Files) // the pattern was validated
	seen := make(map[fileID]bool, len(paths))
	for _, p := range paths {
		if a.isOffsetsFile(p) {
			continue
		}
		fi, err := os.Stat(p)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		id, ok := idOf(fi)
		if !ok || seen[id] {
			continue
		}
		seen[id] = true
		a.mu.Lock()
		tf := a.files[id]
		if tf != nil {
			tf.path, tf.rotated = p, false
		}
		a.mu.Unlock()
		if tf == nil {
			a.open(p, id)
		}
	}
	a.mu.Lock()
	for id, tf := range a.files {
		if !seen[id] && !tf.rotated {
			tf.rotated = true
			tf.lastChange = a.clk.Now()
			a.log.Info("agent: file rotated away; reading it to the end", "path", tf.path)
		}
	}
	first := !a.polled
	a.polled = true
	a.mu.Unlock()
	if first {
		a.findRotatedSaved()
	}
}

// isOffsetsFile reports whether path is the agent's own offsets file or one
// of its temporary files, which a broad glob could otherwise match.
func (a *Agent) isOffsetsFile(path string) bool {
	if a.cfg.OffsetsPath == "" {
		return false
	}
	off, err1 := filepath.Abs(a.cfg.OffsetsPath)
	p, err2 := filepath.Abs(path)
	if err1 != nil || err2 != nil || filepath.Dir(off) != filepath.Dir(p) {
		return false
	}
	base := filepath.Base(off)
	return filepath.Base(p) == base || strings.HasPrefix(filepath.Base(p), "."+base+".tmp-")
}

// open starts tailing the file at path, resuming at its saved offset.
func (a *Agent) open(path string, id fileID) {
	f, err := os.Open(path)
	if err != nil {
		a.log.Warn("agent: open", "path", path, "err", err)
		return
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return
	}
	if got, ok := idOf(fi); !ok || got != id { // replaced between Stat and Open
		f.Close()
		return
	}
	tf, err := a.newTailed(f, path, id, fi)
	if err != nil {
		f.Close()
		a.log.Warn("agent: open", "path", path, "err", err)
		return
	}
	a.mu.Lock()
	a.files[id] = tf
	a.dirty = true
	a.mu.Unlock()
}

func (a *Agent) newTailed(f *os.File, path string, id fileID, fi os.FileInfo) (*tailedFile, error) {
	fp, err := readFingerprint(f, fi.Size())
	if err != nil {
		return nil, err
	}
	tf := &tailedFile{id: id, path: path, f: f, fp: fp, lastChange: a.clk.Now()}
	a.mu.Lock()
	first := !a.polled
	var resume *savedFile
	known := false // an offset was saved for this inode
	for i, s := range a.saved {
		if s.ID != id {
			continue
		}
		known = true
		a.saved = append(a.saved[:i], a.saved[i+1:]...)
		if ok, err := s.Fingerprint.matches(f, fi.Size()); err == nil && ok && s.Offset <= fi.Size() {
			resume = &s
		}
		break
	}
	a.mu.Unlock()
	switch {
	case resume != nil:
		tf.fp = resume.Fingerprint
		tf.readOff, tf.readLine = resume.Offset, resume.Line
		a.log.Info("agent: resuming file", "path", path, "offset", resume.Offset, "line", resume.Line)
	case known:
		// Truncated or replaced while the agent was stopped: all of it is new.
		a.log.Info("agent: file changed while stopped; reading it from the start", "path", path)
	case first && a.cfg.InitialPosition == EndOfFile:
		lines, end, err := countLines(f, fi.Size())
		if err != nil {
			return nil, err
		}
		tf.readOff, tf.readLine = end, lines
		a.log.Info("agent: new file, starting at its end", "path", path, "offset", end)
	default:
		a.log.Info("agent: new file", "path", path)
	}
	tf.confOff, tf.confLine = tf.readOff, tf.readLine
	return tf, nil
}

// findRotatedSaved looks, after the first poll, for saved files the glob no
// longer names: a file rotated away while the agent was down still sits in
// its directory under a new name, and its unread lines are sent before it is
// forgotten.
func (a *Agent) findRotatedSaved() {
	a.mu.Lock()
	saved := a.saved
	a.saved = nil
	a.mu.Unlock()
	for _, s := range saved {
		entries, err := os.ReadDir(filepath.Dir(s.Path))
		if err != nil {
			continue
		}
		for _, e := range entries {
			if !e.Type().IsRegular() {
				continue
			}
			p := filepath.Join(filepath.Dir(s.Path), e.Name())
			fi, err := os.Stat(p)
			if err != nil {
				continue
			}
			if id, ok := idOf(fi); !ok || id != s.ID || !sameContent(p, s, fi.Size()) {
				continue
			}
			a.mu.Lock()
			a.saved = append(a.saved, s)
			a.mu.Unlock()
			a.open(p, s.ID)
			a.mu.Lock()
			if tf := a.files[s.ID]; tf != nil {
				tf.rotated = true
				tf.lastChange = a.clk.Now()
			}
			a.mu.Unlock()
			break
		}
	}
	a.mu.Lock()
	if len(saved) > 0 {
		a.dirty = true
	}
	a.saved = nil // the rest are gone
	a.mu.Unlock()
}

// sameContent reports whether the file at path still starts with the bytes
// s was saved for (and is not shorter than its offset).
func sameContent(path string, s savedFile, size int64) bool {
	if size < s.Offset {
		return false
	}
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	ok, err := s.Fingerprint.matches(f, size)
	return err == nil && ok
}

func countLines(f *os.File, size int64) (lines, end int64, err error) {
	br := bufio.NewReaderSize(io.NewSectionReader(f, 0, size), 64<<10)
	var pos int64
	for {
		chunk, err := br.ReadSlice('\n')
		pos += int64(len(chunk))
		if err == nil {
			lines++
			end = pos
			continue
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) {
			return lines, end, nil
		}
		return 0, 0, err
	}
}

// readFile reads tf from readOff to its current end.
func (a *Agent) readFile(ctx context.Context, tf *tailedFile) error {
	fi, err := tf.f.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	if size != tf.size || !fi.ModTime().Equal(tf.modTime) {
		if err := a.checkTruncated(tf, size); err != nil {
			return err
		}
		a.mu.Lock()
		tf.size, tf.modTime = size, fi.ModTime()
		tf.lastChange = a.clk.Now()
		a.mu.Unlock()
	}
	if size <= tf.readOff {
		return nil
	}
	br := bufio.NewReaderSize(io.NewSectionReader(tf.f, tf.readOff, size-tf.readOff), 64<<10)
	pos := tf.readOff
	var long []byte // a line longer than the reader's buffer
	for {
		chunk, err := br.ReadSlice('\n')
		pos += int64(len(chunk))
		switch {
		case err == nil:
		case errors.Is(err, bufio.ErrBufferFull):
			if !tf.skipping {
				long = append(long, chunk...)
				if len(long) > MaxRecordBytes {
					long, tf.skipping = nil, true
				}
			}
			continue
		case errors.Is(err, io.EOF):
			// An unterminated line waits for its newline; one being skipped
			// is passed over now so it is not read again.
			if tf.skipping {
				tf.readOff = pos
			}
			return nil
		default:
			return err
		}
		line := chunk
		if long != nil {
			line = append(long, chunk...)
			long = nil
		}
		if err := a.handleLine(ctx, tf, line, pos); err != nil {
			return err
		}
	}
}

// checkTruncated restarts tf from the top when it shrank below what was
// read or its first bytes changed (copytruncate, or truncated and rewritten
// between two polls).
func (a *Agent) checkTruncated(tf *tailedFile, size int64) error {
	same := size >= tf.readOff
	if same {
		ok, err := tf.fp.matches(tf.f, size)
		if err != nil {
			return err
		}
		same = ok
	}
	if same {
		if tf.fp.Len < fingerprintBytes && size > tf.fp.Len {
			fp, err := readFingerprint(tf.f, size)
			if err != nil {
				return err
			}
			a.mu.Lock()
			tf.fp = fp
			a.dirty = true
			a.mu.Unlock()
		}
		return nil
	}
	fp, err := readFingerprint(tf.f, size)
	if err != nil {
		return err
	}
	a.log.Warn("agent: file truncated or rewritten; reading it from the start", "path", tf.path, "was_read_to", tf.readOff, "size", size)
	a.mu.Lock()
	defer a.mu.Unlock()
	tf.gen++
	tf.fp = fp
	tf.readOff, tf.readLine, tf.skipping = 0, 0, false
	tf.confOff, tf.confLine = 0, 0
	// Lines of the old content still in flight no longer move the offsets;
	// those waiting for a retry are dropped.
	tf.pending = nil
	kept := a.retry[:0]
	for _, p := range a.retry {
		if p.tf == tf {
			a.stats.InFlight--
			a.releaseLocked(p)
			continue
		}
		kept = append(kept, p)
	}
	a.retry = kept
	a.dirty = true
	return nil
}

// handleLine sends one complete line that ends at end.
func (a *Agent) handleLine(ctx context.Context, tf *tailedFile, line []byte, end int64) error {
	lineNo := tf.readLine + 1
	wasSkipping := tf.skipping
	body := bytes.TrimSuffix(bytes.TrimSuffix(line, []byte{'\n'}), []byte{'\r'})

	a.mu.Lock()
	a.stats.LinesRead++
	a.mu.Unlock()

	var lineErr error
	var key string
	var data []byte
	switch {
	case wasSkipping:
		lineErr = fmt.Errorf("%w: line is over the %d-byte Kinesis record limit", ErrMalformed, MaxRecordBytes)
	case len(body) == 0:
		a.mu.Lock()
		a.stats.LinesSkipped++
		a.finishLocked(tf, end, lineNo)
		a.mu.Unlock()
		tf.readOff, tf.readLine, tf.skipping = end, lineNo, false
		return nil
	default:
		key, data, lineErr = a.cfg.Format.Format(body)
	}
	if lineErr != nil {
		a.lineFailed(&LineError{Path: tf.path, Line: lineNo, Err: lineErr})
		a.mu.Lock()
		a.finishLocked(tf, end, lineNo)
		a.mu.Unlock()
		tf.readOff, tf.readLine, tf.skipping = end, lineNo, false
		return nil
	}

	if err := a.acquire(ctx, int64(len(data))); err != nil {
		return err
	}
	p := &pending{tf: tf, end: end, line: lineNo, key: key, data: data}
	a.mu.Lock()
	p.gen = tf.gen
	tf.pending = append(tf.pending, p)
	a.stats.InFlight++
	a.mu.Unlock()
	if err := a.cfg.Sink.Put(ctx, key, data, func(err error) { a.complete(p, err) }); err != nil {
		a.mu.Lock()
		if n := len(tf.pending); n > 0 && tf.pending[n-1] == p {
			tf.pending = tf.pending[:n-1]
		}
		a.stats.InFlight--
		a.releaseLocked(p)
		permanent := ctx.Err() == nil && a.cfg.IsPermanent != nil && a.cfg.IsPermanent(err)
		if permanent {
			a.finishLocked(tf, end, lineNo)
		}
		a.mu.Unlock()
		if !permanent {
			return err
		}
		a.lineFailed(&LineError{Path: tf.path, Line: lineNo, Err: err})
	}
	tf.readOff, tf.readLine = end, lineNo
	return nil
}

func (a *Agent) lineFailed(le *LineError) {
	a.mu.Lock()
	a.stats.LinesFailed++
	a.mu.Unlock()
	a.log.Warn("agent: line not sent", "path", le.Path, "line", le.Line, "err", le.Err)
	if a.cfg.OnLineError != nil {
		a.cfg.OnLineError(le)
	}
}

// finishLocked records a line that needs no confirmation (skipped or
// failed) so the offsets move over it once the lines before it are done.
func (a *Agent) finishLocked(tf *tailedFile, end, line int64) {
	if n := len(tf.pending); n > 0 {
		if last := tf.pending[n-1]; last.done {
			last.end, last.line = end, line // coalesce runs of finished lines
			return
		}
		tf.pending = append(tf.pending, &pending{tf: tf, gen: tf.gen, end: end, line: line, done: true})
		return
	}
	tf.confOff, tf.confLine = end, line
	a.dirty = true
}

// complete is the sink's done callback for p.
func (a *Agent) complete(p *pending, err error) {
	var le *LineError
	a.mu.Lock()
	if err != nil && !a.closing && p.gen == p.tf.gen && (a.cfg.IsPermanent == nil || !a.cfg.IsPermanent(err)) {
		a.stats.Retries++
		a.retry = append(a.retry, p) // keeps its in-flight bytes
		a.lastSendErr = err
		path := p.tf.path
		a.mu.Unlock()
		a.log.Debug("agent: send failed; will retry", "path", path, "line", p.line, "err", err)
		return
	}
	a.stats.InFlight--
	a.releaseLocked(p)
	if err == nil {
		a.stats.LinesSent++
	} else if p.gen == p.tf.gen && !a.closing {
		le = &LineError{Path: p.tf.path, Line: p.line, Err: err}
	}
	if err == nil || le != nil {
		p.done = true
		p.data = nil
		a.advanceLocked(p.tf, p.gen)
	}
	a.mu.Unlock()
	if le != nil {
		a.lineFailed(le)
	}
}

// advanceLocked moves tf's confirmed offset over the finished lines at the
// front of its queue: offsets only cover a contiguous confirmed prefix.
func (a *Agent) advanceLocked(tf *tailedFile, gen int) {
	if gen != tf.gen {
		return
	}
	i := 0
	for ; i < len(tf.pending) && tf.pending[i].done; i++ {
		tf.confOff, tf.confLine = tf.pending[i].end, tf.pending[i].line
	}
	if i > 0 {
		clear(tf.pending[:i])
		tf.pending = tf.pending[i:]
		a.dirty = true
	}
}

// resend hands lines whose send failed to the sink again.
func (a *Agent) resend(ctx context.Context) error {
	a.mu.Lock()
	todo, lastErr := a.retry, a.lastSendErr
	a.retry, a.lastSendErr = nil, nil
	a.mu.Unlock()
	if len(todo) > 0 {
		a.log.Warn("agent: sending lines again after failures", "lines", len(todo), "last_err", lastErr)
	}
	for i, p := range todo {
		a.mu.Lock()
		stale := p.gen != p.tf.gen
		if stale {
			a.stats.InFlight--
			a.releaseLocked(p)
		}
		a.mu.Unlock()
		if stale {
			continue
		}
		if err := a.cfg.Sink.Put(ctx, p.key, p.data, func(err error) { a.complete(p, err) }); err != nil {
			a.mu.Lock()
			a.retry = append(a.retry, todo[i:]...)
			a.mu.Unlock()
			return err
		}
	}
	return nil
}

// acquire reserves n in-flight bytes, waiting while the limit is reached. A
// single line larger than the limit is let through alone.
func (a *Agent) acquire(ctx context.Context, n int64) error {
	for {
		a.mu.Lock()
		if a.inflight == 0 || a.inflight+n <= a.cfg.MaxInFlightBytes {
			a.inflight += n
			a.mu.Unlock()
			return nil
		}
		a.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-a.released:
		}
	}
}

func (a *Agent) releaseLocked(p *pending) {
	a.inflight -= int64(len(p.data))
	select {
	case a.released <- struct{}{}:
	default:
	}
}

// maybeClose closes a rotated file once it has not changed for
// CloseInactive and all its lines are confirmed. Its writer is gone by then,
// so an unterminated last line is sent as it is.
func (a *Agent) maybeClose(ctx context.Context, tf *tailedFile) error {
	a.mu.Lock()
	idle := tf.rotated && a.clk.Now().Sub(tf.lastChange) >= a.cfg.CloseInactive
	size := tf.size
	a.mu.Unlock()
	if !idle {
		return nil
	}
	if tf.readOff < size {
		var tail []byte
		if !tf.skipping {
			tail = make([]byte, size-tf.readOff)
			if _, err := tf.f.ReadAt(tail, tf.readOff); err != nil {
				return err
			}
		}
		if err := a.handleLine(ctx, tf, tail, size); err != nil {
			return err
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(tf.pending) > 0 {
		return nil
	}
	tf.f.Close()
	delete(a.files, tf.id)
	a.dirty = true
	a.log.Info("agent: finished rotated file", "path", tf.path, "lines", tf.confLine)
	return nil
}
