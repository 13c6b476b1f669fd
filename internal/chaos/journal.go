package chaos

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/shardflow/shardflow/checkpoint"
)

// Kind says what a journal Entry records.
type Kind string

// Journal entry kinds. A processor instance (one RecordProcessor, i.e. one
// continuous ownership of a shard) writes Init, then Record and Checkpoint
// entries, then at most one of Lost, Shutdown or Ended; a process killed
// with SIGKILL writes none of them.
const (
	// Start: the worker process started (Data holds its pid).
	Start Kind = "start"
	// Taken and Dropped: the consumer took or lost a lease (its metrics);
	// informative, the processor entries are what the checks use.
	Taken   Kind = "taken"
	Dropped Kind = "dropped"
	// Init: Initialize was called; Pos is the starting position.
	Init Kind = "init"
	// Record: one record was processed (Pos, Key, Data).
	Record Kind = "rec"
	// Checkpoint: a checkpoint at Pos was written successfully.
	Checkpoint Kind = "ckpt"
	// EndBegin: ShardEnded was called (written before the SHARD_END
	// checkpoint, so it precedes anything that checkpoint lets start).
	EndBegin Kind = "endbegin"
	// Ended: SHARD_END was checkpointed.
	Ended Kind = "ended"
	// Lost: LeaseLost was called.
	Lost Kind = "lost"
	// Shutdown: ShutdownRequested checkpointed (Pos) and returned.
	Shutdown Kind = "shutdown"
	// Stopped: consumer.Shutdown returned; the process exits next.
	Stopped Kind = "stopped"
)

// terminal reports whether k ends a processor instance.
func (k Kind) terminal() bool { return k == Lost || k == Shutdown || k == Ended }

// Entry is one line of a worker's journal.
type Entry struct {
	Time  time.Time
	Kind  Kind
	Proc  string // processor instance, "<worker id>/<n>"; empty for process entries
	Shard string
	Pos   checkpoint.Position
	Key   string // partition key (Record)
	Data  string // payload (Record), pid (Start)
}

// Journal is what one worker process (one worker id) wrote.
type Journal struct {
	Worker  string
	Entries []Entry
}

// AppendEntry appends e as one line: tab-separated fields, none of which
// may contain a tab or newline (shard ids, decimal sequence numbers and the
// test's keys and payloads do not).
func AppendEntry(b []byte, e Entry) []byte {
	b = strconv.AppendInt(b, e.Time.UnixNano(), 10)
	for _, s := range []string{string(e.Kind), e.Proc, e.Shard, posString(e.Pos)} {
		b = append(b, '\t')
		b = append(b, s...)
	}
	b = append(b, '\t')
	b = strconv.AppendInt(b, e.Pos.SubSequenceNumber, 10)
	b = append(b, '\t')
	b = append(b, e.Key...)
	b = append(b, '\t')
	b = append(b, e.Data...)
	return append(b, '\n')
}

func posString(p checkpoint.Position) string {
	if p.IsSentinel() {
		return p.Sentinel
	}
	return p.SequenceNumber
}

// ParseEntry parses one line written by AppendEntry (without its newline).
func ParseEntry(line []byte) (Entry, error) {
	f := strings.Split(string(line), "\t")
	if len(f) != 8 {
		return Entry{}, fmt.Errorf("chaos: journal line %q: %d fields, want 8", line, len(f))
	}
	ns, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return Entry{}, fmt.Errorf("chaos: journal line %q: time: %w", line, err)
	}
	e := Entry{Time: time.Unix(0, ns), Kind: Kind(f[1]), Proc: f[2], Shard: f[3], Key: f[6], Data: f[7]}
	if f[4] != "" {
		sub, err := strconv.ParseInt(f[5], 10, 64)
		if err != nil {
			return Entry{}, fmt.Errorf("chaos: journal line %q: subsequence: %w", line, err)
		}
		if e.Pos, err = checkpoint.Parse(f[4], sub); err != nil {
			return Entry{}, fmt.Errorf("chaos: journal line %q: %w", line, err)
		}
	}
	return e, nil
}

// parseLines parses the complete lines of b and returns how many bytes they
// took; a last line without its newline (a process killed mid-write) is
// left for a later call.
func parseLines(b []byte) ([]Entry, int, error) {
	var out []Entry
	used := 0
	for {
		i := bytes.IndexByte(b[used:], '\n')
		if i < 0 {
			return out, used, nil
		}
		e, err := ParseEntry(b[used : used+i])
		if err != nil {
			return out, used, err
		}
		out = append(out, e)
		used += i + 1
	}
}
