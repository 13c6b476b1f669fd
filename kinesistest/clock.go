package kinesistest

import (
	"time"

	"github.com/shardflow/shardflow/clock"
)

// Clock is the time source a Server (and shardflow's producer, consumer and
// lease coordinator) runs on.
//
// Deprecated: use clock.Clock from github.com/shardflow/shardflow/clock.
// This alias forwards to it so existing tests keep compiling.
type Clock = clock.Clock

// FakeClock is a manually advanced Clock.
//
// Deprecated: use clock.Fake from github.com/shardflow/shardflow/clock.
type FakeClock = clock.Fake

// NewFakeClock returns a FakeClock set to start (a fixed instant when zero).
//
// Deprecated: use clock.NewFake from github.com/shardflow/shardflow/clock.
func NewFakeClock(start time.Time) *FakeClock { return clock.NewFake(start) }
