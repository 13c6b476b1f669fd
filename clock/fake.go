package clock

import (
	"sort"
	"sync"
	"time"
)

// Fake is a manually advanced clock for tests. Timers and tickers fire when
// Advance moves the clock to or past their deadline; their channels have a
// buffer of one and, like the runtime's, drop a tick nobody has read.
//
// Tests synchronise with BlockUntil (wait until n timers/tickers are
// pending) instead of sleeping.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	waiters []*fakeWaiter
	changed chan struct{} // closed and replaced whenever the waiter set changes
}

// NewFake returns a fake clock set to start (or a fixed instant when zero).
func NewFake(start time.Time) *Fake {
	if start.IsZero() {
		start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	return &Fake{now: start, changed: make(chan struct{})}
}

type fakeWaiter struct {
	f        *Fake
	deadline time.Time
	period   time.Duration // >0 for tickers
	c        chan time.Time
	active   bool
}

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// NewTimer implements Clock.
func (f *Fake) NewTimer(d time.Duration) Timer {
	w := &fakeWaiter{f: f, c: make(chan time.Time, 1)}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.arm(w, d)
	return (*fakeTimer)(w)
}

// NewTicker implements Clock.
func (f *Fake) NewTicker(d time.Duration) Ticker {
	if d <= 0 {
		panic("clock: non-positive interval for NewTicker")
	}
	w := &fakeWaiter{f: f, c: make(chan time.Time, 1), period: d}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.arm(w, d)
	return (*fakeTicker)(w)
}

// arm must be called with f.mu held.
func (f *Fake) arm(w *fakeWaiter, d time.Duration) {
	w.deadline = f.now.Add(d)
	if !w.active {
		w.active = true
		f.waiters = append(f.waiters, w)
	}
	if d <= 0 && w.period == 0 {
		f.fireLocked(w)
	}
	f.notifyLocked()
}

func (f *Fake) disarm(w *fakeWaiter) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	was := w.active
	if was {
		w.active = false
		for i, x := range f.waiters {
			if x == w {
				f.waiters = append(f.waiters[:i], f.waiters[i+1:]...)
				break
			}
		}
		f.notifyLocked()
	}
	return was
}

func (f *Fake) fireLocked(w *fakeWaiter) {
	select {
	case w.c <- w.deadline:
	default:
	}
	if w.period > 0 {
		w.deadline = w.deadline.Add(w.period)
		return
	}
	w.active = false
	for i, x := range f.waiters {
		if x == w {
			f.waiters = append(f.waiters[:i], f.waiters[i+1:]...)
			break
		}
	}
}

func (f *Fake) notifyLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// Advance moves the clock forward by d, firing every timer and ticker whose
// deadline is reached, in deadline order.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	end := f.now.Add(d)
	for {
		var next *fakeWaiter
		for _, w := range f.waiters {
			if !w.deadline.After(end) && (next == nil || w.deadline.Before(next.deadline)) {
				next = w
			}
		}
		if next == nil {
			break
		}
		if next.deadline.After(f.now) {
			f.now = next.deadline
		}
		f.fireLocked(next)
	}
	f.now = end
	f.notifyLocked()
}

// Set moves the clock to t (which must not be before Now) like Advance.
func (f *Fake) Set(t time.Time) { f.Advance(t.Sub(f.Now())) }

// Pending returns the number of armed timers and tickers.
func (f *Fake) Pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.waiters)
}

// Deadlines returns the deadlines of armed timers and tickers, soonest first.
func (f *Fake) Deadlines() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]time.Time, 0, len(f.waiters))
	for _, w := range f.waiters {
		out = append(out, w.deadline)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Before(out[j]) })
	return out
}

// BlockUntil waits until at least n timers/tickers are armed. Tests call it
// to know that goroutines under test have reached their wait before
// advancing the clock.
func (f *Fake) BlockUntil(n int) {
	for {
		f.mu.Lock()
		if len(f.waiters) >= n {
			f.mu.Unlock()
			return
		}
		ch := f.changed
		f.mu.Unlock()
		<-ch
	}
}

type fakeTimer fakeWaiter

func (t *fakeTimer) C() <-chan time.Time { return t.c }
func (t *fakeTimer) Stop() bool          { return t.f.disarm((*fakeWaiter)(t)) }
func (t *fakeTimer) Reset(d time.Duration) bool {
	w := (*fakeWaiter)(t)
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	was := w.active
	t.f.arm(w, d)
	return was
}

type fakeTicker fakeWaiter

func (t *fakeTicker) C() <-chan time.Time { return t.c }
func (t *fakeTicker) Stop()               { t.f.disarm((*fakeWaiter)(t)) }
func (t *fakeTicker) Reset(d time.Duration) {
	w := (*fakeWaiter)(t)
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	w.period = d
	t.f.arm(w, d)
}
