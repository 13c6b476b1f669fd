// Package backoff is the one retry pacing of shardflow: exponential
// backoff with full jitter, for the producer's PutRecords retries and the
// consumer's Kinesis and processor retries.
//
// Full jitter (a uniform wait in (0, d], d the capped exponential delay)
// rather than the consumer's former "equal jitter" (d/2 + up to d/2): it is
// what the AWS SDK's own retryer uses, so retries stacked on the SDK's pace
// alike; and it spreads a fleet that failed together (a throttled shard, a
// DynamoDB blip) over the whole window, where equal jitter packs them into
// its upper half. The floor equal jitter keeps is not needed: the delay's
// expected value still doubles with every failure in a row.
//
//	d := backoff.Delay(100*time.Millisecond, 10*time.Second, failures)
package backoff
