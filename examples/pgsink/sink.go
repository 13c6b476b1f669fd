package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shardflow/shardflow/checkpoint"
	"github.com/shardflow/shardflow/consumer"
)

// Sink writes batches of Kinesis records into a PostgreSQL table, one
// transaction per batch. Every row is keyed by (shard_id, sequence_number,
// sub_sequence_number) and inserted with ON CONFLICT DO NOTHING, so writing
// a batch again (after a crash between commit and checkpoint) changes
// nothing: at-least-once delivery becomes exactly-once rows.
//
// Records that cannot be loaded (not a JSON object, a field of the wrong
// type, a value PostgreSQL rejects) go to the dead-letter table
// <table>_dead_letter in the same transaction, with the error, keyed the
// same way. They are counted and logged, never dropped.
type Sink struct {
	pool  *pgxpool.Pool
	table pgx.Identifier
	dead  pgx.Identifier
	cols  []Column
	log   *slog.Logger

	insertSQL, deadSQL string

	inserted, duplicates, deadLettered, batches atomic.Int64

	// Test hooks, nil in production. afterCommit runs between a batch's
	// commit and its checkpoint; an error skips the checkpoint (a crash).
	beforeCommit func(ctx context.Context, shardID string) error
	afterCommit  func(ctx context.Context, shardID string, committed checkpoint.Position) error
}

// SinkConfig configures a Sink.
type SinkConfig struct {
	// Table is the target table, optionally schema-qualified ("app.events").
	Table string
	// Columns maps JSON fields to typed columns (see ParseColumns).
	Columns []Column
	Logger  *slog.Logger
}

// NewSink returns a Sink writing through pool.
func NewSink(pool *pgxpool.Pool, cfg SinkConfig) (*Sink, error) {
	if pool == nil {
		return nil, errors.New("pgsink: nil pool")
	}
	table, err := parseTable(cfg.Table)
	if err != nil {
		return nil, err
	}
	if len(cfg.Columns) == 0 {
		return nil, errors.New("pgsink: no columns mapped")
	}
	dead := append(pgx.Identifier(nil), table...)
	dead[len(dead)-1] += "_dead_letter"
	s := &Sink{pool: pool, table: table, dead: dead, cols: cfg.Columns, log: cfg.Logger}
	if s.log == nil {
		s.log = slog.Default()
	}
	names := append([]string(nil), reservedColumns...)
	params := []string{"$1", "$2", "$3", "$4", "$5"}
	for i, c := range cfg.Columns {
		names = append(names, pgx.Identifier{c.Name}.Sanitize())
		params = append(params, fmt.Sprintf("$%d", i+6))
	}
	s.insertSQL = fmt.Sprintf(`INSERT INTO %s (%s) VALUES (%s)
ON CONFLICT (shard_id, sequence_number, sub_sequence_number) DO NOTHING`,
		table.Sanitize(), strings.Join(names, ", "), strings.Join(params, ", "))
	s.deadSQL = fmt.Sprintf(`INSERT INTO %s (shard_id, sequence_number, sub_sequence_number, partition_key, arrived_at, data, error)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (shard_id, sequence_number, sub_sequence_number) DO NOTHING`, dead.Sanitize())
	return s, nil
}

func parseTable(name string) (pgx.Identifier, error) {
	parts := strings.Split(name, ".")
	if len(parts) > 2 {
		return nil, fmt.Errorf("pgsink: table %q: want table or schema.table", name)
	}
	for _, p := range parts {
		if !identRE.MatchString(p) {
			return nil, fmt.Errorf("pgsink: table %q: names must match %s", name, identRE)
		}
	}
	if len(parts[len(parts)-1]) > 63-len("_dead_letter") {
		return nil, fmt.Errorf("pgsink: table %q: name too long", name)
	}
	return pgx.Identifier(parts), nil
}

