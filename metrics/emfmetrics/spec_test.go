package emfmetrics

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// validUnit is the Unit pattern of the specification's JSON schema.
var validUnit = regexp.MustCompile(`^(Seconds|Microseconds|Milliseconds|Bytes|Kilobytes|Megabytes|Gigabytes|Terabytes|Bits|Kilobits|Megabits|Gigabits|Terabits|Percent|Count|Bytes/Second|Kilobytes/Second|Megabytes/Second|Gigabytes/Second|Terabytes/Second|Bits/Second|Kilobits/Second|Megabits/Second|Gigabits/Second|Terabits/Second|Count/Second|None)$`)

// doc is one decoded EMF line.
type doc struct {
	Timestamp  int64
	Namespace  string
	Dimensions [][]string
	Units      map[string]string // metric name -> unit
	Root       map[string]json.RawMessage
}

// numbers decodes a metric target: a number or an array of numbers.
func numbers(raw json.RawMessage) ([]float64, error) {
	var one float64
	if err := json.Unmarshal(raw, &one); err == nil {
		return []float64{one}, nil
	}
	var many []float64
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, fmt.Errorf("not a number or an array of numbers: %s", raw)
	}
	return many, nil
}

func (d doc) values(t *testing.T, name string) []float64 {
	t.Helper()
	raw, ok := d.Root[name]
	require.True(t, ok, "no %s in %v", name, d.Root)
	v, err := numbers(raw)
	require.NoError(t, err)
	return v
}

func (d doc) str(t *testing.T, name string) string {
	t.Helper()
	var s string
	require.NoError(t, json.Unmarshal(d.Root[name], &s), name)
	return s
}

func members(m map[string]json.RawMessage) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// validate checks one log event against the Embedded Metric Format
// specification (CloudWatch User Guide, "Specification: Embedded metric
// format"):
//   - the event is one JSON object with nothing before or after it, of at
//     most 256 KB;
//   - the root has an "_aws" object with exactly Timestamp (integer
//     milliseconds since the epoch) and CloudWatchMetrics (an array of
//     MetricDirective objects);
//   - a MetricDirective has exactly Namespace (1-255 characters),
//     Dimensions (at least one DimensionSet) and Metrics (at most 100
//     MetricDefinition objects);
//   - a DimensionSet holds at most 9 dimension names, each a root member
//     with a string value;
//   - a MetricDefinition has Name (1-255 characters, naming a root member
//     that is a number or an array of at most 100 numbers) and an optional
//     Unit among CloudWatch's units, and nothing else.
func validate(line []byte) (doc, error) {
	var d doc
	if len(line) > 256*1024 {
		return d, errors.New("event larger than 256 KB")
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	if err := dec.Decode(&d.Root); err != nil {
		return d, fmt.Errorf("not a JSON object: %w", err)
	}
	if dec.More() {
		return d, errors.New("data after the JSON object")
	}
	awsRaw, ok := d.Root["_aws"]
	if !ok {
		return d, errors.New("no _aws member")
	}
	var meta map[string]json.RawMessage
	if err := json.Unmarshal(awsRaw, &meta); err != nil {
		return d, fmt.Errorf("_aws: %w", err)
	}
	if got := members(meta); !slices.Equal(got, []string{"CloudWatchMetrics", "Timestamp"}) {
		return d, fmt.Errorf("_aws members %v", got)
	}
	if err := json.Unmarshal(meta["Timestamp"], &d.Timestamp); err != nil {
		return d, fmt.Errorf("Timestamp: %w", err)
	}
	var directives []map[string]json.RawMessage
	if err := json.Unmarshal(meta["CloudWatchMetrics"], &directives); err != nil || len(directives) != 1 {
		return d, fmt.Errorf("CloudWatchMetrics: want one directive (shardflow writes one per line): %v", err)
	}
	dir := directives[0]
	if got := members(dir); !slices.Equal(got, []string{"Dimensions", "Metrics", "Namespace"}) {
		return d, fmt.Errorf("MetricDirective members %v", got)
	}
	if err := json.Unmarshal(dir["Namespace"], &d.Namespace); err != nil || d.Namespace == "" || len(d.Namespace) > 255 {
		return d, fmt.Errorf("Namespace %q: %v", d.Namespace, err)
	}
	if err := json.Unmarshal(dir["Dimensions"], &d.Dimensions); err != nil || len(d.Dimensions) == 0 {
		return d, fmt.Errorf("Dimensions: want at least one DimensionSet: %v", err)
	}
	for _, set := range d.Dimensions {
		if len(set) > 9 {
			return d, fmt.Errorf("DimensionSet %v has more than 9 keys", set)
		}
		for _, name := range set {
			var v string
			if err := json.Unmarshal(d.Root[name], &v); err != nil || v == "" {
				return d, fmt.Errorf("dimension %s is not a non-empty string member of the root", name)
			}
		}
	}
	var defs []map[string]json.RawMessage
	if err := json.Unmarshal(dir["Metrics"], &defs); err != nil || len(defs) == 0 || len(defs) > 100 {
		return d, fmt.Errorf("Metrics: want 1 to 100 definitions: %v", err)
	}
	d.Units = map[string]string{}
	for _, md := range defs {
		for k := range md {
			if k != "Name" && k != "Unit" {
				return d, fmt.Errorf("MetricDefinition member %s", k)
			}
		}
		var name, unit string
		if err := json.Unmarshal(md["Name"], &name); err != nil || name == "" || len(name) > 255 {
			return d, fmt.Errorf("metric Name %q: %v", name, err)
		}
		if raw, ok := md["Unit"]; ok {
			if err := json.Unmarshal(raw, &unit); err != nil || !validUnit.MatchString(unit) {
				return d, fmt.Errorf("metric %s: Unit %s is not a CloudWatch unit", name, raw)
			}
		}
		raw, ok := d.Root[name]
		if !ok {
			return d, fmt.Errorf("metric %s has no root member", name)
		}
		vals, err := numbers(raw)
		if err != nil || len(vals) == 0 || len(vals) > 100 {
			return d, fmt.Errorf("metric %s: want 1 to 100 numbers: %v", name, err)
		}
		d.Units[name] = unit
	}
	return d, nil
}

// parseEMF validates every line of out.
func parseEMF(t *testing.T, out []byte) []doc {
	t.Helper()
	var docs []doc
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		d, err := validate(sc.Bytes())
		require.NoError(t, err, "line %s", sc.Bytes())
		docs = append(docs, d)
	}
	require.NoError(t, sc.Err())
	return docs
}

