package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// ErrBadRecord marks a record that cannot be mapped to the table's columns:
// not a JSON object, or a field of the wrong type. Bad records go to the
// dead-letter table; they are never dropped silently.
var ErrBadRecord = errors.New("bad record")

// ColumnType is a PostgreSQL column type a JSON field can be loaded into.
type ColumnType string

// Supported column types and the JSON they accept.
const (
	Bigint      ColumnType = "bigint"           // JSON integer
	Integer     ColumnType = "integer"          // JSON integer in int32 range
	Double      ColumnType = "double precision" // JSON number
	Numeric     ColumnType = "numeric"          // JSON number or numeric string, exact
	Text        ColumnType = "text"             // JSON string
	Boolean     ColumnType = "boolean"          // JSON true/false
	Timestamptz ColumnType = "timestamptz"      // RFC 3339 string, or Unix seconds as a number
	JSONB       ColumnType = "jsonb"            // any JSON value, stored as is
	UUID        ColumnType = "uuid"             // string in canonical form
)

var typeNames = map[string]ColumnType{
	"bigint": Bigint, "int8": Bigint,
	"integer": Integer, "int": Integer, "int4": Integer,
	"double": Double, "float8": Double, "double precision": Double,
	"numeric": Numeric, "decimal": Numeric,
	"text": Text, "string": Text,
	"boolean": Boolean, "bool": Boolean,
	"timestamptz": Timestamptz, "timestamp": Timestamptz,
	"jsonb": JSONB, "json": JSONB,
	"uuid": UUID,
}

// Column maps one JSON field of a record to a typed table column.
type Column struct {
	Name  string // column name
	Field string // JSON field; defaults to Name
	Type  ColumnType
}

// Columns the sink always writes; mapped columns may not reuse the names.
var reservedColumns = []string{"shard_id", "sequence_number", "sub_sequence_number", "partition_key", "arrived_at"}

var identRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// ParseColumns parses a mapping such as
//
//	id:bigint,name:text,ts:timestamptz,user_name=user.name:text
//
// Each entry is column[=json_field]:type; a dotted json_field reaches into
// nested objects. Column names are lower-case SQL identifiers.
func ParseColumns(spec string) ([]Column, error) {
	if strings.TrimSpace(spec) == "" {
		return nil, errors.New("columns: empty mapping")
	}
	var cols []Column
	seen := map[string]bool{}
	for _, r := range reservedColumns {
		seen[r] = true
	}
	for _, entry := range strings.Split(spec, ",") {
		entry = strings.TrimSpace(entry)
		name, typ, ok := strings.Cut(entry, ":")
		if !ok {
			return nil, fmt.Errorf("columns: %q: want column[=field]:type", entry)
		}
		ct, ok := typeNames[strings.ToLower(strings.TrimSpace(typ))]
		if !ok {
			return nil, fmt.Errorf("columns: %q: unknown type %q", entry, typ)
		}
		name, field, _ := strings.Cut(name, "=")
		if field == "" {
			field = name
		}
		if !identRE.MatchString(name) {
			return nil, fmt.Errorf("columns: %q: column name must match %s", entry, identRE)
		}
		if seen[name] {
			return nil, fmt.Errorf("columns: %q: column %q is reserved or given twice", entry, name)
		}
		seen[name] = true
		cols = append(cols, Column{Name: name, Field: field, Type: ct})
	}
	return cols, nil
}

// decodeRecord parses data as a JSON object and returns one value per
// column, ready to pass to pgx (nil for a missing field or null).
func decodeRecord(cols []Column, data []byte) ([]any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return nil, fmt.Errorf("%w: not a JSON object: %v", ErrBadRecord, err)
	}
	if obj == nil {
		return nil, fmt.Errorf("%w: not a JSON object: null", ErrBadRecord)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after the JSON object", ErrBadRecord)
	}
	vals := make([]any, len(cols))
	for i, c := range cols {
		raw, ok := lookup(obj, c.Field)
		if !ok || raw == nil {
			continue
		}
		v, err := convert(c.Type, raw)
		if err != nil {
			return nil, fmt.Errorf("%w: field %q: %v", ErrBadRecord, c.Field, err)
		}
		vals[i] = v
	}
	return vals, nil
}

func lookup(obj map[string]any, path string) (any, bool) {
	if v, ok := obj[path]; ok {
		return v, true
	}
	var cur any = obj
	for _, part := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func convert(t ColumnType, v any) (any, error) {
	switch t {
	case Bigint, Integer:
		n, ok := v.(json.Number)
		if !ok {
			return nil, fmt.Errorf("want an integer, got %s", kind(v))
		}
		i, err := n.Int64()
		if err != nil {
			return nil, fmt.Errorf("want an integer, got %s", n)
		}
		if t == Integer && (i < math.MinInt32 || i > math.MaxInt32) {
			return nil, fmt.Errorf("%d out of integer range", i)
		}
		return i, nil
	case Double:
		n, ok := v.(json.Number)
		if !ok {
			return nil, fmt.Errorf("want a number, got %s", kind(v))
		}
		f, err := n.Float64()
		if err != nil {
			return nil, fmt.Errorf("want a number: %v", err)
		}
		return f, nil
	case Numeric:
		var s string
		switch x := v.(type) {
		case json.Number:
			s = x.String()
		case string:
			s = x
		default:
			return nil, fmt.Errorf("want a number, got %s", kind(v))
		}
		var n pgtype.Numeric
		if err := n.Scan(s); err != nil {
			return nil, fmt.Errorf("want a number, got %q", s)
		}
		return n, nil
	case Text:
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("want a string, got %s", kind(v))
		}
		if strings.ContainsRune(s, 0) {
			return nil, errors.New("text cannot hold NUL characters")
		}
		return s, nil
	case Boolean:
		b, ok := v.(bool)
		if !ok {
			return nil, fmt.Errorf("want true or false, got %s", kind(v))
		}
		return b, nil
	case Timestamptz:
		switch x := v.(type) {
		case string:
			ts, err := time.Parse(time.RFC3339Nano, x)
			if err != nil {
				return nil, fmt.Errorf("want an RFC 3339 time: %v", err)
			}
			return ts, nil
		case json.Number:
			f, err := x.Float64()
			if err != nil || math.IsInf(f, 0) || math.Abs(f) > 1e13 {
				return nil, fmt.Errorf("want Unix seconds, got %s", x)
			}
			sec, frac := math.Modf(f)
			return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
		default:
			return nil, fmt.Errorf("want a time, got %s", kind(v))
		}
	case JSONB:
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		return json.RawMessage(b), nil
	case UUID:
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("want a UUID string, got %s", kind(v))
		}
		var u pgtype.UUID
		if err := u.Scan(s); err != nil {
			return nil, fmt.Errorf("want a UUID: %v", err)
		}
		return u, nil
	}
	return nil, fmt.Errorf("unsupported type %q", t)
}

func kind(v any) string {
	switch v.(type) {
	case json.Number:
		return "a number"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	}
	return fmt.Sprintf("%T", v)
}
