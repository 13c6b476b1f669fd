package lease

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/shardflow/shardflow/clock"
)

// Config configures a Coordinator. Zero fields take the defaults noted,
// which are KCL's where KCL has one.
type Config struct {
	// WorkerID identifies this worker as leaseOwner. Required; must be
	// unique in the fleet (e.g. host name plus a UUID).
	WorkerID string
	// FailoverTime is how long a lease may go without its counter changing
	// before other workers consider it expired. Default 10s (KCL).
	FailoverTime time.Duration
	// RenewInterval is how often held leases are renewed. Default
	// FailoverTime/3 - 25ms (KCL). Must be below FailoverTime.
	RenewInterval time.Duration
	// TakeInterval is how often the taker balances: takes available leases
	// and steals from overloaded workers (the latter only once it has
	// watched the table for longer than FailoverTime). Default
	// (FailoverTime+25ms)*2 (KCL).
	TakeInterval time.Duration
	// ExpiryScanInterval is how often, between balancing passes, the taker
	// scans only to take available leases (unowned, released or expired),
	// never stealing. Default FailoverTime+25ms: a lease whose owner died is
	// then seen expired within two scans, so it moves within FailoverTime
	// plus one TakeInterval, and released leases move within about half a
	// TakeInterval. It costs one extra consistent Scan per TakeInterval. A
	// negative value disables it (KCL's behaviour).
	ExpiryScanInterval time.Duration
	// ScanScaling says how the scan intervals (TakeInterval and
	// ExpiryScanInterval) follow the fleet size W (the workers holding
	// unexpired leases in this worker's last scan, itself included).
	// Every worker scans the whole table, so with fixed intervals (ScanFixed)
	// the fleet's reads per lease grow with W: 6·W item reads per lease per
	// minute with KCL's timings.
	//
	// ScanSublinear (the default) may instead multiply both intervals by
	// √(W/3) above 3 workers, so that the fleet's scans grow with √W. A
	// dead worker's lease is taken at the first scan of some worker that
	// finds its counter unchanged for longer than FailoverTime, so longer
	// intervals would slow crash failover; while they are stretched, each
	// worker therefore reads one lease of every other worker (a consistent
	// GetItem each) FailoverTime after each of its scans, and scans at once
	// if one has not moved (or changed owner). Those probes are W·(W-1)
	// GetItems per scan period for the fleet, and DynamoDB bills read
	// units, not items: a consistent GetItem costs a unit per item (4 KiB
	// rounded up), a consistent Scan one per 4 KiB of items summed. So on
	// a small table (30 leases of about 160 bytes are a 2-unit scan) the probes
	// cost more than the scans they save. ScanSublinear therefore prices
	// both schedules at each scan, from that scan's lease item sizes and
	// W: ScanFixed's intervals without probes, and the stretched ones
	// with probes, in read units per minute; it runs the stretched one only
	// while it is the cheaper, otherwise it behaves exactly as ScanFixed,
	// and it switches only when the other is cheaper by 10 % (so a table
	// near the break-even does not flip at each scan). The stretched
	// intervals are a candidate only where a probe fits after each of
	// their scans: the next scan more than a RenewInterval after the
	// probes (FailoverTime+25ms after the scan). Stretched without
	// probes would be cheaper on any table and only slow failover. With
	// KCL's timings that is from 6 workers up (at 4 and 5 workers the
	// stretched ExpiryScanInterval, 11.6s and 12.9s, is below the 13.3s a
	// probe needs, so they run ScanFixed's intervals whatever the table);
	// a shorter ExpiryScanInterval needs a larger fleet (5s with the
	// default TakeInterval: from 27 workers). With KCL's timings at 10
	// workers it switches to the stretched schedule from a scan of 14
	// units (about 55 KB of lease items: 41 leases of 1.3 KB, or 340 of
	// 160 B) and back at 8 (TestScanSublinearChoiceHysteresis). Up to 3
	// workers both are ScanFixed's.
	//
	// Measured on the fake clock (TestScanScheduleReadUnits, the
	// coordinators' reads, steady state, KCL's timings, lease items
	// checkpointed mid-stream), per lease per minute, and crash to every
	// lease held again (mean, max of 5 crash instants), ScanSublinear
	// (ScanFixed):
	//
	//	                               item reads   read units     failover
	//	 3 workers,  30 leases ~160B   18.0 (18.0)   1.20 (1.20)   16.8s, 18.7s (the same)
	//	10 workers,  30 leases ~160B   59.8 (59.8)   3.99 (3.99)   11.0s, 13.0s (the same)
	//	 3 workers, 100 leases ~1.3KB  18.0 (18.0)   5.94 (5.94)   16.8s, 18.7s (the same)
	//	 4 workers, 100 leases ~1.3KB  24.0 (24.0)   7.92 (7.92)   16.2s, 18.0s (the same)
	//	 5 workers, 100 leases ~1.3KB  30.0 (30.0)   9.90 (9.90)   16.7s, 19.0s (the same)
	//	 6 workers, 100 leases ~1.3KB  26.6 (35.8)   9.65 (11.82)  19.8s, 21.9s (16.7s, 19.7s)
	//	10 workers, 100 leases ~1.3KB  36.1 (59.8)  13.86 (19.75)  16.8s, 20.3s (13.6s, 15.0s)
	//	10 workers, 300 leases ~1.3KB  34.1 (59.8)  11.80 (19.55)  21.6s, 24.3s (16.6s, 18.0s)
	//
	// (Items of 164 B and 1318 B.) So where it stretches, ScanSublinear
	// trades some failover (the probes find a dead worker a FailoverTime
	// after the scan before its death, which is further from the crash
	// than ScanFixed's next scan) for fewer read units: at least 10 % (the
	// hysteresis), 18 % at 6 workers, 30 % at 10 on 100 leases and 40 % on
	// 300 here; ScanFixed keeps the fastest failover everywhere.
	//
	// (The figures quoted here before read units were counted were item
	// reads alone, with the intervals always stretched: at 10 workers on
	// 30 leases 42.6 item reads per lease per minute against ScanFixed's
	// 69.8, shard sync included, but in read units, the coordinators'
	// reads alone, 12.0 against 4.0.)
	//
	// Where the store has an owner index (DynamoStore on a table with
	// OwnerIndexName, which NewDynamoStore creates with new tables, and
	// MemoryStore), a probe that finds a worker suspect need not scan: it
	// can list that worker's leases (ListOwned, a Query of keys), read each
	// with a consistent GetItem, and take those unchanged for longer than
	// FailoverTime up to its share, by the same rules as a scan. It does
	// so only where that costs fewer DynamoDB read units than the scan: a
	// GetItem costs a unit per item, a consistent Scan one per 4 KiB of
	// items, so the index pays when a worker holds fewer leases than the
	// table fills 4 KiB units (large tables, large lease items). It scans
	// after all when a read fails (an index the workers may not query is
	// left alone for an hour), at a second suspect before the next scan,
	// at a suspect found alive (its probe handed over, another of its
	// leases renewed), and at one that holds nothing any more and whose
	// probe another worker took (others handled that event: a graceful
	// leave, the last of a crashed worker's leases): a scan then observes
	// the whole table, so that a worker that died meanwhile is taken over
	// no later than by the scan path. Nothing changes in steady state (no
	// probe finds a suspect) nor where there are no probes (3 workers or
	// fewer, small tables). Measured on the fake clock
	// (TestOwnerIndexTableCost, the coordinators' reads only, crash + join
	// or leave + join every 90s), per lease per minute; the read units are
	// estimated from the items' sizes (see Coordinator.targetedIsCheaper):
	//
	//	                               item reads  read units  failover
	//	10 workers, 30 leases ~160B    60.1, 59.9  4.06, 3.99  11.0s, 13.0s  (no probes: fixed intervals; index unused)
	//	10 workers, 100 leases ~1.3KB  40.4, 38.8  15.2, 14.7  16.8s, 20.3s  (without the index)
	//	                               39.7, 38.8  15.1, 14.7  16.8s, 20.3s  (with it; plus 0.1, 0.0 index items)
	//
	// So the index saves little in a leaderless fleet: every worker must
	// still observe every lease's counter to tell a dead owner, which only
	// a consistent read of the lease item gives, and a keys-only index
	// holds no counters; it replaces only the scans that a crash triggers.
	ScanScaling ScanScaling
	// InitialTakeDelay applies when a worker's first take pass finds
	// unowned leases (a fleet starting on a new table, or after all workers
	// released their leases): it takes one of them, then waits this long
	// before taking its share. Workers started within that time see each
	// other's first lease and split the rest without stealing, so no
	// records are redelivered at start-up. Default RenewInterval; must be
	// below TakeInterval.
	//
	// A lone worker waits too, because it cannot know it is alone: a
	// KCL-compatible table shows a worker only through the leases it holds
	// (KCL 2.x workers would parse any presence item as a lease), so on a
	// table where nobody holds a lease a lone worker and each worker of a
	// fleet started together see the same thing. Skipping the wait there
	// would have every such worker try to take every lease (W×L
	// conditional writes), one of them win them all and hold every
	// shard's prefetch buffers, and the others move leases back to
	// themselves (steals, with records processed twice, when
	// HandoffTimeout < 0). A service that runs a single worker, and a test,
	// sets InitialTakeDelay -1 to start every shard in the first pass.
	//
	// A negative value disables it: the first pass takes everything up to
	// the target at once (KCL's behaviour), and workers started a moment
	// later steal their share once they have watched the table for longer
	// than FailoverTime (no worker steals before that: until then it
	// cannot tell live workers from dead ones).
	InitialTakeDelay time.Duration
	// HandoffTimeout bounds a graceful handoff. A worker that wants a lease
	// a live worker holds (to balance) does not take it: it marks it for
	// handoff (KCL 3.x's leaseOwner/checkpointOwner), the holder sees the
	// mark at its next renewal, finishes the batch in flight, checkpoints
	// and hands the lease over, and only then does the new owner start,
	// from that checkpoint: nothing is processed twice. A holder that has
	// not handed over HandoffTimeout after it noticed the mark gives the
	// lease up (Lost, ErrHandoffTimedOut) and stops renewing it. Once its
	// processing has stopped, the consumer hands the lease over at once
	// (Coordinator.HandOverTimedOut); if it never stops, the new owner
	// falls back to a take at HandoffTimeout + FailoverTime after the mark
	// (on its own clock), so the holder has always stopped first.
	// Default 30s (KCL 3.x's
	// gracefulLeaseHandoffTimeoutMillis). A negative value disables
	// graceful handoff: leases are stolen outright (KCL 2.x's behaviour).
	HandoffTimeout time.Duration
	// HandoffPollInterval is how often a worker waiting for a handoff it
	// requested reads the lease (one GetItem) to start as soon as the
	// holder has handed over. Default min(500ms, RenewInterval).
	HandoffPollInterval time.Duration
	// Balance is what balancing evens out across workers: BalanceByLoad
	// (the default) the bytes/s of their leases, as measured by the
	// holders (RecordProcessed) and written with each renewal as KCL 3.x's
	// throughputKBps; BalanceByCount the number of leases (KCL 2.x). By
	// load falls back to count while no lease in the table has a
	// throughput yet (a new or idle stream).
	Balance Balance
	// LoadHysteresis is the least improvement, as a fraction of the mean
	// load per worker, that a move must bring to the spread between the
	// two workers involved when balancing by load. Default 0.1: leases
	// then never bounce (a move back would make the spread worse) and
	// small imbalances are left alone.
	LoadHysteresis float64
	// MaxLeasesForWorker caps the leases this worker holds; 0 = unlimited
	// (KCL's default).
	MaxLeasesForWorker int
	// MaxLeasesToStealAtOneTime caps leases stolen (or asked for by
	// handoff) per balancing pass. 0 (the default, unlike KCL's 1) steals
	// as many as bring this worker to its target in one pass, but only from
	// workers holding at least two more leases than this worker has at that
	// point, so a thief never ends above its victim. A worker that holds
	// and awaits no lease steals one per pass whatever the setting: it is
	// invisible in the table, and idle workers joining at one moment would
	// otherwise each plan for a fleet without the others and together leave
	// the holder below its share, which would ask leases back. With that,
	// leases do not bounce back (and such a worker balances again a
	// RenewInterval later instead of a TakeInterval), so 0 stays the right
	// default: KCL's 1 makes a joiner take a whole TakeInterval per lease
	// (30 leases, 3 workers: 10 passes, over 3 minutes, instead of two
	// passes a RenewInterval apart).
	MaxLeasesToStealAtOneTime int
	// Clock is the time source. Default clock.Real().
	Clock clock.Clock
	// Logger receives operational logs. Default slog.Default().
	Logger *slog.Logger
	// Metrics receives pass statistics through whichever Hook interfaces
	// it implements (see Metrics). Default none.
	Metrics Metrics
}

