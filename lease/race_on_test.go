//go:build race

package lease

// raceEnabled: the race detector slows the fake-clock fleets several
// times, so the heaviest measurement rows run without it only (their
// assertions still run in go test ./...).
const raceEnabled = true
