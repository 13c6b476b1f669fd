package lease

import (
	"context"
	"testing"
	"time"

	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"
)

// An owner index that the workers may not query (AccessDeniedException:
// IAM policies written for KCL 2.x grant the table's ARN, not
// table/<name>/index/*, which a Query of OwnerIndexName needs) is not
// "missing" to indexMissing, so HasOwnerIndex stays true and every probe
// that finds a suspect goes the targeted way and fails: it reads every
// probe (the targeted path needs them all; the scan path stops at the
// first suspect), tries ListOwned, logs a Warn, and then scans anyway.
// That repeats at every crash or leave for the life of the process, so a
// fleet on such a table reads more than with no index at all. Here: three
// crashes at 6 workers on 60 leases of 1.3 KB, store reads (Get, List)
// with the denied index against the same store without an index.
func TestReview3DeniedIndexCostsMoreThanNoIndex(t *testing.T) {
	denied := &smithy.GenericAPIError{Code: "AccessDeniedException", Message: "not authorized to perform: dynamodb:Query on resource: .../index/" + OwnerIndexName}
	run := func(index bool) (reads map[string]int, listed int) {
		mem := bigLeases(t)
		var base Store = mem
		if index {
			base = indexWrap{Store: mem, list: func(context.Context, string) ([]string, error) { return nil, denied }}
		}
		cs := newCostStore(base, index)
		f := balancedFleet(t, cs.asStore(), 60, 6, ScanSublinear)
		cs.reset()
		for _, victim := range []string{"w1", "w2", "w3"} {
			f.advance(7 * time.Second)
			crashTakeover(t, f, victim)
		}
		calls := cs.reset()
		f.stopAll()
		return map[string]int{"Get": calls["Get"], "List": calls["List"]}, calls["ListOwned"]
	}
	without, _ := run(false)
	with, listed := run(true)
	t.Logf("store reads without an index %v; with a denied index %v (+%d ListOwned)", without, with, listed)
	require.Positive(t, listed)
	require.LessOrEqual(t, with["Get"]+with["List"], without["Get"]+without["List"], "a denied index costs more reads than none")
}
