//go:build !unix

package main

import "time"

// processCPU is not available here: the CPU cost is reported as n/a.
func processCPU() (time.Duration, bool) { return 0, false }
