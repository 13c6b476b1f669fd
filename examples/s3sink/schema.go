package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/parquet-go/parquet-go"
)

// ErrBadRecord marks a record that does not convert to the schema: not a
// JSON object, or a field whose value does not fit its column's type. Such
// records go to the error prefix with the reason, like Firehose's
// format-conversion-failed output.
var ErrBadRecord = errors.New("s3sink: record does not fit the schema")

// ColumnType is a column's type, named as in a Glue (Hive) table.
type ColumnType string

// The column types a schema may use, with the JSON values each accepts.
const (
	TypeString    ColumnType = "string"    // a JSON string, valid UTF-8
	TypeBigint    ColumnType = "bigint"    // an integral JSON number within int64 (Parquet INT64)
	TypeInt       ColumnType = "int"       // an integral JSON number within int32 (Parquet INT32)
	TypeDouble    ColumnType = "double"    // a JSON number (Parquet DOUBLE)
	TypeFloat     ColumnType = "float"     // a JSON number within float32's range (Parquet FLOAT)
	TypeBoolean   ColumnType = "boolean"   // true or false
	TypeTimestamp ColumnType = "timestamp" // RFC 3339, "YYYY-MM-DD HH:MM:SS[.f]" (UTC) or epoch milliseconds (Parquet TIMESTAMP(MILLIS, UTC))
	TypeDate      ColumnType = "date"      // "YYYY-MM-DD" (Parquet DATE)
)

var columnTypes = []ColumnType{TypeString, TypeBigint, TypeInt, TypeDouble, TypeFloat, TypeBoolean, TypeTimestamp, TypeDate}

// Column is one column of the table: its name in the Parquet file and the
// JSON field it is read from.
type Column struct {
	Name string
	// Field is the JSON object key. Matching is case-insensitive, as with
	// Firehose's OpenX JSON SerDe default; an exact match wins.
	Field string
	Type  ColumnType
}

// Every column is optional (a missing field or a JSON null is NULL), as
// every column of a Glue table is nullable.
var nameRE = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// ParseSchema parses "name[=field]:type,...", e.g.
// "id:bigint,customer=customerName:string,ts:timestamp".
func ParseSchema(spec string) ([]Column, error) {
	var cols []Column
	seen := map[string]bool{}
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		nameField, typ, ok := strings.Cut(part, ":")
		if !ok {
			return nil, fmt.Errorf("s3sink: schema column %q: want name[=field]:type", part)
		}
		name, field, hasField := strings.Cut(nameField, "=")
		if !hasField {
			field = name
		}
		c := Column{Name: strings.TrimSpace(name), Field: strings.TrimSpace(field), Type: ColumnType(strings.ToLower(strings.TrimSpace(typ)))}
		if !nameRE.MatchString(c.Name) {
			return nil, fmt.Errorf("s3sink: schema column %q: name must match %s (Glue column names are lower case)", c.Name, nameRE)
		}
		if c.Field == "" {
			return nil, fmt.Errorf("s3sink: schema column %q: empty JSON field", c.Name)
		}
		if !validType(c.Type) {
			return nil, fmt.Errorf("s3sink: schema column %q: type %q: want one of %v", c.Name, c.Type, columnTypes)
		}
		if seen[c.Name] {
			return nil, fmt.Errorf("s3sink: schema column %q: duplicate", c.Name)
		}
		seen[c.Name] = true
		cols = append(cols, c)
	}
	if len(cols) == 0 {
		return nil, errors.New("s3sink: schema has no columns")
	}
	return cols, nil
}

func validType(t ColumnType) bool {
	for _, c := range columnTypes {
		if t == c {
			return true
		}
	}
	return false
}

// converter turns JSON records into Parquet rows of one schema.
type converter struct {
	cols   []Column
	schema *parquet.Schema
	// index[i] is the Parquet column index of cols[i]: parquet-go orders a
	// group's leaves by name, not in the order the user gave, and a row's
	// values must be in column order.
	index []int
	// byField maps each column's JSON field to its position in cols, and
	// lowerField its lower-cased field, for the case-insensitive match.
	byField    map[string]int
	lowerField map[string]int
}

