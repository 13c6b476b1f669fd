package chaos

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// WorkerConfig is what every worker process of a Fleet is started with.
type WorkerConfig struct {
	KinesisEndpoint  string
	DynamoDBEndpoint string
	Stream           string
	Table            string        // lease table and application name
	FailoverTime     time.Duration // default 3 s
	ShardSync        time.Duration // default 1 s
	// BatchWork is how long each batch takes between being journaled and
	// checkpointed: the window in which a kill leaves processed records
	// that the next owner redelivers.
	BatchWork time.Duration
	// HandoffTimeout is the workers' lease.Config.HandoffTimeout (0: the
	// default; negative: leases are stolen outright, KCL 2.x's way, for a
	// before/after comparison).
	HandoffTimeout time.Duration
	// RenewInterval, TakeInterval and ExpiryScanInterval are the workers'
	// lease.Config fields (0: the defaults, derived from FailoverTime), so
	// a run can use a FailoverTime no stall of a loaded machine reaches
	// while leases still move every few seconds.
	RenewInterval, TakeInterval, ExpiryScanInterval time.Duration
}

// Fleet runs worker processes by slot ("w0", "w1", ...). Each Start of a
// slot is a new process with a new worker id ("w1.3": slot w1, third
// start) and its own journal, as a restarted process is a new KCL worker.
// Every process it started is killed when the test ends.
type Fleet struct {
	bin string
	dir string
	cfg WorkerConfig

	mu      sync.Mutex
	starts  map[string]int     // slot -> starts so far
	running map[string]*worker // slot -> its live process
	workers []string           // every worker id, in start order
	killed  map[string]time.Time
	tails   map[string]*tail // worker id -> journal reader
}

type worker struct {
	id   string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has been waited for
	err  error         // Wait's result, set before done closes
}

// BuildWorker compiles the worker program (plain, without -race: the test
// process itself may run under -race) into dir and returns its path.
func BuildWorker(t testing.TB, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "worker")
	// By import path, so a test in any package of the module can build it.
	cmd := exec.Command("go", "build", "-o", bin, "github.com/shardflow/shardflow/internal/chaos/worker")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chaos: building the worker: %v\n%s", err, out)
	}
	return bin
}

