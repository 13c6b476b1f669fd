package chaos

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/shardflow/shardflow/checkpoint"
)

// Produced is one record the producer was asked to put, with its outcome.
type Produced struct {
	ID      string // the payload, unique per record: "<key>:<counter>"
	Key     string // partition key
	Counter int    // per-key counter, increasing in Put order
	// ShardID and SequenceNumber are where the Result says the record was
	// stored (the copy every other copy is an extra of).
	ShardID, SequenceNumber string
	Failed                  bool // no successful outcome: not required downstream
}

// Input is what Reconcile checks.
type Input struct {
	Produced []Produced
	Journals []Journal
	// Killed holds when each worker killed with SIGKILL was killed.
	Killed map[string]time.Time
	// Parents maps each shard to its parent shards (ListShards at the end).
	Parents map[string][]string
	// FailoverTime is the workers' lease FailoverTime; when set, the report
	// counts the duplicates caused by a worker that took a live owner's
	// lease less than that long after it started (JoinSteals).
	FailoverTime time.Duration
}

// Duplicate causes. Only DupCrash is explained: the previous copy was
// processed by a worker killed while owning the shard, after its last
// checkpoint, and the next owner started after the kill.
const (
	DupCrash          = "crash: after the last checkpoint of a killed owner"
	DupLeaseLost      = "lease lost by a live owner (stolen or expired)"
	DupBeforeKill     = "resumed from a killed owner that was still alive then"
	DupBehindCkpt     = "resumed behind a checkpoint the previous owner wrote"
	DupAfterShutdown  = "after a graceful shutdown of the previous owner"
	DupSameOwnership  = "delivered twice within one ownership"
	DupStaleOwner     = "processed by an old owner after the shard had moved on (two owners at once)"
	DupAfterEnd       = "after the previous owner checkpointed SHARD_END"
	DupAbandonedOwner = "previous owner stopped without a lifecycle call and was not killed"
)

// Report is the outcome of Reconcile: figures, and the broken promises.
type Report struct {
	Produced, FailedPuts int
	Processed            int // record entries in all journals
	Positions            int // distinct stream positions processed
	Workers, Kills       int
	Instances            int // processor instances (continuous ownerships)
	ExtraCopies          int // produced records stored more than once (seen downstream)

	Missing []string // produced and never processed at the position its Result names
	Unknown []string // processed but never produced
	// Duplicates counts processings of a position beyond its first, by cause.
	Duplicates  map[string]int
	Unexplained []string // one line per duplicate not explained by a crash
	// JoinSteals counts the unexplained duplicates where the shard moved
	// between two live owners and the taker had started less than
	// FailoverTime before (a joining worker stealing for balance before
	// it can know which workers are alive).
	JoinSteals int
	// Overlaps counts pairs of instances that processed one shard at once
	// (the later one started before the earlier one's last record or
	// checkpoint).
	Overlaps          int
	OrderViolations   []string
	ChildBeforeParent []string
	// Resume is, for each shard a killed worker was processing, the time
	// from the kill to another instance's Initialize on it; NotResumed
	// counts those never resumed.
	Resume     []time.Duration
	NotResumed int
	// Handover is, for each ownership that ended with ShutdownRequested
	// (a graceful handoff or shutdown), the time from its Shutdown entry
	// to the next owner's Initialize on the shard, sorted.
	Handover []time.Duration
}

// Problems lists every broken promise (up to a few examples each); empty
// means the run kept all of them.
func (r *Report) Problems() []string {
	var p []string
	add := func(what string, items []string) {
		if len(items) == 0 {
			return
		}
		shown := items
		if len(shown) > 10 {
			shown = shown[:10]
		}
		p = append(p, fmt.Sprintf("%s: %d, e.g.\n\t%s", what, len(items), strings.Join(shown, "\n\t")))
	}
	add("records produced and never processed", r.Missing)
	add("records processed and never produced", r.Unknown)
	add("duplicates not explained by a crash", r.Unexplained)
	add("per-key or per-shard order violations within one ownership", r.OrderViolations)
	add("child shards started before their parents ended", r.ChildBeforeParent)
	return p
}

