package emfmetrics_test

import (
	"os"
	"time"

	"github.com/shardflow/shardflow/metrics/emfmetrics"
)

func ExampleNew() {
	e, err := emfmetrics.New(os.Stdout, emfmetrics.Options{
		Now: func() time.Time { return time.UnixMilli(1764579600000) }, // default time.Now
	})
	if err != nil {
		panic(err)
	}
	pm, err := e.Producer("orders") // producer.Config{Metrics: pm}
	if err != nil {
		panic(err)
	}
	// What the producer calls as records are put:
	pm.KinesisRecordPut("shardId-000000000000", 3, 300, 320)
	pm.BufferingTime("shardId-000000000000", 40*time.Millisecond)
	pm.BufferingTime("shardId-000000000000", 60*time.Millisecond)

	// Run(ctx, time.Minute) flushes each minute; on Lambda, flush before
	// the handler returns.
	_ = e.Flush()
	// Output:
	// {"BufferingTime":[40,60],"KinesisRecordsDataPut":320,"KinesisRecordsPut":1,"ShardId":"shardId-000000000000","StreamName":"orders","UserRecordsDataPut":300,"UserRecordsPerKinesisRecord":3,"UserRecordsPut":3,"_aws":{"Timestamp":1764579600000,"CloudWatchMetrics":[{"Namespace":"KinesisProducerLibrary","Dimensions":[["StreamName"],["StreamName","ShardId"]],"Metrics":[{"Name":"BufferingTime","Unit":"Milliseconds"},{"Name":"KinesisRecordsDataPut","Unit":"Bytes"},{"Name":"KinesisRecordsPut","Unit":"Count"},{"Name":"UserRecordsDataPut","Unit":"Bytes"},{"Name":"UserRecordsPerKinesisRecord","Unit":"Count"},{"Name":"UserRecordsPut","Unit":"Count"}]}]}}
}