// find returns the one document in namespace whose dimension members
// (among Operation, StreamName, ShardId, ErrorCode) are exactly dims.
func find(t *testing.T, docs []doc, namespace string, dims map[string]string) doc {
	t.Helper()
	var found []doc
	for _, d := range docs {
		if d.Namespace != namespace {
			continue
		}
		match := true
		for _, k := range []string{dimOperation, dimStream, dimShard, dimCode} {
			want, wanted := dims[k]
			raw, has := d.Root[k]
			var got string
			if has {
				_ = json.Unmarshal(raw, &got)
			}
			if wanted != has || got != want {
				match = false
				break
			}
		}
		if match {
			found = append(found, d)
		}
	}
	require.Len(t, found, 1, "documents in %s with %v", namespace, dims)
	return found[0]
}

// The specification's example passes the validator, and documents
// breaking one rule each fail it: the validator can fail.
func TestValidatorAgainstSpecExample(t *testing.T) {
	example := `{"_aws":{"Timestamp":1574109732004,"CloudWatchMetrics":[{"Namespace":"lambda-function-metrics","Dimensions":[["functionVersion"]],"Metrics":[{"Name":"time","Unit":"Milliseconds"}]}]},"functionVersion":"$LATEST","time":100,"requestId":"989ffbf8-9ace-4817-a57c-e4dd734019ee"}`
	d, err := validate([]byte(example))
	require.NoError(t, err)
	require.Equal(t, []float64{100}, d.values(t, "time"))
	require.Equal(t, int64(1574109732004), d.Timestamp)

	for name, bad := range map[string]string{
		"missing dimension member": `{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"n","Dimensions":[["fv"]],"Metrics":[{"Name":"t"}]}]},"t":1}`,
		"numeric dimension":        `{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"n","Dimensions":[["fv"]],"Metrics":[{"Name":"t"}]}]},"fv":1,"t":1}`,
		"bad unit":                 `{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"n","Dimensions":[[]],"Metrics":[{"Name":"t","Unit":"ms"}]}]},"t":1}`,
		"string metric value":      `{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"n","Dimensions":[[]],"Metrics":[{"Name":"t"}]}]},"t":"1"}`,
		"no metric value":          `{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"n","Dimensions":[[]],"Metrics":[{"Name":"t"}]}]}}`,
		"no timestamp":             `{"_aws":{"CloudWatchMetrics":[{"Namespace":"n","Dimensions":[[]],"Metrics":[{"Name":"t"}]}]},"t":1}`,
		"float timestamp":          `{"_aws":{"Timestamp":1.5,"CloudWatchMetrics":[{"Namespace":"n","Dimensions":[[]],"Metrics":[{"Name":"t"}]}]},"t":1}`,
		"empty namespace":          `{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"","Dimensions":[[]],"Metrics":[{"Name":"t"}]}]},"t":1}`,
		"no dimension set":         `{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"n","Dimensions":[],"Metrics":[{"Name":"t"}]}]},"t":1}`,
		"extra directive member":   `{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"n","Dimensions":[[]],"Metrics":[{"Name":"t"}],"X":1}]},"t":1}`,
		"ten dimensions":           `{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"n","Dimensions":[["a","b","c","d","e","f","g","h","i","j"]],"Metrics":[{"Name":"t"}]}]},"a":"1","b":"1","c":"1","d":"1","e":"1","f":"1","g":"1","h":"1","i":"1","j":"1","t":1}`,
		"trailing data":            `{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"n","Dimensions":[[]],"Metrics":[{"Name":"t"}]}]},"t":1} {}`,
	} {
		_, err := validate([]byte(bad))
		require.Error(t, err, name)
	}
}
