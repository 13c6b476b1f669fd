//go:build !race

package aggregation

const raceEnabled = false
