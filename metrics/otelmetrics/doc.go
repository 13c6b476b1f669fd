// Package otelmetrics records shardflow's producer, consumer and lease
// metrics on OpenTelemetry instruments (go.opentelemetry.io/otel/metric),
// to be exported by whatever MeterProvider the service configures (OTLP,
// Prometheus, stdout). It is a module of its own, so the shardflow module
// does not depend on OpenTelemetry.
//
//	pm, err := otelmetrics.NewProducer(otel.GetMeterProvider(), "orders")
//	p, err := producer.New(kc, "orders", producer.Config{Metrics: pm})
//
//	cm, err := otelmetrics.NewConsumer(otel.GetMeterProvider(), "orders")
//	defer cm.Close() // stops the lag gauge's callback
//	c, err := consumer.New(kc, store, factory, consumer.Config{StreamName: "orders", Metrics: cm, ...})
//
// NewLease does the same for a lease.Coordinator run directly (the consumer
// reports its lease events through consumer.Metrics).
//
// Names are KPL's and KCL's in OpenTelemetry form, under
// shardflow.producer., shardflow.consumer. and shardflow.lease.: dotted,
// units in the unit field (s, By, {record}), durations as float64
// histograms in seconds (KPL BufferingTime becomes
// shardflow.producer.buffering_time in s, KCL MillisBehindLatest the
// observable gauge shardflow.consumer.behind_latest in s); mapping.go lists
// them all with the KPL/KCL metric each stands for. Attributes are the
// stream (aws.kinesis.stream_name) or application, the shard
// (shardflow.shard_id) where KPL/KCL have a ShardId dimension, and small
// closed sets: error.type for Kinesis error codes (capped at 64 values),
// the failure reason, the take pass kind. Histograms are per stream only.
package otelmetrics