func newConverter(cols []Column) (*converter, error) {
	if len(cols) == 0 {
		return nil, errors.New("s3sink: schema has no columns")
	}
	g := parquet.Group{}
	for _, c := range cols {
		var n parquet.Node
		switch c.Type {
		case TypeString:
			n = parquet.String()
		case TypeBigint:
			n = parquet.Leaf(parquet.Int64Type)
		case TypeInt:
			n = parquet.Leaf(parquet.Int32Type)
		case TypeDouble:
			n = parquet.Leaf(parquet.DoubleType)
		case TypeFloat:
			n = parquet.Leaf(parquet.FloatType)
		case TypeBoolean:
			n = parquet.Leaf(parquet.BooleanType)
		case TypeTimestamp:
			n = parquet.Timestamp(parquet.Millisecond)
		case TypeDate:
			n = parquet.Date()
		default:
			return nil, fmt.Errorf("s3sink: column %q: unknown type %q", c.Name, c.Type)
		}
		if _, dup := g[c.Name]; dup {
			return nil, fmt.Errorf("s3sink: column %q: duplicate", c.Name)
		}
		g[c.Name] = parquet.Optional(n)
	}
	cv := &converter{cols: cols, schema: parquet.NewSchema("record", g), index: make([]int, len(cols)),
		byField: map[string]int{}, lowerField: map[string]int{}}
	for i, c := range cols {
		leaf, ok := cv.schema.Lookup(c.Name)
		if !ok {
			return nil, fmt.Errorf("s3sink: column %q missing from the Parquet schema", c.Name)
		}
		cv.index[i] = leaf.ColumnIndex
		cv.byField[c.Field] = i
		if _, ok := cv.lowerField[strings.ToLower(c.Field)]; !ok {
			cv.lowerField[strings.ToLower(c.Field)] = i
		}
	}
	return cv, nil
}

// convert decodes one JSON record into row (reusing its storage). Fields
// not in the schema are ignored, missing ones are NULL. The error wraps
// ErrBadRecord and says which field failed and why.
func (cv *converter) convert(data []byte, row parquet.Row) (parquet.Row, error) {
	row = row[:0]
	for range cv.cols {
		row = append(row, parquet.Value{})
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return row, fmt.Errorf("%w: not a JSON object", ErrBadRecord)
		}
		return row, fmt.Errorf("%w: not JSON: %v", ErrBadRecord, err)
	}
	if fields == nil {
		return row, fmt.Errorf("%w: not a JSON object", ErrBadRecord)
	}
	for i, c := range cv.cols {
		key := c.Field
		raw, ok := fields[key]
		if !ok {
			if key, raw, ok = foldLookup(fields, c.Field); !ok {
				continue // missing: NULL
			}
		}
		v, err := convertValue(c.Type, raw)
		if err != nil {
			return row, fmt.Errorf("%w: field %q (column %s %s): %v", ErrBadRecord, key, c.Name, c.Type, err)
		}
		row[cv.index[i]] = v
	}
	// A parquet.Row holds its values in column order; each of our columns
	// is one optional leaf, so column i is row[i].
	for i := range row {
		def := 1
		if row[i].IsNull() {
			def = 0
		}
		row[i] = row[i].Level(0, def, i)
	}
	return row, nil
}

// foldLookup finds field case-insensitively. Of several matches it takes
// the smallest key, so the choice never depends on map order (a rewritten
// file must hold the same values).
func foldLookup(fields map[string]json.RawMessage, field string) (key string, raw json.RawMessage, ok bool) {
	for k, v := range fields {
		if strings.EqualFold(k, field) && (!ok || k < key) {
			key, raw, ok = k, v, true
		}
	}
	return key, raw, ok
}

const timestampLayout = "2006-01-02 15:04:05.999999999"

