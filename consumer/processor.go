package consumer

import (
	"context"
	"time"

	"github.com/shardflow/shardflow/checkpoint"
)

// Record is one user record as delivered to a RecordProcessor: a plain
// Kinesis record, or one sub-record of a KPL aggregate.
type Record struct {
	// SequenceNumber is the Kinesis sequence number of the record that
	// carried this one (shared by all sub-records of an aggregate).
	SequenceNumber string
	// SubSequenceNumber is the index inside the aggregate; 0 for plain
	// records.
	SubSequenceNumber int64
	// PartitionKey is the user record's own partition key.
	PartitionKey string
	// ExplicitHashKey is the user record's explicit hash key (aggregated
	// sub-records only); empty means none.
	ExplicitHashKey string
	// Data is the payload. It aliases the fetched batch: copy it to keep it
	// after ProcessRecords returns.
	Data []byte
	// ApproximateArrivalTimestamp is when Kinesis accepted the record.
	ApproximateArrivalTimestamp time.Time
	// Aggregated tells whether the record came out of a KPL aggregate.
	Aggregated bool
}

// Position returns the checkpoint position of the record.
func (r *Record) Position() checkpoint.Position {
	return checkpoint.At(r.SequenceNumber, r.SubSequenceNumber)
}

// Checkpointer is what a processor records its progress through: the
// calls of checkpoint.Checkpointer meant for processors. Its other methods
// (Delivered, Returned, ShardEnded, LeaseLost, Close) are the consumer's
// own controls and are not offered. Tests that drive a processor by hand
// pass a *checkpoint.Checkpointer, which implements it.
type Checkpointer interface {
	// Checkpoint records everything delivered so far (see
	// ProcessRecordsInput.Checkpointer for which batches that covers).
	Checkpoint(ctx context.Context) error
	// CheckpointAt records pos, a record delivered to the processor.
	CheckpointAt(ctx context.Context, pos checkpoint.Position) error
	// PrepareCheckpoint stores pos and state as the pending checkpoint
	// (two-phase checkpointing), without moving the checkpoint.
	PrepareCheckpoint(ctx context.Context, pos checkpoint.Position, state []byte) error
	// Last returns the last checkpoint written (the start position until
	// the first).
	Last() checkpoint.Position
}

var _ Checkpointer = (*checkpoint.Checkpointer)(nil)

// StreamRef tells a processor which stream its shard belongs to; in
// multi-stream mode one processor factory serves shards of every stream.
type StreamRef struct {
	// Name and ARN are the stream's.
	Name, ARN string
	// ID is the stream identifier its leases are keyed by
	// ("account:stream:creationEpoch"); "" in single-stream mode.
	ID string
	// LeaseKey is the shard's lease key: the shard id in single-stream
	// mode, "account:stream:creationEpoch:shardId" in multi-stream mode. It
	// is the id ProcessorFactory.NewProcessor and Metrics get.
	LeaseKey string
}

// InitializeInput is passed to RecordProcessor.Initialize.
type InitializeInput struct {
	// ShardID is the shard this processor is for (the bare shard id, also
	// in multi-stream mode).
	ShardID string
	// Stream is the shard's stream.
	Stream StreamRef
	// StartingPosition is where processing resumes: the lease's checkpoint,
	// or a sentinel (TRIM_HORIZON, LATEST, AT_TIMESTAMP) for a shard never
	// checkpointed.
	StartingPosition checkpoint.Position
	// PendingCheckpoint is set when a previous owner called
	// PrepareCheckpoint and did not finish the checkpoint; nil otherwise.
	PendingCheckpoint *checkpoint.Position
	// PendingCheckpointState is the application state stored with the
	// pending checkpoint.
	PendingCheckpointState []byte
}

// ProcessRecordsInput is passed to RecordProcessor.ProcessRecords.
type ProcessRecordsInput struct {
	// ShardID is the shard the records come from.
	ShardID string
	// Stream is the shard's stream.
	Stream StreamRef
	// Records are the records of the batch, in shard order, deaggregated.
	// The slice and the records' Data belong to the consumer and are valid
	// until ProcessRecords returns.
	Records []Record
	// MillisBehindLatest is how far the batch is behind the tip of the shard.
	MillisBehindLatest int64
	// Checkpointer records progress. Checkpointing is up to the processor;
	// during ProcessRecords, Checkpoint() marks everything delivered so far
	// (this batch included). Once ProcessRecords has returned, Checkpoint()
	// marks only the batches it returned nil for: after an error (while the
	// batch waits for its retry, in ShutdownRequested) it covers the
	// batches before the failed one.
	Checkpointer Checkpointer
}

// ShardEndedInput is passed to RecordProcessor.ShardEnded.
type ShardEndedInput struct {
	ShardID string
	Stream  StreamRef
	// Checkpointer must be used to checkpoint (Checkpoint(ctx)), which
	// writes SHARD_END and lets the child shards start.
	Checkpointer Checkpointer
}

// ShutdownRequestedInput is passed to RecordProcessor.ShutdownRequested.
type ShutdownRequestedInput struct {
	ShardID string
	Stream  StreamRef
	// Checkpointer lets the processor checkpoint what it has finished before
	// the lease is released: Checkpoint() writes the end of the last batch
	// ProcessRecords returned nil for, never a batch that failed.
	Checkpointer Checkpointer
}

