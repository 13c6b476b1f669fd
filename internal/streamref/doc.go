// Package streamref names a Kinesis stream by name or by ARN, the way a
// user configured it, for the SDK inputs, logs and errors of the producer
// and consumer, and reads the parts of a stream ARN.
//
//	ref := streamref.Parse("arn:aws:kinesis:eu-west-1:123456789012:stream/orders")
//	in := &kinesis.ListShardsInput{}
//	in.StreamName, in.StreamARN = ref.Input()
package streamref