func convertValue(t ColumnType, raw json.RawMessage) (parquet.Value, error) {
	if string(raw) == "null" {
		return parquet.NullValue(), nil
	}
	str := func() (string, error) {
		if len(raw) < 2 || raw[0] != '"' {
			return "", fmt.Errorf("want a string, got %s", abbrev(raw))
		}
		inner := raw[1 : len(raw)-1]
		if !utf8.Valid(inner) {
			// JSON text is UTF-8; decoding would replace the bytes with
			// U+FFFD, and the row would silently not hold what was sent.
			return "", fmt.Errorf("string is not valid UTF-8: %q", abbrev(raw))
		}
		if bytes.IndexByte(inner, '\\') < 0 {
			return string(inner), nil // no escapes: the common case, without a second decode
		}
		if loneSurrogate(inner) {
			// Decoded as U+FFFD too: the same silent change.
			return "", fmt.Errorf("string has a lone surrogate escape: %s", abbrev(raw))
		}
		var s string
		err := json.Unmarshal(raw, &s)
		return s, err
	}
	num := func() (json.Number, error) {
		if len(raw) == 0 || !(raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9')) {
			return "", fmt.Errorf("want a number, got %s", abbrev(raw))
		}
		return json.Number(raw), nil
	}
	switch t {
	case TypeString:
		s, err := str()
		if err != nil {
			return parquet.Value{}, err
		}
		return parquet.ByteArrayValue([]byte(s)), nil
	case TypeBigint, TypeInt:
		n, err := num()
		if err != nil {
			return parquet.Value{}, err
		}
		bits := 64
		if t == TypeInt {
			bits = 32
		}
		i, err := strconv.ParseInt(n.String(), 10, bits)
		if err != nil {
			return parquet.Value{}, fmt.Errorf("%s is not an integer within int%d", abbrev(raw), bits)
		}
		if t == TypeInt {
			return parquet.Int32Value(int32(i)), nil
		}
		return parquet.Int64Value(i), nil
	case TypeDouble, TypeFloat:
		n, err := num()
		if err != nil {
			return parquet.Value{}, err
		}
		f, err := n.Float64()
		if err != nil || (t == TypeFloat && math.Abs(f) > math.MaxFloat32) {
			return parquet.Value{}, fmt.Errorf("%s is out of range for %s", abbrev(raw), t)
		}
		if t == TypeFloat {
			return parquet.FloatValue(float32(f)), nil
		}
		return parquet.DoubleValue(f), nil
	case TypeBoolean:
		switch string(raw) {
		case "true":
			return parquet.BooleanValue(true), nil
		case "false":
			return parquet.BooleanValue(false), nil
		}
		return parquet.Value{}, fmt.Errorf("want true or false, got %s", abbrev(raw))
	case TypeTimestamp:
		if n, err := num(); err == nil {
			ms, err := strconv.ParseInt(n.String(), 10, 64)
			if err != nil {
				return parquet.Value{}, fmt.Errorf("%s is not integral epoch milliseconds", abbrev(raw))
			}
			return parquet.Int64Value(ms), nil
		}
		s, err := str()
		if err != nil {
			return parquet.Value{}, fmt.Errorf("want a timestamp string or epoch milliseconds, got %s", abbrev(raw))
		}
		ts, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			if ts, err = time.Parse(timestampLayout, s); err != nil {
				return parquet.Value{}, fmt.Errorf("%q is not RFC 3339 or %q", s, "YYYY-MM-DD HH:MM:SS[.f]")
			}
		}
		return parquet.Int64Value(ts.UnixMilli()), nil
	case TypeDate:
		s, err := str()
		if err != nil {
			return parquet.Value{}, err
		}
		d, err := time.Parse(time.DateOnly, s)
		if err != nil {
			return parquet.Value{}, fmt.Errorf("%q is not YYYY-MM-DD", s)
		}
		return parquet.Int32Value(int32(d.Unix() / 86400)), nil
	}
	return parquet.Value{}, fmt.Errorf("unknown type %q", t)
}

// loneSurrogate reports whether a JSON string's contents (valid JSON)
// hold a \uXXXX escape of a UTF-16 surrogate that is not half of a pair.
func loneSurrogate(inner []byte) bool {
	hex := func(i int) (rune, bool) { // the escape \uXXXX at inner[i:]
		if i+6 > len(inner) || inner[i] != '\\' || inner[i+1] != 'u' {
			return 0, false
		}
		n, err := strconv.ParseUint(string(inner[i+2:i+6]), 16, 16)
		return rune(n), err == nil
	}
	for i := 0; i < len(inner); i++ {
		if inner[i] != '\\' {
			continue
		}
		r, ok := hex(i)
		if !ok {
			i++ // a two-character escape such as \\ or \"
			continue
		}
		switch {
		case r >= 0xd800 && r < 0xdc00: // high: a low one must follow
			lo, ok := hex(i + 6)
			if !ok || lo < 0xdc00 || lo >= 0xe000 {
				return true
			}
			i += 11
		case r >= 0xdc00 && r < 0xe000:
			return true
		default:
			i += 5
		}
	}
	return false
}

func abbrev(raw []byte) string {
	if len(raw) > 40 {
		return string(raw[:37]) + "..."
	}
	return string(raw)
}
