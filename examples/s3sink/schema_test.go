package main

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/stretchr/testify/require"
)

// Columns in an order that is not parquet-go's (by name), every type.
const allTypes = "z_name=Name:string,id:bigint,small:int,price:double,ratio:float,ok:boolean,ts:timestamp,day:date"

func TestConvertEveryType(t *testing.T) {
	cols, err := ParseSchema(allTypes)
	require.NoError(t, err)
	cv, err := newConverter(cols)
	require.NoError(t, err)
	var buf bytes.Buffer
	w := parquet.NewWriter(&buf, cv.schema, parquet.Compression(&parquet.Snappy))
	inputs := []string{
		`{"name":"a","id":-9007199254740993,"small":7,"price":1.5,"ratio":0.25,"ok":true,"ts":"2026-12-01T07:50:00.5+01:00","day":"2026-12-01"}`,
		`{"NAME":"b","Name":"exact wins","ID":2,"ts":"2026-12-01 06:50:00","other":[1,{"x":2}]}`,
		`{"ts":1796111400000,"ok":null}`,
	}
	for _, in := range inputs {
		row, err := cv.convert([]byte(in), nil)
		require.NoError(t, err, in)
		_, err = w.WriteRows([]parquet.Row{row})
		require.NoError(t, err)
	}
	require.NoError(t, w.Close())
	rows := readParquet(t, buf.Bytes())
	require.Len(t, rows, 3)
	ts := time.Date(2026, 12, 1, 6, 50, 0, 0, time.UTC)
	r := rows[0]
	require.Equal(t, "a", r["z_name"].String())
	require.Equal(t, int64(-9007199254740993), r["id"].Int64())
	require.Equal(t, int32(7), r["small"].Int32())
	require.Equal(t, 1.5, r["price"].Double())
	require.Equal(t, float32(0.25), r["ratio"].Float())
	require.True(t, r["ok"].Boolean())
	require.Equal(t, ts.Add(500*time.Millisecond).UnixMilli(), r["ts"].Int64())
	require.Equal(t, int32(ts.Unix()/86400), r["day"].Int32())
	require.Equal(t, "exact wins", rows[1]["z_name"].String())
	require.Equal(t, int64(2), rows[1]["id"].Int64())
	require.Equal(t, ts.UnixMilli(), rows[1]["ts"].Int64())
	require.True(t, rows[1]["small"].IsNull())
	require.Equal(t, int64(1796111400000), rows[2]["ts"].Int64())
	require.True(t, rows[2]["ok"].IsNull())
	require.True(t, rows[2]["z_name"].IsNull())
}

// Escapes that decode to what was sent are kept: a surrogate pair, an
// escaped U+FFFD, an escaped backslash before "ud800" (not an escape).
func TestConvertStringEscapes(t *testing.T) {
	cv, err := newConverter([]Column{{Name: "s", Field: "s", Type: TypeString}})
	require.NoError(t, err)
	row, err := cv.convert([]byte(`{"s":"\ud83d\ude00 \ufffd \\ud800 \u00e9\n"}`), nil)
	require.NoError(t, err)
	require.Equal(t, "\U0001F600 \uFFFD \\ud800 \u00e9\n", row[0].String())
}

func TestConvertRejects(t *testing.T) {
	cols, err := ParseSchema(allTypes)
	require.NoError(t, err)
	cv, err := newConverter(cols)
	require.NoError(t, err)
	for in, want := range map[string]string{
		``:                           "not JSON",
		`{"id":1`:                    "not JSON",
		`{"id":1}{}`:                 "not JSON",
		`null`:                       "not a JSON object",
		`"str"`:                      "not a JSON object",
		`{"id":"1"}`:                 "want a number",
		`{"id":1e3}`:                 "not an integer",
		`{"id":9223372036854775808}`: "not an integer within int64",
		`{"small":2147483648}`:       "not an integer within int32",
		`{"ratio":1e39}`:             "out of range for float",
		`{"ok":"true"}`:              "want true or false",
		`{"name":5}`:                 "want a string",
		// JSON text is UTF-8 (RFC 8259); decoding would silently turn the
		// bytes into U+FFFD, so the row would not hold what was sent.
		"{\"name\":\"a\xffb\"}":    "not valid UTF-8",
		"{\"name\":\"a\\n\xffb\"}": "not valid UTF-8",
		`{"name":"a\ud800b"}`:      "lone surrogate",
		`{"name":"\udc00"}`:        "lone surrogate",
		`{"ts":"yesterday"}`:       "is not RFC 3339",
		`{"ts":1.5}`:               "not integral epoch milliseconds",
		`{"day":"2026-13-01"}`:     "is not YYYY-MM-DD",
	} {
		_, err := cv.convert([]byte(in), nil)
		require.ErrorIs(t, err, ErrBadRecord, in)
		require.ErrorContains(t, err, want, in)
	}
}

func TestParseSchemaErrors(t *testing.T) {
	for spec, want := range map[string]string{
		"":              "no columns",
		"id":            "want name[=field]:type",
		"Id:bigint":     "name must match",
		"id:varchar":    "type \"varchar\"",
		"id:int,id:int": "duplicate",
		"id=:int":       "empty JSON field",
	} {
		_, err := ParseSchema(spec)
		require.ErrorContains(t, err, want, spec)
	}
}

func TestConfigValidation(t *testing.T) {
	cols, err := ParseSchema("id:bigint")
	require.NoError(t, err)
	ok := Config{Bucket: "b", Schema: cols}
	for field, mutate := range map[string]func(*Config){
		"Bucket":         func(c *Config) { c.Bucket = "" },
		"Prefix":         func(c *Config) { c.Prefix = "no-slash" },
		"ErrorPrefix":    func(c *Config) { c.Prefix, c.ErrorPrefix = "x/", "x/" },
		"Partitioning":   func(c *Config) { c.Partitioning = "daily" },
		"Schema":         func(c *Config) { c.Schema = nil },
		"BufferSize":     func(c *Config) { c.BufferSize = MaxBufferSize + 1 },
		"BufferInterval": func(c *Config) { c.BufferInterval = 59 * time.Second },
		"PartSize":       func(c *Config) { c.PartSize = MinPartSize - 1 },
		"RowGroupRows":   func(c *Config) { c.RowGroupRows = -1 },
	} {
		c := ok
		mutate(&c)
		_, err := NewSink(&countingS3{}, c)
		require.ErrorIs(t, err, ErrInvalidConfig, field)
		require.ErrorContains(t, err, field+":", field)
	}
	s, err := NewSink(&countingS3{}, ok)
	require.NoError(t, err)
	require.Equal(t, int64(DefaultBufferSize), s.cfg.BufferSize)
	require.Equal(t, DefaultBufferInterval, s.cfg.BufferInterval)
	require.Equal(t, DefaultErrorPrefix, s.cfg.ErrorPrefix)
	require.Equal(t, PartitionDefault, s.cfg.Partitioning)
	_, err = NewSink(nil, ok)
	require.True(t, errors.Is(err, ErrInvalidConfig))
}

// Of several case-insensitive matches the smallest key wins, whatever the
// map order, so a file rewritten after a crash holds the same values.
func TestFoldedFieldIsDeterministic(t *testing.T) {
	cols, err := ParseSchema("id:bigint")
	require.NoError(t, err)
	cv, err := newConverter(cols)
	require.NoError(t, err)
	for range 50 {
		row, err := cv.convert([]byte(`{"iD":3,"Id":2,"ID":1}`), nil)
		require.NoError(t, err)
		require.Equal(t, int64(1), row[0].Int64())
	}
}
