package lease

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// Guard (passes today): a store that implements ListOwned but reports no
// index (HasOwnerIndex false, as DynamoStore on a KCL 2.x table without
// OwnerIndexName) is never listed, and a crash on it is taken over by
// scans. TestCrashWithoutOwnerIndexIsTakenByScan means to check this but
// wraps its noIndex store in a costStore, which hides ListOwned and
// HasOwnerIndex altogether: with ownerIndex ignoring HasOwnerIndex that
// test still passes; this one fails.
func TestReview3StoreReportingNoIndexIsNeverListed(t *testing.T) {
	var listed atomic.Int64
	mem := bigLeases(t)
	store := noIndex{indexWrap{Store: mem, list: func(ctx context.Context, o string) ([]string, error) {
		listed.Add(1)
		return mem.ListOwned(ctx, o)
	}}}
	f := balancedFleet(t, store, 60, 6, ScanSublinear)
	_, targeted, scanned := crashTakeover(t, f, "w1")
	require.Zero(t, listed.Load(), "ListOwned called on a store without an index")
	require.Zero(t, targeted)
	require.Positive(t, scanned)
	f.requireConsistent()
}
