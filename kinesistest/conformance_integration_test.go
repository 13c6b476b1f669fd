//go:build integration

package kinesistest

import (
	"testing"

	"github.com/shardflow/shardflow/internal/itest"
)

// TestConformanceEmulators runs the conformance suite against the real
// emulators; differences from AWS are skipped per emulator where they occur
// in the suite, each with a comment naming the difference.
func TestConformanceEmulators(t *testing.T) {
	for _, emu := range itest.KinesisEmulators {
		t.Run(string(emu), func(t *testing.T) {
			client := itest.Kinesis(t, emu)
			runConformance(t, func(t *testing.T) *conformanceEnv {
				return &conformanceEnv{
					name: string(emu),
					api:  client,
					create: func(t *testing.T, name string, shards int32) {
						itest.CreateStream(t, client, name, shards)
					},
				}
			})
		})
	}
}
