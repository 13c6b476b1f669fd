// Package chaos runs real consumer worker processes against the emulators
// and checks, from what each one wrote down, that the consumer's promises
// held while workers were killed with SIGKILL, restarted and resharded
// under them.
//
// The pieces:
//   - worker (a `package main` beside this one): one consumer process. Its
//     RecordProcessor appends every record it processes, every checkpoint
//     and every lifecycle call to its own journal file, fsynced before each
//     checkpoint, so what a killed process did survives it.
//   - Fleet: builds the worker binary and starts, stops (SIGTERM, graceful)
//     and kills (SIGKILL) worker processes by slot, each start a new worker
//     id and journal, and remembers when each was killed.
//   - Reconcile: reads the journals against what the producer was told and
//     reports lost records, order violations, children started before
//     their parents ended, duplicates with their causes, and how long
//     after a kill each shard resumed elsewhere.
//
// The smallest use (from an integration test):
//
//	f := chaos.NewFleet(t, chaos.WorkerConfig{...})
//	w0, err := f.Start("w0") // worker id "w0.1"
//	f.Kill("w0"); f.Start("w0") // SIGKILL, then worker "w0.2"
//	f.StopAll(ctx)
//	js, err := f.Journals()
//	rep := chaos.Reconcile(chaos.Input{Produced: ..., Journals: js, Killed: f.Killed(), ...})
//	for _, p := range rep.Problems() { t.Error(p) }
package chaos
