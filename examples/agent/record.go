package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxRecordBytes is the Kinesis limit on one record: data plus partition key.
const MaxRecordBytes = 1 << 20

// maxKeyChars is the Kinesis limit on a partition key (Unicode characters).
const maxKeyChars = 256

// ErrMalformed marks a line that cannot be turned into a record (bad CSV, a
// missing key column, a record over the Kinesis size limit). Such lines are
// reported and counted as failed, never sent.
var ErrMalformed = errors.New("malformed line")

// LineError reports a line that was not sent, with where it came from.
type LineError struct {
	Path string
	Line int64 // 1-based line number in the file
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %v", e.Path, e.Line, e.Err) }
func (e *LineError) Unwrap() error { return e.Err }

// KeyMode says how each line's partition key is chosen.
type KeyMode int

const (
	// KeyRandom gives every line a random key, spreading lines evenly over
	// shards (the Kinesis Agent's behaviour).
	KeyRandom KeyMode = iota
	// KeyFixed sends every line with the same key: one shard, strict order.
	KeyFixed
	// KeyCSVColumn uses a CSV column as the key, keeping lines with the same
	// value on one shard in order.
	KeyCSVColumn
)

// KeySpec is a parsed -key flag.
type KeySpec struct {
	Mode   KeyMode
	Fixed  string // KeyFixed
	Column int    // KeyCSVColumn: 1-based column number
}

// ParseKeySpec parses "random", "fixed:VALUE" or "csv:N" (N counts from 1).
func ParseKeySpec(s string) (KeySpec, error) {
	switch {
	case s == "" || s == "random":
		return KeySpec{Mode: KeyRandom}, nil
	case strings.HasPrefix(s, "fixed:"):
		v := strings.TrimPrefix(s, "fixed:")
		if n := utf8.RuneCountInString(v); n < 1 || n > maxKeyChars {
			return KeySpec{}, fmt.Errorf("key %q: a fixed key has 1 to %d characters", s, maxKeyChars)
		}
		return KeySpec{Mode: KeyFixed, Fixed: v}, nil
	case strings.HasPrefix(s, "csv:"):
		n, err := strconv.Atoi(strings.TrimPrefix(s, "csv:"))
		if err != nil || n < 1 {
			return KeySpec{}, fmt.Errorf("key %q: csv:N needs a column number N >= 1", s)
		}
		return KeySpec{Mode: KeyCSVColumn, Column: n}, nil
	}
	return KeySpec{}, fmt.Errorf("key %q: want random, fixed:VALUE or csv:N", s)
}

// Formatter turns one line (without its line terminator) into a record.
type Formatter struct {
	Key KeySpec
	// CSVFields, when set, converts each CSV line to a JSON object with these
	// field names (the Kinesis Agent's CSVTOJSON). A line with a different
	// number of columns is malformed.
	CSVFields []string
	// Delimiter separates CSV columns; ',' when zero.
	Delimiter rune
}

func (f *Formatter) usesCSV() bool { return len(f.CSVFields) > 0 || f.Key.Mode == KeyCSVColumn }

// Validate checks the formatter's settings.
func (f *Formatter) Validate() error {
	if f.Delimiter == '"' || f.Delimiter == '\r' || f.Delimiter == '\n' || f.Delimiter == utf8.RuneError {
		return fmt.Errorf("csv delimiter %q is not usable", f.Delimiter)
	}
	seen := make(map[string]bool, len(f.CSVFields))
	for _, name := range f.CSVFields {
		if name == "" {
			return errors.New("csv fields: empty field name")
		}
		if seen[name] {
			return fmt.Errorf("csv fields: %q given twice", name)
		}
		seen[name] = true
	}
	if f.Key.Mode == KeyCSVColumn && len(f.CSVFields) > 0 && f.Key.Column > len(f.CSVFields) {
		return fmt.Errorf("key csv:%d: only %d csv fields are named", f.Key.Column, len(f.CSVFields))
	}
	return nil
}

// Format returns the partition key and data for line. Errors wrap
// ErrMalformed.
func (f *Formatter) Format(line []byte) (key string, data []byte, err error) {
	var cols []string
	if f.usesCSV() {
		cols, err = f.parseCSV(line)
		if err != nil {
			return "", nil, err
		}
	}
	switch f.Key.Mode {
	case KeyFixed:
		key = f.Key.Fixed
	case KeyCSVColumn:
		if f.Key.Column > len(cols) {
			return "", nil, fmt.Errorf("%w: key column %d missing (line has %d columns)", ErrMalformed, f.Key.Column, len(cols))
		}
		key = cols[f.Key.Column-1]
		if key == "" {
			return "", nil, fmt.Errorf("%w: key column %d is empty", ErrMalformed, f.Key.Column)
		}
		if utf8.RuneCountInString(key) > maxKeyChars {
			key = string([]rune(key)[:maxKeyChars])
		}
	default:
		key = strconv.FormatUint(rand.Uint64(), 16)
	}
	if len(f.CSVFields) > 0 {
		data = csvToJSON(f.CSVFields, cols)
	} else {
		data = bytes.Clone(line)
	}
	if n := len(key) + len(data); n > MaxRecordBytes {
		return "", nil, fmt.Errorf("%w: record of %d bytes is over the %d-byte Kinesis limit", ErrMalformed, n, MaxRecordBytes)
	}
	return key, data, nil
}

func (f *Formatter) parseCSV(line []byte) ([]string, error) {
	r := csv.NewReader(bytes.NewReader(line))
	if f.Delimiter != 0 {
		r.Comma = f.Delimiter
	}
	r.FieldsPerRecord = -1
	cols, err := r.Read()
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("%w: csv: %v", ErrMalformed, pe.Err)
		}
		return nil, fmt.Errorf("%w: csv: %v", ErrMalformed, err)
	}
	// A quoted field with an embedded newline cannot occur in one line; a
	// second record means a stray terminator inside the line.
	if _, err := r.Read(); err == nil {
		return nil, fmt.Errorf("%w: csv: more than one record on the line", ErrMalformed)
	}
	if len(f.CSVFields) > 0 && len(cols) != len(f.CSVFields) {
		return nil, fmt.Errorf("%w: csv: %d columns, want %d (%s)", ErrMalformed, len(cols), len(f.CSVFields), strings.Join(f.CSVFields, ","))
	}
	return cols, nil
}

// csvToJSON builds {"name":"value",...} keeping the given field order.
func csvToJSON(names, cols []string) []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, name := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(name) // strings always marshal
		v, _ := json.Marshal(cols[i])
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes()
}
