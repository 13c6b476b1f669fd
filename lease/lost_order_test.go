package lease

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// retakeOnLoss is a log handler that, when the coordinator logs a lost
// lease, has its take loop take the lease back (TakeNow) before the
// logging call returns: the take loop runs concurrently with the renewer
// that dropped the lease, and may be that quick.
type retakeOnLoss struct {
	slog.Handler
	*retakeState
}

type retakeState struct {
	c     atomic.Pointer[Coordinator]
	key   string
	armed atomic.Bool
}

func (h retakeOnLoss) WithAttrs(as []slog.Attr) slog.Handler {
	return retakeOnLoss{h.Handler.WithAttrs(as), h.retakeState}
}

func (h retakeOnLoss) WithGroup(name string) slog.Handler {
	return retakeOnLoss{h.Handler.WithGroup(name), h.retakeState}
}

func (h retakeOnLoss) Handle(ctx context.Context, r slog.Record) error {
	c := h.c.Load()
	if r.Message == "lease lost" && c != nil && h.armed.CompareAndSwap(true, false) {
		c.TakeNow()
		for !slices.Contains(keys(c.Held()), h.key) {
			time.Sleep(time.Millisecond) // the take loop runs off the clock
		}
	}
	return h.Handler.Handle(ctx, r)
}

// A lease dropped locally (here: renewals failed for a failover time) that
// this worker still owns in the table is taken back by its take loop at
// once. Its Lost must be delivered before the new acquisition's Acquired:
// a consumer stops the shard's current pipeline on a Lost, so a Lost after
// the new Acquired would stop the new pipeline and leave the lease held
// with nobody processing its shard. The Lost was queued after the lease
// had left the held set (and after a log call), so a take in between was
// reported first.
func TestLostIsReportedBeforeTheLeaseIsTakenBack(t *testing.T) {
	store := &flakyRenewStore{Store: NewMemoryStore()}
	f := newFleet(t, store, 1)
	hook := &retakeState{key: "shardId-000000000000"}
	f.cfg.Logger = slog.New(retakeOnLoss{slog.NewTextHandler(io.Discard, nil), hook})
	w1 := f.start("w1")
	hook.c.Store(w1.c)
	require.Equal(t, []string{hook.key}, keys(w1.c.Held()))

	hook.armed.Store(true)
	store.fail.Store(true)
	f.advance(failover)
	require.False(t, hook.armed.Load(), "the lease expired locally")
	store.fail.Store(false)
	waitFor(t, func() bool { return len(w1.eventsOf(Acquired)) == 2 && len(w1.eventsOf(Lost)) == 1 })

	w1.mu.Lock()
	var types []EventType
	for _, ev := range w1.events {
		types = append(types, ev.Type)
	}
	w1.mu.Unlock()
	require.Equal(t, []EventType{Acquired, Lost, Acquired}, types)
	require.ErrorIs(t, w1.eventsOf(Lost)[0].Err, ErrExpiredLocally)
	require.Equal(t, []string{hook.key}, keys(w1.c.Held()))
	f.advance(w1.c.Config().RenewInterval)
	require.Equal(t, []string{hook.key}, keys(w1.c.Held()), "the new acquisition renews")
}
