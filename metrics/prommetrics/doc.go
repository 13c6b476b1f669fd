// Package prommetrics publishes shardflow's producer, consumer and lease
// metrics to Prometheus (github.com/prometheus/client_golang). It is a
// module of its own, so the shardflow module does not depend on
// client_golang.
//
//	pm, err := prommetrics.NewProducer(prometheus.DefaultRegisterer, "orders")
//	p, err := producer.New(kc, "orders", producer.Config{Metrics: pm})
//
//	cm, err := prommetrics.NewConsumer(prometheus.DefaultRegisterer, "orders")
//	c, err := consumer.New(kc, store, factory, consumer.Config{StreamName: "orders", Metrics: cm, ...})
//
//	http.Handle("/metrics", promhttp.Handler())
//
// NewLease does the same for a lease.Coordinator run directly (the consumer
// reports its lease events through consumer.Metrics).
//
// Names are KPL's and KCL's in Prometheus form, under shardflow_producer_,
// shardflow_consumer_ and shardflow_lease_: snake_case, seconds and bytes
// as units, counters ending in _total (KPL UserRecordsPut becomes
// shardflow_producer_user_records_put_total, KCL MillisBehindLatest
// shardflow_consumer_behind_latest_seconds); shardflow's internal/metricnames
// lists them all with the KPL/KCL metric each stands for (the examples'
// standard-library exporter serves the same names from it). Labels are the stream (application
// for the lease coordinator), the shard where KPL/KCL have a ShardId
// dimension, and small closed sets: error code (capped at 64 values),
// failure reason, pass kind. Histograms are per stream only, since their
// buckets multiply by the shard count. Calling a constructor again with the
// same registerer reuses the collectors, so several producers or consumers
// can share one registry.
package prommetrics
