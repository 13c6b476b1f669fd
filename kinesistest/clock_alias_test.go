package kinesistest_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/clock"
	"github.com/shardflow/shardflow/kinesistest"
)

// The deprecated aliases forward to package clock: a test written against
// them keeps compiling and drives the same fake.
func TestDeprecatedClockAliases(t *testing.T) {
	//lint:ignore SA1019 the aliases under test
	var fake *clock.Fake = kinesistest.NewFakeClock(time.Time{})
	var c kinesistest.Clock = fake //lint:ignore SA1019 the alias under test
	start := c.Now()
	fake.Advance(time.Minute)
	require.Equal(t, start.Add(time.Minute), c.Now())
}
