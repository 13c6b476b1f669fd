package emfmetrics

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// ErrInvalidOptions is wrapped by every configuration error.
var ErrInvalidOptions = errors.New("emfmetrics: invalid options")

// Granularity chooses the finest dimension set, as KPL's
// metrics_granularity does.
type Granularity int

const (
	// Shard (the default, as in KPL and KCL) emits per-shard metrics with
	// ShardId, and each also without it, at stream (or operation) level.
	Shard Granularity = iota
	// Stream emits no ShardId dimension: fewer custom metrics to pay for
	// on streams with many shards.
	Stream
)

// Options configures an Emitter. The zero value is valid.
type Options struct {
	// ProducerNamespace is the CloudWatch namespace of producer metrics.
	// Default DefaultProducerNamespace (KPL's). Consumer and lease metrics
	// use the application name as namespace, as KCL does.
	ProducerNamespace string
	// Granularity is Shard (default) or Stream.
	Granularity Granularity
	// Dimensions are added to every metric, like KPL's additional
	// dimensions (for example a service or host name: mind that every
	// distinct value is a distinct custom metric). At most 6; names must
	// not be one of StreamName, ShardId, ErrorCode, Operation, nor a
	// metric name.
	Dimensions map[string]string
	// Now stamps each flush. Default time.Now.
	Now func() time.Time
}

// maxSamples is the most values one metric carries in one line: the
// format's limit for a value array. Past it a uniform sample is kept
// (with the interval's minimum and maximum), so CloudWatch's average and
// percentiles stay close while SampleCount is capped; the sum metrics
// carry exact counts.
const maxSamples = 100

// maxCodes caps the distinct ErrorCode values per flush interval: Kinesis
// has a couple of dozen codes, but free-form ones from a proxy must not
// create custom metrics without bound.
const (
	maxCodes     = 64
	overflowCode = "Other"
)

// Emitter aggregates metrics in memory and writes them as CloudWatch
// Embedded Metric Format lines, one JSON object per line and per dimension
// group, on each Flush, each line in one Write call (so it can share stdout
// with the application's logs). On Lambda, ECS (awslogs) and EKS
// (CloudWatch agent or Fluent Bit) writing to stdout is enough for
// CloudWatch to extract the metrics. Safe for concurrent use.
type Emitter struct {
	w           io.Writer
	now         func() time.Time
	producerNS  string
	granularity Granularity
	extraNames  []string // sorted
	extra       map[string]string

	wmu sync.Mutex // one flush writes at a time, so lines never interleave

	mu     sync.Mutex
	groups map[groupKey]*group
	codes  map[string]struct{} // ErrorCode values this interval
}

type groupKey struct {
	namespace, operation, stream, shard, code string
}

type group struct {
	values map[def]*value
}

type value struct {
	sum      float64
	samples  []float64
	n        int // values added
	min, max float64
}

// New returns an Emitter writing to w (os.Stdout on Lambda).
func New(w io.Writer, opts Options) (*Emitter, error) {
	if w == nil {
		return nil, fmt.Errorf("%w: nil writer", ErrInvalidOptions)
	}
	if opts.ProducerNamespace == "" {
		opts.ProducerNamespace = DefaultProducerNamespace
	}
	if err := checkNamespace(opts.ProducerNamespace); err != nil {
		return nil, fmtInvalid("ProducerNamespace", err)
	}
	if opts.Granularity != Shard && opts.Granularity != Stream {
		return nil, fmt.Errorf("%w: Granularity %d is neither Shard nor Stream", ErrInvalidOptions, opts.Granularity)
	}
	if len(opts.Dimensions) > 6 {
		return nil, fmt.Errorf("%w: %d Dimensions, at most 6 (a dimension set holds 9, shardflow uses 3)", ErrInvalidOptions, len(opts.Dimensions))
	}
	e := &Emitter{
		w:           w,
		now:         opts.Now,
		producerNS:  opts.ProducerNamespace,
		granularity: opts.Granularity,
		extra:       map[string]string{},
		groups:      map[groupKey]*group{},
		codes:       map[string]struct{}{},
	}
	if e.now == nil {
		e.now = time.Now
	}
	for k, v := range opts.Dimensions {
		switch {
		case k == dimStream || k == dimShard || k == dimCode || k == dimOperation:
			return nil, fmt.Errorf("%w: Dimensions: %q is shardflow's own dimension", ErrInvalidOptions, k)
		case k == "" || len(k) > 255 || k[0] == ':':
			return nil, fmt.Errorf("%w: Dimensions: name %q must have 1 to 255 characters and not start with a colon", ErrInvalidOptions, k)
		case v == "" || len(v) > 1024:
			return nil, fmt.Errorf("%w: Dimensions: value of %q must have 1 to 1024 characters", ErrInvalidOptions, k)
		}
		e.extra[k] = v
		e.extraNames = append(e.extraNames, k)
	}
	slices.Sort(e.extraNames)
	return e, nil
}

func checkNamespace(ns string) error {
	if ns == "" || len(ns) > 255 {
		return fmt.Errorf("namespace %q must have 1 to 255 characters", ns)
	}
	return nil
}

