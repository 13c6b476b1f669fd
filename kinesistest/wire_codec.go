package kinesistest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"time"

	"github.com/aws/smithy-go/middleware"
)

// The Kinesis awsJson1.1 wire format maps one to one onto the SDK's Go
// shapes: every JSON member name is the Go field name, timestamps are epoch
// seconds (a JSON number, fractional for milliseconds), blobs are base64
// strings, enums are their string values and absent members are omitted. The
// codec below walks the SDK structs by reflection so that every member of
// every operation is carried without a hand-maintained mirror of each shape.

var (
	timeType     = reflect.TypeFor[time.Time]()
	bytesType    = reflect.TypeFor[[]byte]()
	metadataType = reflect.TypeFor[middleware.Metadata]()
)

// marshalShape encodes an SDK shape (pointer to struct) as awsJson1.1.
func marshalShape(v any) ([]byte, error) {
	tree, ok, err := shapeTree(reflect.ValueOf(v))
	if err != nil {
		return nil, err
	}
	if !ok {
		return []byte("{}"), nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(tree); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// shapeTree converts v into values encoding/json writes in wire form. ok is
// false when v is absent (nil pointer, slice or map) and must be omitted.
func shapeTree(v reflect.Value) (tree any, ok bool, err error) {
	switch v.Kind() {
	case reflect.Invalid:
		return nil, false, nil
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil, false, nil
		}
		return shapeTree(v.Elem())
	}
	switch v.Type() {
	case timeType:
		return epochSeconds(v.Interface().(time.Time)), true, nil
	case bytesType:
		if v.IsNil() {
			return nil, false, nil
		}
		return base64.StdEncoding.EncodeToString(v.Bytes()), true, nil
	}
	switch v.Kind() {
	case reflect.Struct:
		obj := make(map[string]any, v.NumField())
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() || f.Type == metadataType {
				continue
			}
			mv, ok, err := shapeTree(v.Field(i))
			if err != nil {
				return nil, false, fmt.Errorf("%s: %w", f.Name, err)
			}
			if ok {
				obj[f.Name] = mv
			}
		}
		return obj, true, nil
	case reflect.Slice:
		if v.IsNil() {
			return nil, false, nil
		}
		arr := make([]any, 0, v.Len())
		for i := 0; i < v.Len(); i++ {
			ev, ok, err := shapeTree(v.Index(i))
			if err != nil {
				return nil, false, err
			}
			if !ok {
				ev = nil // sparse lists do not occur in Kinesis; keep positions anyway
			}
			arr = append(arr, ev)
		}
		return arr, true, nil
	case reflect.Map:
		if v.IsNil() {
			return nil, false, nil
		}
		if v.Type().Key().Kind() != reflect.String {
			return nil, false, fmt.Errorf("unsupported map key type %s", v.Type().Key())
		}
		obj := make(map[string]any, v.Len())
		it := v.MapRange()
		for it.Next() {
			ev, ok, err := shapeTree(it.Value())
			if err != nil {
				return nil, false, err
			}
			if ok {
				obj[it.Key().String()] = ev
			}
		}
		return obj, true, nil
	case reflect.String:
		return v.String(), true, nil
	case reflect.Bool:
		return v.Bool(), true, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return json.Number(strconv.FormatInt(v.Int(), 10)), true, nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return json.Number(strconv.FormatUint(v.Uint(), 10)), true, nil
	case reflect.Float32, reflect.Float64:
		f := v.Float()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, false, fmt.Errorf("non-finite number %v", f)
		}
		return json.Number(strconv.FormatFloat(f, 'g', -1, 64)), true, nil
	}
	return nil, false, fmt.Errorf("unsupported type %s", v.Type())
}

// epochSeconds renders t as the awsJson epoch-seconds number with millisecond
// precision, the precision Kinesis itself uses.
func epochSeconds(t time.Time) json.Number {
	ms := t.UnixMilli()
	sec, frac := ms/1000, ms%1000
	if frac < 0 {
		sec, frac = sec-1, frac+1000
	}
	if frac == 0 {
		return json.Number(strconv.FormatInt(sec, 10))
	}
	return json.Number(fmt.Sprintf("%d.%03d", sec, frac))
}