// Summary is a one-paragraph account of the figures.
func (r *Report) Summary() string {
	var b strings.Builder
	dups := 0
	for _, n := range r.Duplicates {
		dups += n
	}
	fmt.Fprintf(&b, "produced=%d (failed puts %d, extra copies stored %d) processed=%d positions=%d workers=%d kills=%d ownerships=%d overlaps=%d duplicates=%d",
		r.Produced, r.FailedPuts, r.ExtraCopies, r.Processed, r.Positions, r.Workers, r.Kills, r.Instances, r.Overlaps, dups)
	causes := make([]string, 0, len(r.Duplicates))
	for c := range r.Duplicates {
		causes = append(causes, c)
	}
	sort.Strings(causes)
	for _, c := range causes {
		fmt.Fprintf(&b, "\n  duplicates, %s: %d", c, r.Duplicates[c])
	}
	if moved := r.Duplicates[DupLeaseLost] + r.Duplicates[DupStaleOwner]; moved > 0 {
		fmt.Fprintf(&b, "\n  of those moved between live owners: %d by a taker started less than FailoverTime before (joining), %d by one started earlier",
			r.JoinSteals, moved-r.JoinSteals)
	}
	if len(r.Resume) > 0 {
		fmt.Fprintf(&b, "\n  kill -9 to resume elsewhere: n=%d min=%v median=%v max=%v (not resumed: %d)",
			len(r.Resume), r.Resume[0].Round(time.Millisecond), r.Resume[len(r.Resume)/2].Round(time.Millisecond),
			r.Resume[len(r.Resume)-1].Round(time.Millisecond), r.NotResumed)
	} else {
		fmt.Fprintf(&b, "\n  kill -9 to resume elsewhere: none measured (not resumed: %d)", r.NotResumed)
	}
	if n := len(r.Handover); n > 0 {
		fmt.Fprintf(&b, "\n  graceful hand-over, ShutdownRequested to the next owner's Initialize: n=%d min=%v median=%v max=%v",
			n, r.Handover[0].Round(time.Millisecond), r.Handover[n/2].Round(time.Millisecond), r.Handover[n-1].Round(time.Millisecond))
	}
	return b.String()
}

// instance is one processor instance: one continuous ownership of a shard.
type instance struct {
	proc, worker, shard string
	init                time.Time
	ckpt                checkpoint.Position // last successful checkpoint, or the start
	terminal            Kind                // "" while none was journaled
	lastWork            time.Time           // time of its last Record or Checkpoint entry
	end                 time.Time           // time of its terminal entry
}

// occurrence is one processing of one record.
type occurrence struct {
	inst *instance
	time time.Time
	seq  int // order in its journal
	pos  checkpoint.Position
	key  string
	data string
}

func posKey(shard string, p checkpoint.Position) string {
	return fmt.Sprintf("%s@%s/%d", shard, p.SequenceNumber, p.SubSequenceNumber)
}

// Reconcile checks the journals against the produced records.
func Reconcile(in Input) *Report {
	r := &Report{Workers: len(in.Journals), Kills: len(in.Killed), Duplicates: map[string]int{}}
	insts := map[string]*instance{}
	var occs []*occurrence
	endBegin := map[string]time.Time{} // shard -> first ShardEnded call on it
	started := map[string]time.Time{}  // worker -> its Start entry
	for _, j := range in.Journals {
		for i, e := range j.Entries {
			if e.Kind == Start {
				started[j.Worker] = e.Time
			}
			if e.Proc == "" {
				continue
			}
			in := insts[e.Proc]
			if in == nil {
				in = &instance{proc: e.Proc, worker: j.Worker, shard: e.Shard}
				insts[e.Proc] = in
			}
			switch e.Kind {
			case Init:
				in.init, in.ckpt = e.Time, e.Pos
			case Checkpoint:
				in.ckpt, in.lastWork = e.Pos, e.Time
			case EndBegin:
				if t, ok := endBegin[e.Shard]; !ok || e.Time.Before(t) {
					endBegin[e.Shard] = e.Time
				}
			case Record:
				in.lastWork = e.Time
				occs = append(occs, &occurrence{inst: in, time: e.Time, seq: i, pos: e.Pos, key: e.Key, data: e.Data})
			}
			if e.Kind.terminal() {
				in.terminal, in.end = e.Kind, e.Time
			}
		}
	}
	r.Instances, r.Processed = len(insts), len(occs)
	r.checkCoverage(in.Produced, in.Journals, occs)
	r.checkDuplicates(occs, in.Killed, started, in.FailoverTime)
	r.checkOrder(in.Produced, occs)
	r.checkChildren(in.Parents, insts, occs, endBegin)
	r.measureResume(insts, in.Killed)
	r.measureHandover(insts)
	r.countOverlaps(insts)
	return r
}

