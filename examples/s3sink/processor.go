package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"

	"github.com/shardflow/shardflow/checkpoint"
	"github.com/shardflow/shardflow/consumer"
)

// Processor is the consumer.RecordProcessor of one shard. It buffers the
// shard's records into a segment, cuts the segment into a file pair (the
// Parquet object and, when some records failed conversion, the error
// object) and delivers each cut in three steps:
//
//  1. PrepareCheckpoint at the cut's last record: the cut and its objects'
//     keys are recorded in the lease table before anything is uploaded,
//     with a conditional write that fails if the lease was lost;
//  2. upload the objects, named after the shard and their first and last
//     records (then delete any an earlier owner recorded for the same cut
//     under another layout);
//  3. checkpoint at the cut's last record, which clears the prepared cut.
//
// A worker that dies anywhere in between leaves either nothing uploaded
// (before 1 or during 2: the next owner starts from the same checkpoint)
// or a prepared cut, which the next owner finds in Initialize and honours:
// it cuts its first segment exactly there, whatever its buffer size,
// interval or partition rules would say, so it writes the same keys over
// the same records. The other cut rules are functions of the records only
// (their input bytes since the checkpoint and their arrival hour), so they
// cut where any owner would; only the interval and a shutdown depend on
// the worker's clock, and step 1 is what makes them repeatable.
//
// Records are never in two objects: each cut starts right after the
// previous cut's checkpoint. None is missing: a checkpoint is written only
// after its objects are in S3, and a shard's SHARD_END only after its last
// cut. The consumer starts child shards only after their parents' SHARD_END.
type Processor struct {
	sink    *Sink
	shardID string
	log     *slog.Logger

	// start is the checkpoint processing resumed from; appended the last
	// record added to a segment. Records at or before either are ones the
	// consumer delivers again after a retry, and are skipped.
	start, appended checkpoint.Position
	// planned is the cut a previous owner prepared and did not checkpoint,
	// until it is reached; recovering is what that owner recorded with it,
	// until the cut is checkpointed.
	planned    *checkpoint.Position
	recovering *recovery

	open   *segment
	sealed *segment // cut, not yet checkpointed
}

// cutState is stored with a prepared cut. Keys are the objects any owner
// may have uploaded for the cut: a successor whose layout (prefix,
// partitioning, schema) differs names the cut's objects differently and
// deletes those of the others, or the cut's records would be in two
// objects. First and Records are for operators reading the lease table.
type cutState struct {
	First   string   `json:"first"`
	Records int      `json:"records"`
	Keys    []string `json:"keys,omitempty"`
}

// recovery is a previous owner's prepared cut and its state.
type recovery struct {
	at    checkpoint.Position
	state cutState
}

// Initialize implements consumer.RecordProcessor.
func (p *Processor) Initialize(ctx context.Context, in consumer.InitializeInput) error {
	p.start, p.appended, p.planned, p.recovering, p.open, p.sealed = in.StartingPosition, checkpoint.Position{}, nil, nil, nil, nil
	if in.PendingCheckpoint != nil && !in.PendingCheckpoint.IsSentinel() &&
		(in.StartingPosition.IsSentinel() || in.PendingCheckpoint.Compare(in.StartingPosition) > 0) {
		pc := *in.PendingCheckpoint
		p.planned = &pc
		p.recovering = &recovery{at: pc}
		if len(in.PendingCheckpointState) > 0 {
			if err := json.Unmarshal(in.PendingCheckpointState, &p.recovering.state); err != nil {
				// Not ours (or older): the cut is still honoured, only
				// objects under another layout cannot be found.
				p.log.Warn("s3sink: unreadable state of the planned cut", "cut", pc, "err", err)
			}
		}
		p.log.Info("s3sink: resuming a cut planned by the previous owner", "from", in.StartingPosition, "cut", pc)
	}
	return nil
}

// after reports whether pos comes after q; a sentinel q (TRIM_HORIZON,
// LATEST, AT_TIMESTAMP) is before every record.
func after(pos, q checkpoint.Position) bool {
	return q.IsZero() || q.IsSentinel() || pos.Compare(q) > 0
}

// ProcessRecords implements consumer.RecordProcessor. An error (S3 or the
// lease table unreachable) makes the consumer call again with the same
// records; the processor resumes where it stopped.
func (p *Processor) ProcessRecords(ctx context.Context, in consumer.ProcessRecordsInput) error {
	if err := p.deliverSealed(ctx, in.Checkpointer); err != nil {
		return err
	}
	cfg := &p.sink.cfg
	for i := range in.Records {
		r := &in.Records[i]
		pos := r.Position()
		if !after(pos, p.start) || !after(pos, p.appended) {
			continue
		}
		hour := hourOf(r.ApproximateArrivalTimestamp)
		if p.open != nil {
			cutBefore := hour != p.open.hour
			if p.planned != nil {
				// Only the planned cut counts until it is reached. Passing
				// it means records vanished (trimmed) in between.
				cutBefore = pos.Compare(*p.planned) > 0
				if cutBefore {
					p.log.Warn("s3sink: planned cut not found in the shard; cutting before the next record", "cut", *p.planned, "next", pos)
					p.planned = nil
				}
			}
			if cutBefore {
				p.seal()
				if err := p.deliverSealed(ctx, in.Checkpointer); err != nil {
					return err
				}
			}
		}
		if p.open == nil {
			p.open = &segment{hour: hour, opened: cfg.Clock.Now()}
		}
		p.sink.add(p.open, p.shardID, r)
		p.appended = pos
		cut := p.open.inBytes >= cfg.BufferSize
		if p.planned != nil {
			cut = pos.Compare(*p.planned) >= 0
		}
		if cut {
			if p.planned != nil {
				p.sink.recovered.Add(1)
			}
			p.planned = nil
			p.seal()
			if err := p.deliverSealed(ctx, in.Checkpointer); err != nil {
				return err
			}
		}
	}
	if p.open != nil && p.planned == nil && cfg.Clock.Now().Sub(p.open.opened) >= cfg.BufferInterval {
		p.seal()
		return p.deliverSealed(ctx, in.Checkpointer)
	}
	return nil
}

