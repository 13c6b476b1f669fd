//go:build race

package aggregation

// raceEnabled: the race detector adds allocations and makes sync.Pool drop
// items at random, so allocation counts are not checked under it.
const raceEnabled = true
