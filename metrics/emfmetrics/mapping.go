package emfmetrics

// This file is the whole mapping from shardflow's metrics calls to
// CloudWatch metric names, units and dimensions. producer.go, consumer.go
// and lease.go only add values to these definitions.
//
// Names are KPL's and KCL's own, so dashboards and alarms written for them
// keep working; the few measurements KPL/KCL do not have get names in the
// same style (marked "shardflow" below). Dimensions are KPL's (StreamName,
// ShardId, ErrorCode) and KCL's (Operation, ShardId); see dimensionSets.

// Default namespaces: KPL's default, and KCL's (the application name,
// given to Emitter.Consumer and Emitter.Lease).
const DefaultProducerNamespace = "KinesisProducerLibrary"

// Dimension names.
const (
	dimStream    = "StreamName"
	dimShard     = "ShardId"
	dimCode      = "ErrorCode"
	dimOperation = "Operation"
)

// KCL operations (the Operation dimension).
const (
	opProcessTask = "ProcessTask"
	opRenewAll    = "RenewAllLeases"
	opTakeLeases  = "TakeLeases"
)

// CloudWatch units used here.
const (
	unitCount        = "Count"
	unitBytes        = "Bytes"
	unitMilliseconds = "Milliseconds"
)

type kind int

const (
	// sum adds the values of a flush interval into one number (counts).
	sum kind = iota
	// samples keeps the values themselves (up to maxSamples per interval),
	// so CloudWatch computes min, max, average and percentiles.
	samples
)

type def struct {
	name, unit string
	kind       kind
}

// Producer (KPL), by StreamName and, per shard, ShardId.
var (
	kplUserRecordsReceived     = def{"UserRecordsReceived", unitCount, sum}
	kplUserRecordsDataReceived = def{"UserRecordsDataReceived", unitBytes, sum} // shardflow
	kplUserRecordsPending      = def{"UserRecordsPending", unitCount, samples}
	kplUserRecordsDataPending  = def{"UserRecordsDataPending", unitBytes, samples} // shardflow
	kplUserRecordsPut          = def{"UserRecordsPut", unitCount, sum}
	kplUserRecordsDataPut      = def{"UserRecordsDataPut", unitBytes, sum}
	kplKinesisRecordsPut       = def{"KinesisRecordsPut", unitCount, sum}
	kplKinesisRecordsDataPut   = def{"KinesisRecordsDataPut", unitBytes, sum}
	kplUserPerKinesisRecord    = def{"UserRecordsPerKinesisRecord", unitCount, samples}
	kplUserRecordsFailed       = def{"UserRecordsFailed", unitCount, sum} // shardflow
	kplUserRecordExpired       = def{"UserRecordExpired", unitCount, sum}
	kplBufferingTime           = def{"BufferingTime", unitMilliseconds, samples}
	kplRetriesPerRecord        = def{"RetriesPerRecord", unitCount, samples}
	kplRequestTime             = def{"RequestTime", unitMilliseconds, samples}
	kplKinesisPerRequest       = def{"KinesisRecordsPerPutRecordsRequest", unitCount, samples}
	kplErrorsByCode            = def{"ErrorsByCode", unitCount, sum} // with ErrorCode
	kplAllErrors               = def{"AllErrors", unitCount, sum}
)

// Consumer (KCL), by Operation and, for ProcessTask, ShardId.
var (
	kclRecordsProcessed    = def{"RecordsProcessed", unitCount, sum}
	kclDataBytesProcessed  = def{"DataBytesProcessed", unitBytes, sum}
	kclProcessRecordsTime  = def{"RecordProcessor.processRecords.Time", unitMilliseconds, samples}
	kclMillisBehindLatest  = def{"MillisBehindLatest", unitMilliseconds, samples}
	kclProcessorErrors     = def{"ProcessorErrors", unitCount, sum}   // shardflow
	kclOutOfRangeRecords   = def{"OutOfRangeRecords", unitCount, sum} // shardflow
	kclReadThrottles       = def{"ReadThrottles", unitCount, sum}     // shardflow
	kclExpiredIterator     = def{"ExpiredIterator", unitCount, sum}
	kclRetentionRestart    = def{"RetentionRestart", unitCount, sum}
	kclCurrentLeases       = def{"CurrentLeases", unitCount, samples}
	kclTakenLeases         = def{"TakenLeases", unitCount, sum}
	kclLostLeases          = def{"LostLeases", unitCount, sum}
	kclRenewLeaseSuccess   = def{"RenewLease.Success", unitCount, sum}
	kclRenewLeaseSkipped   = def{"RenewLease.Skipped", unitCount, sum} // shardflow
	kclRenewLeaseFailure   = def{"RenewLease.Failure", unitCount, sum} // shardflow
	kclStolenLeases        = def{"StolenLeases", unitCount, sum}       // shardflow
	kclTakeLeaseFailure    = def{"TakeLease.Failure", unitCount, sum}  // shardflow
	kclNumWorkers          = def{"NumWorkers", unitCount, samples}
	kclNeededLeases        = def{"NeededLeases", unitCount, samples}
	kclTotalLeases         = def{"TotalLeases", unitCount, samples}
	kclOperationSuccess    = def{"Success", unitCount, sum} // 1 per successful pass, 0 per failed one
	kclOperationTime       = def{"Time", unitMilliseconds, samples}
	kclOperationScanFailed = def{"ListLeases.Failure", unitCount, sum} // shardflow
)

// dimensionSets lists the dimension sets of a group, from its key: the
// coarse set (Operation or StreamName, with ErrorCode for ErrorsByCode)
// and, when the group is per shard, the same with ShardId, as KPL's SHARD
// granularity emits each metric at stream and shard level. Options'
// extra dimensions are appended to every set.
func dimensionSets(k groupKey, extra []string) [][]string {
	var base []string
	if k.operation != "" {
		base = append(base, dimOperation)
	}
	if k.stream != "" {
		base = append(base, dimStream)
	}
	tail := append([]string(nil), extra...)
	if k.code != "" {
		tail = append([]string{dimCode}, tail...)
	}
	sets := [][]string{concat(base, tail)}
	if k.shard != "" {
		sets = append(sets, concat(base, []string{dimShard}, tail))
	}
	return sets
}

func concat(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}
