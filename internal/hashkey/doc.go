// Package hashkey is Kinesis's 128-bit hash key: the MD5 of a partition
// key, or an explicit hash key, as the decimal strings ListShards and
// PutRecords use. The producer predicts shards with it, the consumer checks
// that records lie in their shard's range.
//
//	k, ok := hashkey.Parse("340282366920938463463374607431768211455")
//	in := !k.Less(start) && !end.Less(k)
package hashkey