// Missing returns the produced records (successful puts) not processed yet
// at the position their Result names: cheap enough to poll.
func Missing(produced []Produced, journals []Journal) []Produced {
	seen := map[string]bool{}
	for _, j := range journals {
		for _, e := range j.Entries {
			if e.Kind == Record {
				seen[e.Shard+"@"+e.Pos.SequenceNumber+"@"+e.Data] = true
			}
		}
	}
	var out []Produced
	for _, p := range produced {
		if !p.Failed && !seen[p.ShardID+"@"+p.SequenceNumber+"@"+p.ID] {
			out = append(out, p)
		}
	}
	return out
}

// countOverlaps counts pairs of instances of one shard where the later
// started before the earlier one's last record or checkpoint: two workers
// processing one shard at once.
func (r *Report) countOverlaps(insts map[string]*instance) {
	byShard := map[string][]*instance{}
	for _, in := range insts {
		if !in.init.IsZero() {
			byShard[in.shard] = append(byShard[in.shard], in)
		}
	}
	for _, is := range byShard {
		for _, a := range is {
			for _, b := range is {
				if a != b && a.init.Before(b.init) && a.lastWork.After(b.init) {
					r.Overlaps++
				}
			}
		}
	}
}

func (r *Report) checkCoverage(produced []Produced, journals []Journal, occs []*occurrence) {
	byID := make(map[string]*Produced, len(produced))
	for i := range produced {
		p := &produced[i]
		byID[p.ID] = p
		r.Produced++
		if p.Failed {
			r.FailedPuts++
		}
	}
	copies := map[string]map[string]bool{} // ID -> stream records (shard@seq) seen
	for _, o := range occs {
		p := byID[o.data]
		if p == nil {
			r.Unknown = append(r.Unknown, fmt.Sprintf("%q at %s by %s", o.data, posKey(o.inst.shard, o.pos), o.inst.proc))
			continue
		}
		if copies[p.ID] == nil {
			copies[p.ID] = map[string]bool{}
		}
		copies[p.ID][o.inst.shard+"@"+o.pos.SequenceNumber] = true
	}
	for _, p := range produced {
		if len(copies[p.ID]) > 1 {
			r.ExtraCopies++
		}
	}
	for _, p := range Missing(produced, journals) {
		r.Missing = append(r.Missing, fmt.Sprintf("%s stored at %s@%s", p.ID, p.ShardID, p.SequenceNumber))
	}
}

func (r *Report) checkDuplicates(occs []*occurrence, killed, started map[string]time.Time, failover time.Duration) {
	byPos := map[string][]*occurrence{}
	for _, o := range occs {
		k := posKey(o.inst.shard, o.pos)
		byPos[k] = append(byPos[k], o)
	}
	r.Positions = len(byPos)
	for k, os := range byPos {
		if len(os) < 2 {
			continue
		}
		sort.SliceStable(os, func(i, j int) bool { return os[i].time.Before(os[j].time) })
		for i := 1; i < len(os); i++ {
			prev, cur := os[i-1], os[i]
			cause := classify(prev, cur, killed)
			r.Duplicates[cause]++
			if cause == DupLeaseLost || cause == DupStaleOwner {
				taker := cur.inst
				if prev.inst.init.After(taker.init) {
					taker = prev.inst
				}
				if st, ok := started[taker.worker]; ok && failover > 0 && taker.init.Sub(st) < failover {
					r.JoinSteals++
				}
			}
			if cause != DupCrash {
				r.Unexplained = append(r.Unexplained, fmt.Sprintf("%s (%s): by %s at %s, again by %s at %s: %s",
					k, cur.data, prev.inst.proc, prev.time.Format("15:04:05.000"), cur.inst.proc, cur.time.Format("15:04:05.000"), cause))
			}
		}
	}
	sort.Strings(r.Unexplained)
}

func classify(prev, cur *occurrence, killed map[string]time.Time) string {
	p := prev.inst
	switch {
	case p == cur.inst:
		return DupSameOwnership
	case cur.inst.init.Before(p.init):
		return DupStaleOwner
	case !p.ckpt.IsSentinel() && prev.pos.Compare(p.ckpt) <= 0:
		return DupBehindCkpt
	case p.terminal == Lost:
		return DupLeaseLost
	case p.terminal == Shutdown:
		return DupAfterShutdown
	case p.terminal == Ended:
		return DupAfterEnd
	}
	kt, wasKilled := killed[p.worker]
	switch {
	case wasKilled && cur.inst.init.After(kt):
		return DupCrash
	case wasKilled:
		return DupBeforeKill
	}
	return DupAbandonedOwner
}

