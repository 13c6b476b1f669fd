// Package clock abstracts time so that lease expiry, buffering deadlines and
// iterator expiry can be tested deterministically with a fake clock.
//
// Production code takes a Clock (defaulting to Real() through OrReal) and
// never calls time.Now, time.After or time.NewTimer directly. A test drives a
// Fake instead of sleeping:
//
//	clk := clock.NewFake(time.Time{})
//	go worker(ctx, clk)       // waits on clk.NewTimer(time.Second)
//	clk.BlockUntil(1)         // the worker's timer is armed
//	clk.Advance(time.Second)  // and now it fires
package clock
