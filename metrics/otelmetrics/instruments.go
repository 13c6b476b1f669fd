package otelmetrics

import (
	"errors"
	"fmt"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// builder creates instruments from specs, keeping the first error.
type builder struct {
	m   metric.Meter
	err error
}

func newBuilder(mp metric.MeterProvider) *builder {
	return &builder{m: mp.Meter(scope)}
}

func (b *builder) keep(err error) {
	if err != nil && b.err == nil {
		b.err = err
	}
}

func (b *builder) done() error {
	if b.err != nil {
		return fmt.Errorf("otelmetrics: %w", b.err)
	}
	return nil
}

func (b *builder) counter(s spec) metric.Int64Counter {
	c, err := b.m.Int64Counter(s.name, metric.WithUnit(s.unit), metric.WithDescription(s.desc))
	b.keep(err)
	return c
}

func (b *builder) gauge(s spec) metric.Int64Gauge {
	g, err := b.m.Int64Gauge(s.name, metric.WithUnit(s.unit), metric.WithDescription(s.desc))
	b.keep(err)
	return g
}

func (b *builder) seconds(s spec) metric.Float64Histogram {
	h, err := b.m.Float64Histogram(s.name, metric.WithUnit(s.unit), metric.WithDescription(s.desc),
		metric.WithExplicitBucketBoundaries(secondsBuckets...))
	b.keep(err)
	return h
}

func (b *builder) histogram(s spec, buckets []float64) metric.Int64Histogram {
	h, err := b.m.Int64Histogram(s.name, metric.WithUnit(s.unit), metric.WithDescription(s.desc),
		metric.WithExplicitBucketBoundaries(buckets...))
	b.keep(err)
	return h
}

func (b *builder) observableSeconds(s spec) metric.Float64ObservableGauge {
	g, err := b.m.Float64ObservableGauge(s.name, metric.WithUnit(s.unit), metric.WithDescription(s.desc))
	b.keep(err)
	return g
}

// attrs is one attribute set as the option slices the instruments take.
// Passing a prepared slice to a variadic method does not allocate; a
// single option would, on every call of the put and fetch paths.
type attrs struct {
	add []metric.AddOption
	rec []metric.RecordOption
	obs []metric.ObserveOption
}

func newAttrs(kv ...attribute.KeyValue) *attrs {
	o := metric.WithAttributeSet(attribute.NewSet(kv...))
	return &attrs{add: []metric.AddOption{o}, rec: []metric.RecordOption{o}, obs: []metric.ObserveOption{o}}
}

// shardAttrs caches the attributes of each shard.
type shardAttrs struct {
	base attribute.KeyValue
	m    sync.Map // shard id -> *attrs
}

func (a *shardAttrs) of(shardID string) *attrs {
	if o, ok := a.m.Load(shardID); ok {
		return o.(*attrs)
	}
	o, _ := a.m.LoadOrStore(shardID, newAttrs(a.base, keyShard.String(shardID)))
	return o.(*attrs)
}

// with is the shard's attributes plus extra ones, for the rarer calls
// (failures, error codes) that are not worth caching.
func (a *shardAttrs) with(shardID string, extra ...attribute.KeyValue) *attrs {
	return newAttrs(append([]attribute.KeyValue{a.base, keyShard.String(shardID)}, extra...)...)
}

// maxCodes caps the distinct error.type values per adapter: Kinesis has a
// couple of dozen error codes, but a proxy or a future API returning
// free-form codes must not grow the series count without bound.
const maxCodes = 64

// overflowCode replaces codes beyond maxCodes.
const overflowCode = "other"

// codeSet admits the first maxCodes distinct codes.
type codeSet struct {
	mu   sync.Mutex
	seen map[string]struct{}
}

func (s *codeSet) label(code string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.seen[code]; ok {
		return code
	}
	if len(s.seen) >= maxCodes {
		return overflowCode
	}
	if s.seen == nil {
		s.seen = make(map[string]struct{})
	}
	s.seen[code] = struct{}{}
	return code
}

var errNilProvider = errors.New("otelmetrics: nil MeterProvider")