// LeaseLostInput is passed to RecordProcessor.LeaseLost.
type LeaseLostInput struct {
	ShardID string
	Stream  StreamRef
}

// RecordProcessor processes the records of one shard. It has KCL's
// lifecycle: Initialize once, ProcessRecords for each batch in order, and
// exactly one of ShardEnded, ShutdownRequested or LeaseLost at the end (none
// when Run's context is cancelled, which is treated like a crash).
//
// The consumer calls one processor from one goroutine at a time; different
// shards' processors run in parallel.
//
// Error policy: an error (or a panic, recovered and wrapped in *PanicError)
// from Initialize or ProcessRecords is never skipped: the consumer logs it,
// counts it, waits with exponential backoff (Config.ProcessorRetryBackoff)
// and calls again with the same input, minus any records the processor has
// already checkpointed. It keeps retrying until the call succeeds, the lease
// is lost or the consumer stops; records are therefore processed at least
// once and never silently dropped. A processor that wants to drop a poison
// record does so explicitly by returning nil.
// An error from ShardEnded (or a ShardEnded that did not checkpoint) is
// retried the same way, because children cannot start before the parent
// checkpointed SHARD_END. An error from ShutdownRequested is logged and the
// lease is released anyway.
type RecordProcessor interface {
	Initialize(ctx context.Context, in InitializeInput) error
	ProcessRecords(ctx context.Context, in ProcessRecordsInput) error
	// LeaseLost tells the processor another worker now owns the shard; it
	// cannot checkpoint any more and should drop its state.
	LeaseLost(ctx context.Context, in LeaseLostInput)
	ShardEnded(ctx context.Context, in ShardEndedInput) error
	ShutdownRequested(ctx context.Context, in ShutdownRequestedInput) error
}

// ProcessorFactory makes one RecordProcessor per shard lease a worker
// acquires. It is called from several goroutines with the lease key: the
// shard id, or in multi-stream mode "account:stream:creationEpoch:shardId"
// (the inputs' Stream tells the stream apart in either mode).
type ProcessorFactory interface {
	NewProcessor(shardID string) RecordProcessor
}

// ProcessorFactoryFunc adapts a function to ProcessorFactory.
type ProcessorFactoryFunc func(shardID string) RecordProcessor

// NewProcessor implements ProcessorFactory.
func (f ProcessorFactoryFunc) NewProcessor(shardID string) RecordProcessor { return f(shardID) }

// RecordFunc handles one record. A non-nil error makes the consumer deliver
// the batch again from that record, after a backoff.
type RecordFunc func(ctx context.Context, shardID string, r Record) error

// ProcessRecord returns a factory whose processors call fn for each record in
// order and checkpoint after each batch, at shard end and on shutdown. When
// fn fails on a record, the records before it are checkpointed and the error
// is returned, so the batch is delivered again from the failed record.
func ProcessRecord(fn RecordFunc) ProcessorFactory {
	return ProcessStreamRecord(func(ctx context.Context, _ StreamRef, shardID string, r Record) error {
		return fn(ctx, shardID, r)
	})
}

// StreamRecordFunc is RecordFunc with the record's stream, for
// multi-stream consumers (Config.Streams).
type StreamRecordFunc func(ctx context.Context, stream StreamRef, shardID string, r Record) error

// ProcessStreamRecord is ProcessRecord for a function that also gets the
// stream each record came from.
func ProcessStreamRecord(fn StreamRecordFunc) ProcessorFactory {
	return ProcessorFactoryFunc(func(string) RecordProcessor {
		return &funcProcessor{fn: fn}
	})
}

type funcProcessor struct {
	fn StreamRecordFunc
	// done is the position of the last record fn handled successfully and
	// not yet checkpointed, when hasDone.
	done    checkpoint.Position
	hasDone bool
}

func (p *funcProcessor) Initialize(context.Context, InitializeInput) error { return nil }

func (p *funcProcessor) ProcessRecords(ctx context.Context, in ProcessRecordsInput) error {
	for i := range in.Records {
		if err := p.fn(ctx, in.Stream, in.ShardID, in.Records[i]); err != nil {
			if p.hasDone {
				// Best effort: on failure the remainder is redelivered anyway.
				_ = p.checkpointDone(ctx, in.Checkpointer)
			}
			return err
		}
		p.done, p.hasDone = in.Records[i].Position(), true
	}
	return p.checkpointDone(ctx, in.Checkpointer)
}

func (p *funcProcessor) checkpointDone(ctx context.Context, cp Checkpointer) error {
	if !p.hasDone {
		return nil
	}
	if err := cp.CheckpointAt(ctx, p.done); err != nil {
		return err
	}
	p.hasDone = false
	return nil
}

func (p *funcProcessor) LeaseLost(context.Context, LeaseLostInput) {}

func (p *funcProcessor) ShardEnded(ctx context.Context, in ShardEndedInput) error {
	return in.Checkpointer.Checkpoint(ctx)
}

// ShutdownRequested checkpoints only records fn handled: a batch that is
// failing is not marked done.
func (p *funcProcessor) ShutdownRequested(ctx context.Context, in ShutdownRequestedInput) error {
	return p.checkpointDone(ctx, in.Checkpointer)
}