// add records v for d in the group k.
func (e *Emitter) add(k groupKey, d def, v float64) {
	if e.granularity == Stream {
		k.shard = ""
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if k.code != "" {
		if _, ok := e.codes[k.code]; !ok {
			if len(e.codes) >= maxCodes {
				k.code = overflowCode
			} else {
				e.codes[k.code] = struct{}{}
			}
		}
	}
	g := e.groups[k]
	if g == nil {
		g = &group{values: map[def]*value{}}
		e.groups[k] = g
	}
	val := g.values[d]
	if val == nil {
		val = &value{min: v, max: v}
		g.values[d] = val
	}
	val.n++
	val.min, val.max = min(val.min, v), max(val.max, v)
	switch d.kind {
	case sum:
		val.sum += v
	case samples:
		if len(val.samples) < maxSamples {
			val.samples = append(val.samples, v)
		} else if i := rand.IntN(val.n); i < maxSamples {
			// Reservoir sampling: each value is kept with probability
			// maxSamples/n.
			val.samples[i] = v
		}
	}
}

// Flush writes one line per dimension group with what was recorded since
// the previous Flush, and starts a new interval. An interval with nothing
// recorded writes nothing.
func (e *Emitter) Flush() error {
	e.wmu.Lock()
	defer e.wmu.Unlock()
	e.mu.Lock()
	groups := e.groups
	e.groups = map[groupKey]*group{}
	clear(e.codes)
	e.mu.Unlock()
	if len(groups) == 0 {
		return nil
	}
	keys := make([]groupKey, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b groupKey) int {
		return cmp.Or(cmp.Compare(a.namespace, b.namespace), cmp.Compare(a.operation, b.operation),
			cmp.Compare(a.stream, b.stream), cmp.Compare(a.shard, b.shard), cmp.Compare(a.code, b.code))
	})
	ts := e.now().UnixMilli()
	for _, k := range keys {
		line, err := e.line(ts, k, groups[k])
		if err != nil {
			return fmt.Errorf("emfmetrics: %w", err)
		}
		// One Write per line: the application's own logs may share the
		// writer (stdout), and a small write to a pipe is not interleaved
		// with other writes, whereas one large one may be split.
		if _, err := e.w.Write(append(line, '\n')); err != nil {
			return fmt.Errorf("emfmetrics: write: %w", err)
		}
	}
	return nil
}

type metricDirective struct {
	Namespace  string             `json:"Namespace"`
	Dimensions [][]string         `json:"Dimensions"`
	Metrics    []metricDefinition `json:"Metrics"`
}

type metricDefinition struct {
	Name string `json:"Name"`
	Unit string `json:"Unit"`
}

type metadata struct {
	Timestamp         int64             `json:"Timestamp"`
	CloudWatchMetrics []metricDirective `json:"CloudWatchMetrics"`
}

// line encodes one group as an EMF document: the _aws metadata, the
// dimension values and the metric values, all members of the root.
func (e *Emitter) line(ts int64, k groupKey, g *group) ([]byte, error) {
	root := make(map[string]any, len(g.values)+len(e.extra)+5)
	for n, v := range e.extra {
		root[n] = v
	}
	for n, v := range map[string]string{dimOperation: k.operation, dimStream: k.stream, dimShard: k.shard, dimCode: k.code} {
		if v != "" {
			root[n] = v
		}
	}
	defs := make([]def, 0, len(g.values))
	for d := range g.values {
		defs = append(defs, d)
	}
	slices.SortFunc(defs, func(a, b def) int { return cmp.Compare(a.name, b.name) })
	dir := metricDirective{Namespace: k.namespace, Dimensions: dimensionSets(k, e.extraNames)}
	for _, d := range defs {
		dir.Metrics = append(dir.Metrics, metricDefinition{Name: d.name, Unit: d.unit})
		v := g.values[d]
		switch {
		case d.kind == sum:
			root[d.name] = v.sum
		case len(v.samples) == 1:
			root[d.name] = v.samples[0]
		default:
			s := v.samples
			if v.n > len(s) {
				// The sample may have dropped the extremes: keep them, so
				// Minimum and Maximum are exact.
				s[0], s[1] = v.min, v.max
			}
			root[d.name] = s
		}
	}
	root["_aws"] = metadata{Timestamp: ts, CloudWatchMetrics: []metricDirective{dir}}
	return json.Marshal(root)
}

// DefaultInterval is how often Run flushes when given no interval: KPL
// uploads its metrics once a minute.
const DefaultInterval = time.Minute

// Run flushes every interval (DefaultInterval if not positive) until ctx
// ends, then flushes once more and returns. A failed flush does not stop
// it (metrics must not take the service down); the first such error is
// returned at the end. The caller owns the goroutine running it.
func (e *Emitter) Run(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		interval = DefaultInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var first error
	for {
		select {
		case <-ctx.Done():
			return cmp.Or(first, e.Flush())
		case <-t.C:
			if err := e.Flush(); err != nil && first == nil {
				first = err
			}
		}
	}
}