// CreateTables creates the table and its dead-letter table if they do not
// exist. Sequence numbers are numeric so they sort as numbers.
func (s *Sink) CreateTables(ctx context.Context) error {
	var cols strings.Builder
	for _, c := range s.cols {
		fmt.Fprintf(&cols, ",\n  %s %s", pgx.Identifier{c.Name}.Sanitize(), c.Type)
	}
	ddl := fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (
  shard_id text NOT NULL,
  sequence_number numeric NOT NULL,
  sub_sequence_number bigint NOT NULL,
  partition_key text NOT NULL,
  arrived_at timestamptz%s,
  PRIMARY KEY (shard_id, sequence_number, sub_sequence_number)
);
CREATE TABLE IF NOT EXISTS %s (
  shard_id text NOT NULL,
  sequence_number numeric NOT NULL,
  sub_sequence_number bigint NOT NULL,
  partition_key text NOT NULL,
  arrived_at timestamptz,
  data bytea NOT NULL,
  error text NOT NULL,
  dead_lettered_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (shard_id, sequence_number, sub_sequence_number)
)`, s.table.Sanitize(), cols.String(), s.dead.Sanitize())
	if _, err := s.pool.Exec(ctx, ddl); err != nil {
		return fmt.Errorf("pgsink: creating tables: %w", err)
	}
	return nil
}

// BatchResult counts what one WriteBatch did.
type BatchResult struct {
	Inserted     int // new rows
	Duplicates   int // rows already present (a batch written again)
	DeadLettered int // records written to the dead-letter table
}

// SinkStats are the totals since the Sink was created.
type SinkStats struct {
	Batches, Inserted, Duplicates, DeadLettered int64
}

// Stats returns the totals.
func (s *Sink) Stats() SinkStats {
	return SinkStats{Batches: s.batches.Load(), Inserted: s.inserted.Load(), Duplicates: s.duplicates.Load(), DeadLettered: s.deadLettered.Load()}
}

// WriteBatch writes recs in one transaction and returns after it committed.
// On error nothing was committed and the batch can be written again.
func (s *Sink) WriteBatch(ctx context.Context, shardID string, recs []consumer.Record) (BatchResult, error) {
	// A value PostgreSQL rejects (out of range, a constraint the table owner
	// added) fails the whole transaction; the record is then dead-lettered
	// and the batch written again, so one bad record cannot block a shard.
	rejected := map[int]string{}
	for {
		res, failed, pgErr, err := s.writeOnce(ctx, shardID, recs, rejected)
		if err == nil {
			s.batches.Add(1)
			s.inserted.Add(int64(res.Inserted))
			s.duplicates.Add(int64(res.Duplicates))
			s.deadLettered.Add(int64(res.DeadLettered))
			return res, nil
		}
		if failed < 0 || !isRecordError(pgErr) || rejected[failed] != "" {
			return BatchResult{}, err
		}
		rejected[failed] = fmt.Sprintf("%v: postgres rejected the row: %s (SQLSTATE %s)", ErrBadRecord, pgErr.Message, pgErr.Code)
	}
}

// isRecordError reports whether a PostgreSQL error is about the row's data
// (class 22, data exception; class 23, integrity constraint violation)
// rather than the connection or the server.
func isRecordError(e *pgconn.PgError) bool {
	return e != nil && (strings.HasPrefix(e.Code, "22") || strings.HasPrefix(e.Code, "23"))
}

// writeOnce runs one transaction. On failure it reports the index of the
// record whose statement failed (-1 if none) and the PostgreSQL error.
func (s *Sink) writeOnce(ctx context.Context, shardID string, recs []consumer.Record, rejected map[int]string) (res BatchResult, failed int, pgErr *pgconn.PgError, err error) {
	failed = -1
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return res, failed, nil, fmt.Errorf("pgsink: begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after Commit

	batch := &pgx.Batch{}
	dead := make([]bool, len(recs))
	for i := range recs {
		r := &recs[i]
		var arrived any
		if !r.ApproximateArrivalTimestamp.IsZero() {
			arrived = r.ApproximateArrivalTimestamp
		}
		reason := rejected[i]
		var vals []any
		if reason == "" {
			var derr error
			vals, derr = decodeRecord(s.cols, r.Data)
			if derr != nil {
				reason = derr.Error()
			}
		}
		if reason != "" {
			dead[i] = true
			s.log.Warn("pgsink: dead-lettering record", "shard", shardID, "sequence_number", r.SequenceNumber,
				"sub_sequence_number", r.SubSequenceNumber, "err", reason)
			batch.Queue(s.deadSQL, shardID, r.SequenceNumber, r.SubSequenceNumber, r.PartitionKey, arrived, r.Data, reason)
			continue
		}
		args := append([]any{shardID, r.SequenceNumber, r.SubSequenceNumber, r.PartitionKey, arrived}, vals...)
		batch.Queue(s.insertSQL, args...)
	}
	br := tx.SendBatch(ctx, batch)
	for i := range recs {
		ct, err := br.Exec()
		if err != nil {
			br.Close()
			errors.As(err, &pgErr)
			return BatchResult{}, i, pgErr, fmt.Errorf("pgsink: shard %s record %s/%d: %w", shardID, recs[i].SequenceNumber, recs[i].SubSequenceNumber, err)
		}
		switch {
		case dead[i]:
			if ct.RowsAffected() == 1 {
				res.DeadLettered++
			}
		case ct.RowsAffected() == 1:
			res.Inserted++
		default:
			res.Duplicates++
		}
	}
	if err := br.Close(); err != nil {
		return BatchResult{}, -1, nil, fmt.Errorf("pgsink: batch: %w", err)
	}
	if s.beforeCommit != nil {
		if err := s.beforeCommit(ctx, shardID); err != nil {
			return BatchResult{}, -1, nil, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return BatchResult{}, -1, nil, fmt.Errorf("pgsink: commit: %w", err)
	}
	return res, -1, nil, nil
}
