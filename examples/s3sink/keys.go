package main

import (
	"fmt"
	"strconv"
	"time"

	"github.com/shardflow/shardflow/checkpoint"
)

// hourOf is the partition a record belongs to: the hour of its arrival
// time in the stream, as Unix hours. It is a property of the record, so
// every worker that reads the shard puts a record in the same partition.
func hourOf(arrival time.Time) int64 {
	s := arrival.Unix()
	if s < 0 && s%3600 != 0 {
		return s/3600 - 1
	}
	return s / 3600
}

// partitionPath is the key component of a partition hour.
func partitionPath(p Partitioning, hour int64) string {
	t := time.Unix(hour*3600, 0).UTC()
	if p == PartitionHive {
		return "dt=" + t.Format("2006-01-02") + "/hour=" + t.Format("15") + "/"
	}
	return t.Format("2006/01/02/15/")
}

// objectKey names an object by what it holds: the shard and the positions
// of its first and last record. A successor that cuts the same records
// (see Processor) computes the same key and overwrites the object instead
// of adding a second copy, and two different cuts of one shard can never
// share a key.
func objectKey(prefix, partition, shardID string, first, last checkpoint.Position, ext string) string {
	return fmt.Sprintf("%s%s%s-%s-%s%s", prefix, partition, shardID, posName(first), posName(last), ext)
}

// posName is a position as it appears in a key: the sequence number, and
// the sub-sequence number of a KPL sub-record after a dot.
func posName(p checkpoint.Position) string {
	return p.SequenceNumber + "." + strconv.FormatInt(p.SubSequenceNumber, 10)
}
