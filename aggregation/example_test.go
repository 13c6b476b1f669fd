package aggregation_test

import (
	"fmt"

	"github.com/shardflow/shardflow/aggregation"
)

func ExampleMarshal() {
	blob, err := aggregation.Marshal([]aggregation.Record{
		{PartitionKey: "user-1", Data: []byte("hello")},
		{PartitionKey: "user-2", ExplicitHashKey: "170141183460469231731687303715884105728", Data: []byte("world")},
		{PartitionKey: "user-1", Data: []byte("again")}, // "user-1" is stored once
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(aggregation.IsAggregated(blob), len(blob))

	records, err := aggregation.Unmarshal(blob)
	if err != nil {
		panic(err)
	}
	for _, r := range records {
		fmt.Printf("%s %q %s\n", r.PartitionKey, r.ExplicitHashKey, r.Data)
	}
	// Output:
	// true 112
	// user-1 "" hello
	// user-2 "170141183460469231731687303715884105728" world
	// user-1 "" again
}

// A producer packs records into aggregates no larger than a limit, checking
// the exact size before each Add.
func ExampleAggregator() {
	const maxSize = 60 // the KPL default is 51,200 bytes
	var (
		agg   aggregation.Aggregator
		blobs [][]byte
	)
	flush := func() {
		if agg.Len() > 0 {
			blobs = append(blobs, agg.AppendBlob(nil))
			agg.Reset()
		}
	}
	for _, word := range []string{"alpha", "beta", "gamma", "delta", "epsilon"} {
		if agg.SizeWith("key", "", len(word)) > maxSize {
			flush()
		}
		agg.Add("key", "", []byte(word))
	}
	flush()
	for _, b := range blobs {
		records, _ := aggregation.Unmarshal(b)
		fmt.Println(len(b), len(records))
	}
	// Output:
	// 57 3
	// 49 2
}

// A consumer splits every Kinesis record into user records; a record that is
// not an aggregate comes back as one record, unchanged.
func ExampleDeaggregate() {
	blob, _ := aggregation.Marshal([]aggregation.Record{
		{PartitionKey: "a", Data: []byte("1")},
		{PartitionKey: "b", Data: []byte("2")},
	})
	var scratch []aggregation.Record // reused across Kinesis records
	for _, kinesisData := range [][]byte{blob, []byte("plain")} {
		var aggregated bool
		scratch, aggregated = aggregation.Deaggregate(scratch[:0], kinesisData, "outer-key")
		for subSeq, r := range scratch {
			fmt.Println(aggregated, subSeq, r.PartitionKey, string(r.Data))
		}
	}
	// Output:
	// true 0 a 1
	// true 1 b 2
	// false 0 outer-key plain
}