func (r *Report) checkOrder(produced []Produced, occs []*occurrence) {
	byID := make(map[string]*Produced, len(produced))
	for i := range produced {
		byID[produced[i].ID] = &produced[i]
	}
	type state struct {
		pos     checkpoint.Position
		counter map[string]int
	}
	st := map[*instance]*state{}
	// occs are in journal order per worker, which is processing order per
	// instance (one goroutine calls an instance's processor).
	for _, o := range occs {
		s := st[o.inst]
		if s == nil {
			s = &state{counter: map[string]int{}}
			st[o.inst] = s
		} else if o.pos.Compare(s.pos) <= 0 {
			r.OrderViolations = append(r.OrderViolations, fmt.Sprintf("%s: %s after %s", o.inst.proc, posKey(o.inst.shard, o.pos), posKey(o.inst.shard, s.pos)))
		}
		s.pos = o.pos
		p := byID[o.data]
		if p == nil || o.inst.shard != p.ShardID || o.pos.SequenceNumber != p.SequenceNumber {
			continue // an extra copy may sit out of order (producer doc)
		}
		if c, ok := s.counter[p.Key]; ok && p.Counter <= c {
			r.OrderViolations = append(r.OrderViolations, fmt.Sprintf("%s: key %s counter %d after %d", o.inst.proc, p.Key, p.Counter, c))
		}
		s.counter[p.Key] = p.Counter
	}
}

// checkChildren checks that each child shard was first initialised after
// every parent had been ended (ShardEnded called) and every record of the
// parents had been processed at least once.
func (r *Report) checkChildren(parents map[string][]string, insts map[string]*instance, occs []*occurrence, endBegin map[string]time.Time) {
	firstInit := map[string]time.Time{} // shard -> first Initialize on it
	for _, in := range insts {
		if in.init.IsZero() {
			continue
		}
		if t, ok := firstInit[in.shard]; !ok || in.init.Before(t) {
			firstInit[in.shard] = in.init
		}
	}
	// The first processing of each position, and the latest of those per
	// shard: every parent record must have been processed once before a
	// child starts.
	first := map[string]time.Time{}
	shardOf := map[string]string{}
	for _, o := range occs {
		k := posKey(o.inst.shard, o.pos)
		if t, ok := first[k]; !ok || o.time.Before(t) {
			first[k], shardOf[k] = o.time, o.inst.shard
		}
	}
	lastFirst := map[string]time.Time{}
	for k, t := range first {
		if t.After(lastFirst[shardOf[k]]) {
			lastFirst[shardOf[k]] = t
		}
	}
	children := make([]string, 0, len(parents))
	for c := range parents {
		children = append(children, c)
	}
	sort.Strings(children)
	for _, c := range children {
		start, ok := firstInit[c]
		if !ok {
			continue
		}
		for _, p := range parents[c] {
			if t, ok := endBegin[p]; !ok || !t.Before(start) {
				r.ChildBeforeParent = append(r.ChildBeforeParent, fmt.Sprintf("child %s started at %s, parent %s first reached ShardEnded at %s",
					c, start.Format("15:04:05.000"), p, t.Format("15:04:05.000")))
			}
			if t, ok := lastFirst[p]; ok && !t.Before(start) {
				r.ChildBeforeParent = append(r.ChildBeforeParent, fmt.Sprintf("child %s started at %s, parent %s still had a record first processed at %s",
					c, start.Format("15:04:05.000"), p, t.Format("15:04:05.000")))
			}
		}
	}
}

func (r *Report) measureHandover(insts map[string]*instance) {
	for _, x := range insts {
		if x.terminal != Shutdown {
			continue
		}
		var next time.Time
		for _, y := range insts {
			if y.shard == x.shard && y != x && !y.init.Before(x.end) && (next.IsZero() || y.init.Before(next)) {
				next = y.init
			}
		}
		if !next.IsZero() {
			r.Handover = append(r.Handover, next.Sub(x.end))
		}
	}
	sort.Slice(r.Handover, func(i, j int) bool { return r.Handover[i] < r.Handover[j] })
}

func (r *Report) measureResume(insts map[string]*instance, killed map[string]time.Time) {
	for _, x := range insts {
		kt, ok := killed[x.worker]
		if !ok || x.terminal != "" || x.init.IsZero() {
			continue
		}
		var best time.Time
		for _, y := range insts {
			if y.shard == x.shard && y.worker != x.worker && y.init.After(kt) && (best.IsZero() || y.init.Before(best)) {
				best = y.init
			}
		}
		if best.IsZero() {
			r.NotResumed++
			continue
		}
		r.Resume = append(r.Resume, best.Sub(kt))
	}
	sort.Slice(r.Resume, func(i, j int) bool { return r.Resume[i] < r.Resume[j] })
}
