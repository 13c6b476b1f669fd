// Package clock is the time source of shardflow's producer, consumer, lease
// coordinator and kinesistest server, so lease expiry, buffering deadlines and
// iterator expiry can be tested deterministically with a fake clock.
//
// It is public so that services can set Config.Clock themselves and drive
// shardflow with a Fake in their own tests. Production code takes a Clock
// (nil means Real(), through OrReal) and never calls time.Now, time.After or
// time.NewTimer directly. A test drives a Fake instead of sleeping:
//
//	clk := clock.NewFake(time.Time{})
//	cfg := consumer.Config{Clock: clk /* ... */}
//	go worker(ctx, clk)       // waits on clk.NewTimer(time.Second)
//	clk.BlockUntil(1)         // the worker's timer is armed
//	clk.Advance(time.Second)  // and now it fires
package clock
