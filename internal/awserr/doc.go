// Package awserr classifies the errors of AWS calls (Kinesis and DynamoDB)
// in one place, for the producer, consumer and lease store: by the error
// code the service sent (which the SDK's typed errors, such as
// *types.ResourceNotFoundException, and a fake's typed errors carry alike)
// and by whether a response arrived at all.
//
//	if awserr.IsThrottle(err) { /* back off */ }
package awserr
