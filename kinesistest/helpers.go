package kinesistest

import (
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// MustCreateStream creates an ACTIVE stream with n evenly split shards and
// returns its ARN. It panics on error (a duplicate name, n < 1): it is meant
// for test setup, where such a failure is a bug in the test.
func (s *Server) MustCreateStream(name string, n int) string {
	// Setup bypasses injected faults and latency.
	if _, err := s.createStream(&kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(int32(n))}); err != nil {
		panic(fmt.Sprintf("kinesistest: create stream %q: %v", name, err))
	}
	return s.streamARN(name)
}

// Records returns copies of the records stored in a shard, oldest first,
// including any that have aged out of retention, or nil when the stream or
// shard does not exist. It bypasses limits and faults.
func (s *Server) Records(streamName, shardID string) []types.Record {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := s.streams[streamName]
	if st == nil {
		return nil
	}
	sh := st.shard(shardID)
	if sh == nil {
		return nil
	}
	size := 0
	for _, r := range sh.records {
		size += len(r.data)
	}
	return copyRecords(sh.records, size)
}

// ShardIDs returns the ids of all the stream's shards, open and closed, in
// creation order, or nil when the stream does not exist.
func (s *Server) ShardIDs(streamName string) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := s.streams[streamName]
	if st == nil {
		return nil
	}
	out := make([]string, len(st.shards))
	for i, sh := range st.shards {
		out[i] = sh.id
	}
	return out
}