func (p *Processor) seal() {
	if p.open == nil {
		return
	}
	p.sink.finish(p.open)
	p.sealed, p.open = p.open, nil
}

// deliverSealed runs the three steps for the sealed segment. Each step is
// idempotent, so a failed call is simply made again.
func (p *Processor) deliverSealed(ctx context.Context, cp consumer.Checkpointer) error {
	seg := p.sealed
	if seg == nil {
		return nil
	}
	cut := cutState{First: seg.first.String(), Records: seg.good + seg.bad, Keys: p.sink.objectKeysOf(p.shardID, seg)}
	stale := p.staleKeys(seg, cut)
	cut.Keys = append(cut.Keys, stale...)
	state, _ := json.Marshal(cut)
	if err := cp.PrepareCheckpoint(ctx, seg.last, state); err != nil {
		return fmt.Errorf("s3sink: shard %s: recording the cut at %v: %w", p.shardID, seg.last, err)
	}
	if err := p.sink.deliver(ctx, p.shardID, seg); err != nil {
		return fmt.Errorf("s3sink: shard %s: %w", p.shardID, err)
	}
	// Only after this cut's own objects are in: a crash in between leaves
	// records twice for the next owner to clean up, never in none.
	for _, k := range stale {
		if err := remove(ctx, p.sink.s3, p.sink.cfg.Bucket, k); err != nil {
			return fmt.Errorf("s3sink: shard %s: object of the cut under another layout: %w", p.shardID, err)
		}
	}
	if err := cp.CheckpointAt(ctx, seg.last); err != nil {
		return fmt.Errorf("s3sink: shard %s: checkpoint after upload: %w", p.shardID, err)
	}
	p.log.Debug("s3sink: delivered", "first", seg.first, "last", seg.last, "records", seg.good, "bad", seg.bad, "bytes", seg.pq.Len(), "replaced", len(stale))
	p.sealed = nil
	if p.recovering != nil && seg.last.Compare(p.recovering.at) >= 0 {
		p.recovering = nil
	}
	return nil
}

// staleKeys returns the keys an earlier owner may have written for the
// same cut that this one names differently (its layout changed). Only for
// the very same records: if the cut's first record is not the earlier
// owner's (records trimmed from the stream meanwhile), its objects are
// the only copy of those records and are kept.
func (p *Processor) staleKeys(seg *segment, cut cutState) []string {
	r := p.recovering
	if r == nil || seg.last.Compare(r.at) != 0 {
		return nil
	}
	if r.state.First != "" && r.state.First != cut.First {
		p.log.Warn("s3sink: the planned cut starts at another record; objects written for it under another layout are kept",
			"cut", r.at, "planned_first", r.state.First, "first", cut.First)
		return nil
	}
	var stale []string
	for _, k := range r.state.Keys {
		if !slices.Contains(cut.Keys, k) && !slices.Contains(stale, k) {
			stale = append(stale, k)
		}
	}
	return stale
}

// flush cuts and delivers whatever is buffered.
func (p *Processor) flush(ctx context.Context, cp consumer.Checkpointer) error {
	if err := p.deliverSealed(ctx, cp); err != nil {
		return err
	}
	if p.planned != nil && p.open != nil {
		// Cutting short of the planned cut would write a different object
		// over the same first records: keep reading until it is reached.
		return nil
	}
	p.seal()
	return p.deliverSealed(ctx, cp)
}

// LeaseLost implements consumer.RecordProcessor: the new owner resumes from
// the last checkpoint, or from the cut this worker prepared.
func (p *Processor) LeaseLost(ctx context.Context, in consumer.LeaseLostInput) {
	p.open, p.sealed, p.planned, p.recovering = nil, nil, nil, nil
	p.log.Info("s3sink: lease lost; buffered records are left to the next owner")
}

// ShardEnded implements consumer.RecordProcessor: the last cut is delivered
// before SHARD_END lets the child shards start.
func (p *Processor) ShardEnded(ctx context.Context, in consumer.ShardEndedInput) error {
	p.planned = nil // every record was delivered: the plan was reached or cannot be
	if err := p.flush(ctx, in.Checkpointer); err != nil {
		return err
	}
	return in.Checkpointer.Checkpoint(ctx)
}

// ShutdownRequested implements consumer.RecordProcessor: a graceful
// shutdown delivers what is buffered, so the next owner starts with an
// empty buffer.
func (p *Processor) ShutdownRequested(ctx context.Context, in consumer.ShutdownRequestedInput) error {
	return p.flush(ctx, in.Checkpointer)
}
