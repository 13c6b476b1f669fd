package otelmetrics_test

import (
	"context"
	"fmt"

	"github.com/shardflow/shardflow/kinesistest"
	"github.com/shardflow/shardflow/metrics/otelmetrics"
	"github.com/shardflow/shardflow/producer"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

func ExampleNewProducer() {
	ctx := context.Background()
	srv := kinesistest.New(kinesistest.Options{}) // or a *kinesis.Client
	defer srv.Close()
	srv.MustCreateStream("orders", 1)

	// A service passes its own MeterProvider (otel.GetMeterProvider());
	// here a manual reader shows what is recorded.
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(ctx)

	pm, err := otelmetrics.NewProducer(mp, "orders")
	if err != nil {
		panic(err)
	}
	p, err := producer.New(srv, "orders", producer.Config{Metrics: pm})
	if err != nil {
		panic(err)
	}
	f, _ := p.Put(ctx, "customer-42", []byte("hello"))
	_, _ = f.Wait(ctx)
	_ = p.Close(ctx)

	var rm metricdata.ResourceMetrics
	_ = reader.Collect(ctx, &rm)
	for _, m := range rm.ScopeMetrics[0].Metrics {
		if m.Name == "shardflow.producer.user_records.put" {
			pt := m.Data.(metricdata.Sum[int64]).DataPoints[0]
			shard, _ := pt.Attributes.Value("shardflow.shard_id")
			fmt.Println(m.Name, m.Unit, shard.AsString(), pt.Value)
		}
	}
	// Output: shardflow.producer.user_records.put {record} shardId-000000000000 1
}
