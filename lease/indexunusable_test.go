package lease

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"
)

// Errors that retrying does not cure leave the owner index alone for a
// while; throttling and the like do not.
func TestIndexUnusable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&smithy.GenericAPIError{Code: "AccessDeniedException", Message: "not authorized to perform: dynamodb:Query"}, true},
		{&smithy.GenericAPIError{Code: "ValidationException", Message: "The table does not have the specified index: " + OwnerIndexName}, true},
		{&smithy.GenericAPIError{Code: "ValidationException", Message: "Query condition missed key schema element"}, true},
		{fmt.Errorf("lease: query: %w", &types.ResourceNotFoundException{Message: new(string)}), true},
		{&types.ProvisionedThroughputExceededException{}, false},
		{&smithy.GenericAPIError{Code: "ThrottlingException"}, false},
		{context.DeadlineExceeded, false},
		{errors.New("connection reset"), false},
	} {
		require.Equal(t, tc.want, indexUnusable(tc.err), "%v", tc.err)
	}
}

// A denied owner index is listed once per worker (then scans take the
// crashed worker's leases), left alone for ownerIndexBackoff, and used
// again after it: a crash then is taken over through the index.
func TestDeniedIndexRetriedAfterBackoff(t *testing.T) {
	var denied atomic.Bool
	denied.Store(true)
	var listed atomic.Int64
	mem := bigLeases(t)
	store := indexWrap{Store: mem, list: func(ctx context.Context, o string) ([]string, error) {
		listed.Add(1)
		if denied.Load() {
			return nil, &smithy.GenericAPIError{Code: "AccessDeniedException", Message: "denied"}
		}
		return mem.ListOwned(ctx, o)
	}}
	f := balancedFleet(t, store, 60, 6, ScanSublinear)
	_, targeted, scanned := crashTakeover(t, f, "w1")
	require.Zero(t, targeted)
	require.Positive(t, scanned)
	first := listed.Load()
	require.Positive(t, first)
	require.LessOrEqual(t, first, int64(len(f.workers)), "one listing per worker, then the index is left alone")
	f.start("w6") // back to 6 workers: probes on
	f.advance(4*takeInterval + handoffTime)
	_, targeted, _ = crashTakeover(t, f, "w2")
	require.Zero(t, targeted)
	// Only w6, new, learns of the denial; the others leave it alone.
	require.LessOrEqual(t, listed.Load(), first+1, "the index is not listed again within the backoff")

	denied.Store(false) // the IAM policy fixed
	f.start("w7")
	f.advance(ownerIndexBackoff)
	_, targeted, _ = crashTakeover(t, f, "w3")
	require.Positive(t, targeted, "the index is used again after the backoff")
	f.requireConsistent()
	f.stopAll()
}
