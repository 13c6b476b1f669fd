// Package emfmetrics publishes shardflow's producer, consumer and lease
// metrics to CloudWatch as Embedded Metric Format (EMF) log lines: JSON
// objects that CloudWatch Logs turns into metrics, with no PutMetricData
// calls. On Lambda, and on ECS or EKS shipping stdout to CloudWatch Logs,
// writing them to stdout is all it takes. It uses only the standard
// library.
//
//	e, err := emfmetrics.New(os.Stdout, emfmetrics.Options{})
//	pm, err := e.Producer("orders")            // namespace KinesisProducerLibrary, as KPL
//	cm, err := e.Consumer("orders-app")        // namespace the application, as KCL
//	go e.Run(ctx, time.Minute)                 // flushes each minute and once more when ctx ends
//	p, err := producer.New(kc, "orders", producer.Config{Metrics: pm})
//	c, err := consumer.New(kc, store, factory, consumer.Config{ApplicationName: "orders-app", Metrics: cm, ...})
//
// (On Lambda, call e.Flush() before the handler returns instead of Run.)
//
// Metric names, units and dimensions are KPL's and KCL's own (mapping.go),
// so dashboards and alarms built for them apply: KPL's UserRecordsPut,
// BufferingTime, RetriesPerRecord, ErrorsByCode, ... by StreamName and
// ShardId (and ErrorCode), in the KinesisProducerLibrary namespace; KCL's
// RecordsProcessed, MillisBehindLatest, ... by Operation (ProcessTask,
// RenewAllLeases, TakeLeases) and ShardId, in the application's namespace.
// Each per-shard metric is also emitted without ShardId, as KPL's SHARD
// granularity does; Options.Granularity Stream drops ShardId to pay for
// fewer custom metrics. Counts are summed over the flush interval;
// durations and other distributions are sent as values (up to 100 per
// metric and line, a uniform sample keeping the minimum and maximum beyond
// that), so CloudWatch computes averages and percentiles. Error codes are
// capped at 64 distinct values per interval.
package emfmetrics
