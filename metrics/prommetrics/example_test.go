package prommetrics_test

import (
	"context"
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/shardflow/shardflow/kinesistest"
	"github.com/shardflow/shardflow/metrics/prommetrics"
	"github.com/shardflow/shardflow/producer"
)

func ExampleNewProducer() {
	ctx := context.Background()
	srv := kinesistest.New(kinesistest.Options{}) // or a *kinesis.Client
	defer srv.Close()
	srv.MustCreateStream("orders", 1)

	reg := prometheus.NewRegistry() // or prometheus.DefaultRegisterer
	pm, err := prommetrics.NewProducer(reg, "orders")
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

	// Serve them: mux.Handle("/metrics", promhttp.HandlerFor(reg, ...)).
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))

	fams, _ := reg.Gather()
	for _, f := range fams {
		if f.GetName() == "shardflow_producer_user_records_put_total" {
			m := f.GetMetric()[0]
			fmt.Println(f.GetName(), m.GetLabel()[0].GetValue(), m.GetLabel()[1].GetValue(), m.GetCounter().GetValue())
		}
	}
	// Output: shardflow_producer_user_records_put_total shardId-000000000000 orders 1
}