// parseEpochSeconds is the inverse of epochSeconds; it rounds to the
// millisecond so a float written by a client decodes to the instant it meant.
func parseEpochSeconds(n json.Number) (time.Time, error) {
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return time.Time{}, fmt.Errorf("invalid epoch timestamp %q", string(n))
	}
	return time.UnixMilli(int64(math.Round(f * 1000))).UTC(), nil
}

// unmarshalShape decodes an awsJson1.1 document into the SDK shape v (a
// pointer to struct). Unknown members are ignored, as the service does for
// members newer than the caller's model.
func unmarshalShape(data []byte, v any) error {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("trailing data after JSON document")
	}
	if _, ok := tree.(map[string]any); !ok {
		return fmt.Errorf("request body is not a JSON object")
	}
	return assignShape(reflect.ValueOf(v).Elem(), tree, "")
}

func assignShape(dst reflect.Value, src any, path string) error {
	if src == nil {
		return nil // JSON null: leave the member absent
	}
	mismatch := func() error {
		return fmt.Errorf("%s: cannot use JSON %T as %s", displayPath(path), src, dst.Type())
	}
	if dst.Kind() == reflect.Pointer {
		elem := reflect.New(dst.Type().Elem())
		if err := assignShape(elem.Elem(), src, path); err != nil {
			return err
		}
		dst.Set(elem)
		return nil
	}
	switch dst.Type() {
	case timeType:
		n, ok := src.(json.Number)
		if !ok {
			return mismatch()
		}
		t, err := parseEpochSeconds(n)
		if err != nil {
			return fmt.Errorf("%s: %w", displayPath(path), err)
		}
		dst.Set(reflect.ValueOf(t))
		return nil
	case bytesType:
		s, ok := src.(string)
		if !ok {
			return mismatch()
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return fmt.Errorf("%s: invalid base64: %w", displayPath(path), err)
		}
		dst.SetBytes(b)
		return nil
	}
	switch dst.Kind() {
	case reflect.Struct:
		obj, ok := src.(map[string]any)
		if !ok {
			return mismatch()
		}
		t := dst.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() || f.Type == metadataType {
				continue
			}
			if mv, ok := obj[f.Name]; ok {
				if err := assignShape(dst.Field(i), mv, path+"."+f.Name); err != nil {
					return err
				}
			}
		}
	case reflect.Slice:
		arr, ok := src.([]any)
		if !ok {
			return mismatch()
		}
		s := reflect.MakeSlice(dst.Type(), len(arr), len(arr))
		for i, ev := range arr {
			if err := assignShape(s.Index(i), ev, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		dst.Set(s)
	case reflect.Map:
		obj, ok := src.(map[string]any)
		if !ok || dst.Type().Key().Kind() != reflect.String {
			return mismatch()
		}
		m := reflect.MakeMapWithSize(dst.Type(), len(obj))
		for k, ev := range obj {
			val := reflect.New(dst.Type().Elem()).Elem()
			if err := assignShape(val, ev, path+"."+k); err != nil {
				return err
			}
			m.SetMapIndex(reflect.ValueOf(k).Convert(dst.Type().Key()), val)
		}
		dst.Set(m)
	case reflect.String:
		s, ok := src.(string)
		if !ok {
			return mismatch()
		}
		dst.SetString(s)
	case reflect.Bool:
		b, ok := src.(bool)
		if !ok {
			return mismatch()
		}
		dst.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := src.(json.Number)
		if !ok {
			return mismatch()
		}
		i, err := strconv.ParseInt(string(n), 10, dst.Type().Bits())
		if err != nil {
			return fmt.Errorf("%s: %w", displayPath(path), err)
		}
		dst.SetInt(i)
	case reflect.Float32, reflect.Float64:
		n, ok := src.(json.Number)
		if !ok {
			return mismatch()
		}
		f, err := strconv.ParseFloat(string(n), dst.Type().Bits())
		if err != nil {
			return fmt.Errorf("%s: %w", displayPath(path), err)
		}
		dst.SetFloat(f)
	default:
		return fmt.Errorf("%s: unsupported type %s", displayPath(path), dst.Type())
	}
	return nil
}

func displayPath(path string) string {
	if path == "" {
		return "request"
	}
	return path[1:]
}