// NewFleet builds the worker and returns a fleet with no process running.
// Its directory (Dir) is removed when the test ends, unless it failed: then
// the journals and worker logs are kept for a post-mortem.
func NewFleet(t testing.TB, cfg WorkerConfig) *Fleet {
	t.Helper()
	if cfg.FailoverTime == 0 {
		cfg.FailoverTime = 3 * time.Second
	}
	if cfg.ShardSync == 0 {
		cfg.ShardSync = time.Second
	}
	dir, err := os.MkdirTemp("", "shardflow-chaos-")
	if err != nil {
		t.Fatalf("chaos: %v", err)
	}
	f := &Fleet{
		dir: dir, cfg: cfg,
		starts: map[string]int{}, running: map[string]*worker{},
		killed: map[string]time.Time{}, tails: map[string]*tail{},
	}
	t.Cleanup(func() {
		f.killAll()
		if t.Failed() {
			t.Logf("chaos: journals and worker logs kept in %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	f.bin = BuildWorker(t, dir)
	return f
}

// Dir is where journals and worker logs are written.
func (f *Fleet) Dir() string { return f.dir }

// Start starts a new process in slot, which must not be running, and
// returns its worker id. It may be called from any goroutine.
func (f *Fleet) Start(slot string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.running[slot] != nil {
		return "", fmt.Errorf("chaos: slot %s is already running %s", slot, f.running[slot].id)
	}
	f.starts[slot]++
	id := slot + "." + strconv.Itoa(f.starts[slot])
	journal := filepath.Join(f.dir, id+".journal")
	stderr, err := os.Create(f.logPath(id))
	if err != nil {
		return "", fmt.Errorf("chaos: %w", err)
	}
	cmd := exec.Command(f.bin,
		"-kinesis", f.cfg.KinesisEndpoint, "-dynamodb", f.cfg.DynamoDBEndpoint,
		"-stream", f.cfg.Stream, "-table", f.cfg.Table, "-id", id, "-journal", journal,
		"-failover", f.cfg.FailoverTime.String(), "-shard-sync", f.cfg.ShardSync.String(), "-work", f.cfg.BatchWork.String(),
		"-handoff-timeout", f.cfg.HandoffTimeout.String(),
		"-renew", f.cfg.RenewInterval.String(), "-take", f.cfg.TakeInterval.String(), "-expiry-scan", f.cfg.ExpiryScanInterval.String())
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Start(); err != nil {
		stderr.Close()
		return "", fmt.Errorf("chaos: starting %s: %w", id, err)
	}
	w := &worker{id: id, cmd: cmd, done: make(chan struct{})}
	go func() {
		w.err = cmd.Wait()
		stderr.Close()
		close(w.done)
	}()
	f.running[slot] = w
	f.workers = append(f.workers, id)
	f.tails[id] = &tail{path: journal}
	return id, nil
}

// Running returns the slots with a live process, sorted.
func (f *Fleet) Running() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var s []string
	for slot := range f.running {
		s = append(s, slot)
	}
	sort.Strings(s)
	return s
}

// Kill sends SIGKILL to slot's process, waits for it to die and records
// when it was killed (taken just before the signal: nothing it journals
// can be later). It returns the worker id killed; it may be called from
// any goroutine.
func (f *Fleet) Kill(slot string) (string, error) {
	f.mu.Lock()
	w := f.running[slot]
	if w == nil {
		f.mu.Unlock()
		return "", fmt.Errorf("chaos: kill %s: not running", slot)
	}
	select {
	case <-w.done:
		// Killing it now would pass its own failure off as a kill.
		f.mu.Unlock()
		return "", fmt.Errorf("chaos: kill %s: %s had already exited: %v (log %s)", slot, w.id, w.err, f.logPath(w.id))
	default:
	}
	delete(f.running, slot)
	now := time.Now()
	f.killed[w.id] = now
	f.mu.Unlock()
	// For a post-mortem of the kept directory: who was killed when.
	if err := appendLine(filepath.Join(f.dir, "kills"), fmt.Sprintf("%s\t%d\t%s", w.id, now.UnixNano(), now.Format(time.RFC3339Nano))); err != nil {
		return "", err
	}
	if err := w.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return "", fmt.Errorf("chaos: kill %s: %w", w.id, err)
	}
	<-w.done
	return w.id, nil
}

// Stop shuts slot's process down gracefully (SIGTERM) and waits for it to
// exit; an exit status other than 0 is an error naming the worker's log.
func (f *Fleet) Stop(ctx context.Context, slot string) error {
	f.mu.Lock()
	w := f.running[slot]
	delete(f.running, slot)
	f.mu.Unlock()
	if w == nil {
		return fmt.Errorf("chaos: stop %s: not running", slot)
	}
	if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("chaos: stop %s: %w", w.id, err)
	}
	select {
	case <-w.done:
	case <-ctx.Done():
		return fmt.Errorf("chaos: %s did not exit after SIGTERM: %w (log %s)", w.id, ctx.Err(), f.logPath(w.id))
	}
	if w.err != nil {
		return fmt.Errorf("chaos: %s exited after SIGTERM: %w (log %s)", w.id, w.err, f.logPath(w.id))
	}
	return nil
}

// StopAll stops every running process at once (so none takes the leases
// another one releases) and returns their errors joined.
func (f *Fleet) StopAll(ctx context.Context) error {
	slots := f.Running()
	errs := make([]error, len(slots))
	var wg sync.WaitGroup
	for i, slot := range slots {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f.Stop(ctx, slot)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Exited reports the workers that exited on their own (not stopped or
// killed by the fleet) with their error, e.g. a worker that failed.
func (f *Fleet) Exited() map[string]error {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]error{}
	for _, w := range f.running {
		select {
		case <-w.done:
			out[w.id] = fmt.Errorf("%v (log %s)", w.err, f.logPath(w.id))
		default:
		}
	}
	return out
}

func (f *Fleet) logPath(id string) string { return filepath.Join(f.dir, id+".log") }

// Killed returns when each killed worker was killed.
func (f *Fleet) Killed() map[string]time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]time.Time, len(f.killed))
	for id, t := range f.killed {
		out[id] = t
	}
	return out
}

// Journals reads what every worker has journaled so far (incrementally:
// each call reads only what was appended since the last one).
func (f *Fleet) Journals() ([]Journal, error) {
	f.mu.Lock()
	ids := append([]string(nil), f.workers...)
	tails := make([]*tail, len(ids))
	for i, id := range ids {
		tails[i] = f.tails[id]
	}
	f.mu.Unlock()
	out := make([]Journal, len(ids))
	for i, id := range ids {
		es, err := tails[i].read()
		if err != nil {
			return nil, fmt.Errorf("chaos: journal of %s: %w", id, err)
		}
		out[i] = Journal{Worker: id, Entries: es}
	}
	return out, nil
}

func (f *Fleet) killAll() {
	f.mu.Lock()
	ws := make([]*worker, 0, len(f.running))
	for slot, w := range f.running {
		ws = append(ws, w)
		delete(f.running, slot)
	}
	f.mu.Unlock()
	for _, w := range ws {
		_ = w.cmd.Process.Signal(syscall.SIGKILL)
		<-w.done
	}
}

func appendLine(path, line string) error {
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("chaos: %w", err)
	}
	_, err = fh.WriteString(line + "\n")
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("chaos: %w", err)
	}
	return nil
}

// tail reads a journal incrementally.
type tail struct {
	mu      sync.Mutex
	path    string
	off     int64
	entries []Entry
}

func (t *tail) read() ([]Entry, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fh, err := os.Open(t.path)
	if errors.Is(err, os.ErrNotExist) {
		return t.entries, nil // not created yet
	}
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > t.off {
		b := make([]byte, st.Size()-t.off)
		n, err := fh.ReadAt(b, t.off)
		if err != nil && n < len(b) {
			return nil, err
		}
		es, used, err := parseLines(b[:n])
		if err != nil {
			return nil, err
		}
		t.entries = append(t.entries, es...)
		t.off += int64(used)
	}
	return t.entries[:len(t.entries):len(t.entries)], nil
}
