package lease

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fleetStartTogether has w0 take every lease, then starts the other
// workers at one instant (the shape of every fleet start on a new or fully
// released table), and returns the time until the table is balanced and
// every handoff done, and each lease's sequence of owners.
func fleetStartTogether(t *testing.T, workers, leases int) (balanced time.Duration, seqs map[string][]string) {
	rs := &recStore{Store: NewMemoryStore()}
	f := newFleet(t, rs, leases)
	// w0 takes everything in its first pass (the harness's setting), as
	// a worker alone on a new or fully released table does by its first
	// balancing pass whatever the start-up wait.
	f.start("w0")
	require.Len(t, f.workers["w0"].c.Held(), leases)
	f.advance(time.Second)
	f.cfg.InitialTakeDelay = 0 // the joiners': the default (RenewInterval)
	var ids []string
	for i := 1; i < workers; i++ {
		ids = append(ids, fmt.Sprintf("w%d", i))
	}
	f.startAll(ids...)
	isBalanced := func() bool {
		all, err := rs.List(context.Background())
		require.NoError(t, err)
		counts := map[string]int{}
		for _, l := range all {
			if l.InHandoff() {
				return false
			}
			counts[l.Owner]++
		}
		if len(counts) != workers {
			return false
		}
		for w, n := range counts {
			if w == "" || n < leases/workers || n > (leases+workers-1)/workers {
				return false
			}
		}
		return true
	}
	const limit = 5 * time.Minute
	for balanced = 0; balanced < limit && !isBalanced(); balanced += time.Second {
		f.advance(time.Second)
	}
	f.advance(limit - balanced) // and it stays so
	require.True(t, isBalanced(), "balanced after %v: %v", limit, f.owners())

	all, err := rs.List(context.Background())
	require.NoError(t, err)
	seqs = map[string][]string{}
	for _, l := range all {
		// Every successful take or mark that gives the lease a new
		// owner.
		var seq []string
		for _, op := range rs.opsOn(l.Key) {
			if !strings.HasPrefix(op, "take") && !strings.HasPrefix(op, "mark") {
				continue
			}
			owner := strings.TrimPrefix(strings.Fields(op)[2], "owner=")
			if len(seq) == 0 || seq[len(seq)-1] != owner {
				seq = append(seq, owner)
			}
		}
		seqs[l.Key] = seq
	}
	return balanced, seqs
}

// bounced lists the leases that came back to a worker they had left.
func bounced(seqs map[string][]string) []string {
	var out []string
	for k, seq := range seqs {
		for i, o := range seq {
			for _, prev := range seq[:max(i-1, 0)] {
				if prev == o {
					out = append(out, k+": "+strings.Join(seq, "->"))
				}
			}
		}
	}
	return out
}

// Two idle workers joining a holder of every lease at once each saw a
// fleet of 2 (an idle worker shows nowhere in the table), asked the holder
// for half the table each, and left it far below its share, so it asked
// leases back: they bounced.
func TestFleetStartTogetherLeasesDoNotBounce(t *testing.T) {
	for _, n := range []int{3, 10} {
		t.Run(fmt.Sprint(n, "workers"), func(t *testing.T) {
			const leases = 30
			took, seqs := fleetStartTogether(t, n, leases)
			moves := 0
			for _, seq := range seqs {
				moves += len(seq) - 1 // the first is w0's take of an unowned lease
			}
			t.Logf("%d workers, %d leases: %d moves, balanced %v after the others started", n, leases, moves, took)
			require.Empty(t, bounced(seqs), "leases moved back to a worker that had handed them over")
			// The fewest moves that balance: w0 keeps its share.
			require.Equal(t, leases-leases/n, moves)
		})
	}
}
