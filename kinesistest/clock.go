package kinesistest

import (
	"time"

	"github.com/shardflow/shardflow/internal/clock"
)

// Clock is the time source a Server (and shardflow's producer, consumer and
// lease coordinator) runs on. Tests outside this module use it, with
// NewFakeClock, to expire iterators and leases without waiting.
type Clock = clock.Clock

// FakeClock is a manually advanced Clock: timers fire when Advance reaches
// their deadline, and BlockUntil waits until code under test is waiting on
// one, so tests need no sleeps.
type FakeClock = clock.Fake

// NewFakeClock returns a FakeClock set to start (a fixed instant when zero).
func NewFakeClock(start time.Time) *FakeClock { return clock.NewFake(start) }
