package main

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/shardflow/shardflow/clock"
)

// Partitioning is the layout of the time partition in an object's key, from
// the arrival time (UTC) of the object's records in the stream.
type Partitioning string

const (
	// PartitionDefault is Firehose's default prefix: YYYY/MM/DD/HH/.
	PartitionDefault Partitioning = "default"
	// PartitionHive is dt=YYYY-MM-DD/hour=HH/, which Glue crawlers, MSCK
	// REPAIR TABLE and partition projection read as two partition columns.
	PartitionHive Partitioning = "hive"
)

// Firehose's limits and defaults for S3 delivery with record format
// conversion, except MinBufferSize: with format conversion Firehose starts
// the buffer size at 64 MiB; this sink accepts Firehose's general minimum,
// 1 MiB, for small or latency-sensitive streams.
const (
	MinBufferSize         = 1 << 20
	MaxBufferSize         = 128 << 20
	DefaultBufferSize     = 128 << 20
	MinBufferInterval     = 60 * time.Second
	MaxBufferInterval     = 900 * time.Second
	DefaultBufferInterval = 300 * time.Second
	// S3 refuses multipart parts under 5 MiB (except the last).
	MinPartSize          = 5 << 20
	DefaultPartSize      = 16 << 20
	DefaultRowGroupRows  = 128 << 10
	DefaultErrorPrefix   = "format-conversion-failed/"
	DefaultPartitioning  = PartitionDefault
	maxRowGroupRowsLimit = 1 << 24
)

// Config configures a Sink. Zero values take the defaults.
type Config struct {
	// Bucket is the S3 bucket. Required.
	Bucket string
	// Prefix is prepended to every data object's key ("" or ending in "/",
	// e.g. "orders/").
	Prefix string
	// ErrorPrefix is prepended to the keys of the objects holding records
	// that failed conversion. Default "format-conversion-failed/".
	ErrorPrefix string
	// Partitioning is the time partition layout. Default PartitionDefault.
	Partitioning Partitioning
	// Schema is the table's columns, as a Glue table gives them. Required.
	Schema []Column
	// BufferSize: a shard's file is cut once the records buffered for it
	// reach this many bytes of input. 1-128 MiB, default 128 MiB (Firehose's
	// default with format conversion, where its own minimum is 64 MiB).
	BufferSize int64
	// BufferInterval: a shard's file is cut when this long has passed since
	// its first record was buffered. 60-900 s, default 300 s. Checked when
	// the consumer delivers a batch: set the consumer's
	// CallProcessRecordsEvenForEmptyList so a quiet shard is cut on time.
	BufferInterval time.Duration
	// PartSize: files larger than this are uploaded in multipart uploads of
	// parts of this size. At least 5 MiB, default 16 MiB.
	PartSize int64
	// RowGroupRows caps the rows of a Parquet row group. Default 131,072.
	RowGroupRows int
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Clock measures BufferInterval. Default the real clock.
	Clock clock.Clock
}

// ErrInvalidConfig is wrapped by every configuration error.
var ErrInvalidConfig = errors.New("s3sink: invalid config")

func (c Config) withDefaults() (Config, error) {
	bad := func(field, format string, args ...any) (Config, error) {
		return Config{}, fmt.Errorf("%w: %s: %s", ErrInvalidConfig, field, fmt.Sprintf(format, args...))
	}
	if c.Bucket == "" {
		return bad("Bucket", "required")
	}
	if c.Prefix != "" && !strings.HasSuffix(c.Prefix, "/") {
		return bad("Prefix", "%q must end in /", c.Prefix)
	}
	if c.ErrorPrefix == "" {
		c.ErrorPrefix = DefaultErrorPrefix
	}
	if !strings.HasSuffix(c.ErrorPrefix, "/") {
		return bad("ErrorPrefix", "%q must end in /", c.ErrorPrefix)
	}
	if c.ErrorPrefix == c.Prefix {
		return bad("ErrorPrefix", "%q is the same as Prefix: bad records would land in the table", c.ErrorPrefix)
	}
	switch c.Partitioning {
	case "":
		c.Partitioning = DefaultPartitioning
	case PartitionDefault, PartitionHive:
	default:
		return bad("Partitioning", "%q: want %q or %q", c.Partitioning, PartitionDefault, PartitionHive)
	}
	if len(c.Schema) == 0 {
		return bad("Schema", "required")
	}
	switch {
	case c.BufferSize == 0:
		c.BufferSize = DefaultBufferSize
	case c.BufferSize < MinBufferSize || c.BufferSize > MaxBufferSize:
		return bad("BufferSize", "%d: want 1-128 MiB", c.BufferSize)
	}
	switch {
	case c.BufferInterval == 0:
		c.BufferInterval = DefaultBufferInterval
	case c.BufferInterval < MinBufferInterval || c.BufferInterval > MaxBufferInterval:
		return bad("BufferInterval", "%v: want 60s-900s", c.BufferInterval)
	}
	switch {
	case c.PartSize == 0:
		c.PartSize = DefaultPartSize
	case c.PartSize < MinPartSize:
		return bad("PartSize", "%d: want at least 5 MiB", c.PartSize)
	}
	switch {
	case c.RowGroupRows == 0:
		c.RowGroupRows = DefaultRowGroupRows
	case c.RowGroupRows < 0 || c.RowGroupRows > maxRowGroupRowsLimit:
		return bad("RowGroupRows", "%d: want 1-%d", c.RowGroupRows, maxRowGroupRowsLimit)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Clock = clock.OrReal(c.Clock)
	return c, nil
}