// Balance says what balancing evens out across workers.
type Balance int

const (
	// BalanceByLoad evens out bytes/s per worker (KCL 3.x's aim), without
	// a leader: each worker asks for leases from the most loaded workers.
	BalanceByLoad Balance = iota
	// BalanceByCount evens out the number of leases (KCL 2.x).
	BalanceByCount
)

// ScanScaling says how the scan intervals follow the fleet size (see
// Config.ScanScaling).
type ScanScaling int

const (
	// ScanSublinear stretches the scan intervals by √(W/3) above 3
	// workers, with probes, so the fleet's scans grow with √W, where that
	// costs fewer DynamoDB read units than ScanFixed (large tables, large
	// fleets) and a probe fits between the stretched scans (6 workers and
	// more with KCL's timings), and is ScanFixed elsewhere (see
	// Config.ScanScaling).
	ScanSublinear ScanScaling = iota
	// ScanFixed keeps the configured intervals whatever the fleet size.
	ScanFixed
)

// scanScale is the factor ScanScaling applies to the scan intervals for a
// fleet of workers (one place for the formula).
func (s ScanScaling) scanScale(workers int) float64 {
	if s == ScanFixed || workers <= 3 {
		return 1
	}
	return math.Sqrt(float64(workers) / 3)
}

// ErrInvalidConfig is wrapped by every configuration error from
// NewCoordinator.
var ErrInvalidConfig = errors.New("lease: invalid config")

