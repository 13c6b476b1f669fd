package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/shardflow/shardflow/checkpoint"
	"github.com/shardflow/shardflow/consumer"
)

// Sink delivers a stream's records to S3 as Parquet, partitioned by arrival
// time, each record exactly once. Its Factory makes one Processor per shard
// for a consumer.Consumer.
type Sink struct {
	s3   S3
	cfg  Config
	conv *converter
	log  *slog.Logger

	objects, errorObjects, records, badRecords, bytesIn, bytesOut, recovered atomic.Int64
}

// Stats are a Sink's totals since it was created, over all its shards.
type Stats struct {
	// Objects and ErrorObjects count uploads of data and error objects
	// (a rewrite after a crash counts again).
	Objects, ErrorObjects int64
	// Records and BadRecords count records in uploaded objects.
	Records, BadRecords int64
	// BytesIn is the records' input size, BytesOut the uploaded bytes.
	BytesIn, BytesOut int64
	// Recovered counts files cut where a previous owner of the shard had
	// planned them (it crashed between planning and checkpointing).
	Recovered int64
}

// NewSink returns a Sink writing through c.
func NewSink(c S3, cfg Config) (*Sink, error) {
	if c == nil {
		return nil, fmt.Errorf("%w: nil S3 client", ErrInvalidConfig)
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	conv, err := newConverter(cfg.Schema)
	if err != nil {
		return nil, fmt.Errorf("%w: Schema: %w", ErrInvalidConfig, err)
	}
	return &Sink{s3: c, cfg: cfg, conv: conv, log: cfg.Logger}, nil
}

// Stats returns the totals.
func (s *Sink) Stats() Stats {
	return Stats{
		Objects: s.objects.Load(), ErrorObjects: s.errorObjects.Load(),
		Records: s.records.Load(), BadRecords: s.badRecords.Load(),
		BytesIn: s.bytesIn.Load(), BytesOut: s.bytesOut.Load(), Recovered: s.recovered.Load(),
	}
}

// Factory returns the consumer.ProcessorFactory of the sink.
func (s *Sink) Factory() consumer.ProcessorFactory {
	return consumer.ProcessorFactoryFunc(func(shardID string) consumer.RecordProcessor {
		return &Processor{sink: s, shardID: shardID, log: s.log.With("shard", shardID)}
	})
}

// segment is the records of one future file pair: the Parquet object with
// the records that converted and the error object with those that did not.
// All its records share one partition hour.
type segment struct {
	hour        int64
	opened      time.Time // worker clock, for BufferInterval only
	inBytes     int64
	first, last checkpoint.Position

	good                int
	goodFirst, goodLast checkpoint.Position
	rows                []parquet.Row // converted, not yet handed to w
	pq                  bytes.Buffer
	w                   *parquet.Writer

	bad               int
	badFirst, badLast checkpoint.Position
	errs              bytes.Buffer // JSON lines
}

const rowBatch = 256

func (s *Sink) add(seg *segment, shardID string, r *consumer.Record) {
	pos := r.Position()
	if seg.first.IsZero() {
		seg.first = pos
	}
	seg.last = pos
	seg.inBytes += int64(len(r.Data))
	var row parquet.Row
	if len(seg.rows) < cap(seg.rows) {
		row = seg.rows[:len(seg.rows)+1][len(seg.rows)]
	}
	row, err := s.conv.convert(r.Data, row)
	if err != nil {
		if seg.bad == 0 {
			seg.badFirst = pos
		}
		seg.bad++
		seg.badLast = pos
		writeErrorLine(&seg.errs, shardID, r, err)
		return
	}
	if seg.good == 0 {
		seg.goodFirst = pos
	}
	seg.good++
	seg.goodLast = pos
	seg.rows = append(seg.rows, row)
	if len(seg.rows) == rowBatch {
		s.writeRows(seg)
	}
}

// writeRows hands the converted rows to the Parquet writer. Writing to a
// bytes.Buffer cannot fail, and the rows match the schema by construction,
// so an error here is a bug.
func (s *Sink) writeRows(seg *segment) {
	if len(seg.rows) == 0 {
		return
	}
	if seg.w == nil {
		seg.w = parquet.NewWriter(&seg.pq, s.conv.schema,
			parquet.Compression(&parquet.Snappy),
			parquet.MaxRowsPerRowGroup(int64(s.cfg.RowGroupRows)),
			// A fixed creator keeps a rewritten file byte-identical.
			parquet.CreatedBy("shardflow-s3sink", "1", ""))
	}
	if _, err := seg.w.WriteRows(seg.rows); err != nil {
		panic(fmt.Sprintf("s3sink: parquet write to memory: %v", err))
	}
	seg.rows = seg.rows[:0]
}

// errorLine is one record in the error prefix: Firehose's fields for a
// record that failed format conversion, plus where it came from.
type errorLine struct {
	ErrorCode         string `json:"errorCode"`
	ErrorMessage      string `json:"errorMessage"`
	ShardID           string `json:"shardId"`
	SequenceNumber    string `json:"sequenceNumber"`
	SubSequenceNumber int64  `json:"subSequenceNumber"`
	PartitionKey      string `json:"partitionKey"`
	ArrivalTimestamp  int64  `json:"approximateArrivalTimestamp"`
	RawData           string `json:"rawData"`
}

func writeErrorLine(b *bytes.Buffer, shardID string, r *consumer.Record, cause error) {
	line, _ := json.Marshal(errorLine{
		ErrorCode: "DataFormatConversion.InvalidRecord", ErrorMessage: cause.Error(),
		ShardID: shardID, SequenceNumber: r.SequenceNumber, SubSequenceNumber: r.SubSequenceNumber,
		PartitionKey: r.PartitionKey, ArrivalTimestamp: r.ApproximateArrivalTimestamp.UnixMilli(),
		RawData: base64.StdEncoding.EncodeToString(r.Data),
	})
	b.Write(line)
	b.WriteByte('\n')
}

// finish closes the Parquet writer; the segment's bytes are final after it.
func (s *Sink) finish(seg *segment) {
	s.writeRows(seg)
	if seg.w != nil {
		if err := seg.w.Close(); err != nil {
			panic(fmt.Sprintf("s3sink: parquet close in memory: %v", err))
		}
		seg.w = nil
	}
}

// objectKeys returns the keys of a segment's data object and error object
// under this sink's layout ("" for one the segment does not have).
func (s *Sink) objectKeys(shardID string, seg *segment) (data, errs string) {
	part := partitionPath(s.cfg.Partitioning, seg.hour)
	if seg.good > 0 {
		data = objectKey(s.cfg.Prefix, part, shardID, seg.goodFirst, seg.goodLast, ".parquet")
	}
	if seg.bad > 0 {
		errs = objectKey(s.cfg.ErrorPrefix, part, shardID, seg.badFirst, seg.badLast, ".json")
	}
	return data, errs
}

// objectKeysOf is objectKeys as a list of the keys the segment has.
func (s *Sink) objectKeysOf(shardID string, seg *segment) []string {
	var keys []string
	data, errs := s.objectKeys(shardID, seg)
	for _, k := range []string{data, errs} {
		if k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

// deliver uploads a finished segment's objects.
func (s *Sink) deliver(ctx context.Context, shardID string, seg *segment) error {
	dataKey, errKey := s.objectKeys(shardID, seg)
	if seg.good > 0 {
		if err := upload(ctx, s.s3, s.cfg.Bucket, dataKey, "application/vnd.apache.parquet", seg.pq.Bytes(), s.cfg.PartSize); err != nil {
			return err
		}
		s.objects.Add(1)
		s.records.Add(int64(seg.good))
		s.bytesOut.Add(int64(seg.pq.Len()))
	}
	if seg.bad > 0 {
		if err := upload(ctx, s.s3, s.cfg.Bucket, errKey, "application/x-ndjson", seg.errs.Bytes(), s.cfg.PartSize); err != nil {
			return err
		}
		s.errorObjects.Add(1)
		s.badRecords.Add(int64(seg.bad))
		s.bytesOut.Add(int64(seg.errs.Len()))
	}
	s.bytesIn.Add(seg.inBytes)
	return nil
}
