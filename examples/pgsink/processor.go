package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/shardflow/shardflow/checkpoint"
	"github.com/shardflow/shardflow/consumer"
)

// Processor is the consumer.RecordProcessor for one shard. Each batch is
// written in one transaction and checkpointed only after the commit:
//
//   - a crash before the commit loses the transaction, and the batch is
//     delivered again from the last checkpoint;
//   - a crash between commit and checkpoint delivers the committed batch
//     again, and the upsert skips every row already there.
//
// Either way each record ends up in the table exactly once.
type Processor struct {
	sink *Sink
	log  *slog.Logger
	// committed is the last committed position not yet checkpointed.
	committed *checkpoint.Position
}

// Factory returns a consumer.ProcessorFactory making a Processor per shard.
func (s *Sink) Factory() consumer.ProcessorFactory {
	return consumer.ProcessorFactoryFunc(func(shardID string) consumer.RecordProcessor {
		return &Processor{sink: s, log: s.log.With("shard", shardID)}
	})
}

// Initialize implements consumer.RecordProcessor.
func (p *Processor) Initialize(ctx context.Context, in consumer.InitializeInput) error {
	p.log.Info("pgsink: processing shard", "from", in.StartingPosition)
	return nil
}

// ProcessRecords implements consumer.RecordProcessor. An error (database
// down, checkpoint failed) makes the consumer deliver the batch again after
// a backoff; nothing is skipped.
func (p *Processor) ProcessRecords(ctx context.Context, in consumer.ProcessRecordsInput) error {
	if len(in.Records) == 0 {
		return nil
	}
	res, err := p.sink.WriteBatch(ctx, in.ShardID, in.Records)
	if err != nil {
		return err
	}
	last := in.Records[len(in.Records)-1].Position()
	p.committed = &last
	if res.Duplicates > 0 {
		p.log.Info("pgsink: batch written again after a restart; existing rows kept", "duplicates", res.Duplicates, "inserted", res.Inserted)
	}
	if p.sink.afterCommit != nil {
		if err := p.sink.afterCommit(ctx, in.ShardID, last); err != nil {
			return err
		}
	}
	return p.checkpoint(ctx, in.Checkpointer)
}

func (p *Processor) checkpoint(ctx context.Context, cp consumer.Checkpointer) error {
	if p.committed == nil {
		return nil
	}
	if err := cp.CheckpointAt(ctx, *p.committed); err != nil {
		return fmt.Errorf("pgsink: checkpoint after commit: %w", err)
	}
	p.committed = nil
	return nil
}

// LeaseLost implements consumer.RecordProcessor: the new owner resumes from
// the last checkpoint and the upsert absorbs what this one committed since.
func (p *Processor) LeaseLost(ctx context.Context, in consumer.LeaseLostInput) {
	p.committed = nil
	p.log.Info("pgsink: lease lost")
}

// ShardEnded implements consumer.RecordProcessor.
func (p *Processor) ShardEnded(ctx context.Context, in consumer.ShardEndedInput) error {
	return in.Checkpointer.Checkpoint(ctx)
}

// ShutdownRequested implements consumer.RecordProcessor: it checkpoints a
// committed batch whose checkpoint failed.
func (p *Processor) ShutdownRequested(ctx context.Context, in consumer.ShutdownRequestedInput) error {
	return p.checkpoint(ctx, in.Checkpointer)
}