func invalidConfig(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
}

func (c Config) withDefaults() (Config, error) {
	if c.WorkerID == "" {
		return c, invalidConfig("WorkerID is required")
	}
	if c.FailoverTime == 0 {
		c.FailoverTime = 10 * time.Second
	}
	if c.FailoverTime < 0 {
		return c, invalidConfig("FailoverTime %v must be positive", c.FailoverTime)
	}
	if c.RenewInterval == 0 {
		c.RenewInterval = c.FailoverTime/3 - 25*time.Millisecond
	}
	if c.RenewInterval <= 0 || c.RenewInterval >= c.FailoverTime {
		return c, invalidConfig("RenewInterval %v must be positive and below FailoverTime %v", c.RenewInterval, c.FailoverTime)
	}
	if c.TakeInterval == 0 {
		c.TakeInterval = (c.FailoverTime + 25*time.Millisecond) * 2
	}
	if c.TakeInterval < 0 {
		return c, invalidConfig("TakeInterval %v must be positive", c.TakeInterval)
	}
	if c.ExpiryScanInterval == 0 {
		c.ExpiryScanInterval = c.FailoverTime + 25*time.Millisecond
	}
	if c.InitialTakeDelay == 0 {
		c.InitialTakeDelay = min(c.RenewInterval, c.TakeInterval/2)
	}
	if c.InitialTakeDelay >= c.TakeInterval {
		return c, invalidConfig("InitialTakeDelay %v must be below TakeInterval %v", c.InitialTakeDelay, c.TakeInterval)
	}
	if c.HandoffTimeout == 0 {
		c.HandoffTimeout = 30 * time.Second
	}
	if c.HandoffPollInterval == 0 {
		c.HandoffPollInterval = min(500*time.Millisecond, c.RenewInterval)
	}
	if c.HandoffPollInterval < 0 {
		return c, invalidConfig("HandoffPollInterval %v must be positive", c.HandoffPollInterval)
	}
	if c.Balance != BalanceByLoad && c.Balance != BalanceByCount {
		return c, invalidConfig("unknown Balance %d", c.Balance)
	}
	if c.ScanScaling != ScanSublinear && c.ScanScaling != ScanFixed {
		return c, invalidConfig("unknown ScanScaling %d", c.ScanScaling)
	}
	if c.LoadHysteresis == 0 {
		c.LoadHysteresis = 0.1
	}
	if c.LoadHysteresis < 0 || c.LoadHysteresis >= 1 {
		return c, invalidConfig("LoadHysteresis %v must be in (0, 1)", c.LoadHysteresis)
	}
	if c.MaxLeasesForWorker < 0 || c.MaxLeasesToStealAtOneTime < 0 {
		return c, invalidConfig("MaxLeasesForWorker and MaxLeasesToStealAtOneTime must not be negative")
	}
	c.Clock = clock.OrReal(c.Clock)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

// RenewStats describes one renewal pass.
type RenewStats struct {
	// Held is the leases held at the start of the pass. Each one was
	// Renewed, Skipped (a recent checkpoint already moved its counter),
	// Lost (taken by another worker or expired locally) or Failed (the
	// write failed; the lease is kept and retried before it expires).
	Held, Renewed, Skipped, Lost, Failed int
	// Duration is how long the pass took.
	Duration time.Duration
}

// TakeStats describes one take pass.
type TakeStats struct {
	Balance bool // a balancing pass (may steal), not an expiry scan
	// Targeted: no scan, a read of the leases of workers a probe found
	// suspect through the owner index (see Config.ScanScaling); Leases,
	// Workers and Target are then from the last scan updated with it. A
	// failed one (Err: the index Query's or a GetItem's error) is followed
	// by a scan, reported as a pass of its own.
	Targeted                      bool
	Leases, Workers, Target, Held int // as computed from the scan (Held after the pass)
	// Taken counts unowned or expired leases taken, Stolen leases taken
	// from a worker above its share (graceful handoff disabled), Handoffs
	// leases marked for handoff from such a worker, Failed takes and marks
	// that did not succeed (mostly another worker winning the race).
	Taken, Stolen, Handoffs, Failed int
	Err                             error         // the scan's error, if it failed
	Duration                        time.Duration // how long the pass took
}
