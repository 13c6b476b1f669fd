// Package promexport is a small Prometheus exporter written on the
// standard library, for the examples in the root module (quickstart, load),
// which cannot depend on prometheus/client_golang: the root module keeps
// its dependencies few. It serves the same metrics as metrics/prommetrics,
// under the same names, labels and buckets, because both build from one
// table, internal/metricnames. A service of your own should use
// metrics/prommetrics (or another adapter) instead.
//
//	reg := promexport.New()
//	p, _ := producer.New(kc, "orders", producer.Config{Metrics: reg.Producer("orders")})
//	c, _ := consumer.New(kc, store, f, consumer.Config{..., Metrics: reg.Consumer("orders")})
//	http.Handle("/metrics", reg)
package promexport

import (
	"bufio"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	mn "github.com/shardflow/shardflow/internal/metricnames"
)

// Registry holds the metric families and serves them in the Prometheus
// text exposition format (version 0.0.4) as an http.Handler.
type Registry struct {
	mu       sync.Mutex
	families map[string]*family // by full name
}

// New returns an empty registry.
func New() *Registry { return &Registry{families: make(map[string]*family)} }

// family is one metric and its series, by label values.
type family struct {
	def    mn.Def
	mu     sync.Mutex
	series map[string]*series // key: label values joined by \xff
}

type series struct {
	labels []string
	value  float64  // counter or gauge
	counts []uint64 // histogram: per bucket (not cumulative)
	sum    float64
	count  uint64
}

func (r *Registry) family(d mn.Def) *family {
	r.mu.Lock()
	defer r.mu.Unlock()
	name := d.FullName()
	if f, ok := r.families[name]; ok {
		return f
	}
	f := &family{def: d, series: make(map[string]*series)}
	r.families[name] = f
	return f
}

// get returns the series of labels (f.mu held).
func (f *family) get(labels []string) *series {
	key := strings.Join(labels, "\xff")
	s, ok := f.series[key]
	if !ok {
		s = &series{labels: slices.Clone(labels)}
		if f.def.Kind == mn.Histogram {
			s.counts = make([]uint64, len(f.def.Buckets))
		}
		f.series[key] = s
	}
	return s
}

func (f *family) add(v float64, labels ...string) {
	f.mu.Lock()
	f.get(labels).value += v
	f.mu.Unlock()
}

func (f *family) set(v float64, labels ...string) {
	f.mu.Lock()
	f.get(labels).value = v
	f.mu.Unlock()
}

func (f *family) observe(v float64, labels ...string) {
	f.mu.Lock()
	s := f.get(labels)
	if i, _ := slices.BinarySearch(f.def.Buckets, v); i < len(s.counts) { // the first bucket whose bound is >= v
		s.counts[i]++
	}
	s.sum += v
	s.count++
	f.mu.Unlock()
}

func (f *family) remove(labels ...string) {
	f.mu.Lock()
	delete(f.series, strings.Join(labels, "\xff"))
	f.mu.Unlock()
}

// ServeHTTP writes every family that has a series.
func (r *Registry) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_ = r.Write(w)
}

// Write writes every family that has a series, sorted by name, in the
// text exposition format.
func (r *Registry) Write(w io.Writer) error {
	r.mu.Lock()
	fams := make([]*family, 0, len(r.families))
	for _, f := range r.families {
		fams = append(fams, f)
	}
	r.mu.Unlock()
	slices.SortFunc(fams, func(a, b *family) int { return strings.Compare(a.def.FullName(), b.def.FullName()) })
	bw := bufio.NewWriter(w)
	for _, f := range fams {
		f.write(bw)
	}
	return bw.Flush()
}

func (f *family) write(w *bufio.Writer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.series) == 0 {
		return
	}
	name := f.def.FullName()
	w.WriteString("# HELP " + name + " " + escapeHelp(f.def.Help) + "\n")
	w.WriteString("# TYPE " + name + " " + f.def.Kind.String() + "\n")
	keys := make([]string, 0, len(f.series))
	for k := range f.series {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		s := f.series[k]
		if f.def.Kind != mn.Histogram {
			sample(w, name, f.def.Labels, s.labels, "", "", s.value)
			continue
		}
		var cum uint64
		for i, b := range f.def.Buckets {
			cum += s.counts[i]
			sample(w, name+"_bucket", f.def.Labels, s.labels, "le", formatFloat(b), float64(cum))
		}
		sample(w, name+"_bucket", f.def.Labels, s.labels, "le", "+Inf", float64(s.count))
		sample(w, name+"_sum", f.def.Labels, s.labels, "", "", s.sum)
		sample(w, name+"_count", f.def.Labels, s.labels, "", "", float64(s.count))
	}
}

// sample writes one line; extra/extraValue is a further label (le).
func sample(w *bufio.Writer, name string, labelNames, labelValues []string, extra, extraValue string, v float64) {
	w.WriteString(name)
	if len(labelNames) > 0 || extra != "" {
		w.WriteByte('{')
		for i, l := range labelNames {
			if i > 0 {
				w.WriteByte(',')
			}
			w.WriteString(l + `="` + escapeLabel(labelValues[i]) + `"`)
		}
		if extra != "" {
			if len(labelNames) > 0 {
				w.WriteByte(',')
			}
			w.WriteString(extra + `="` + extraValue + `"`)
		}
		w.WriteByte('}')
	}
	w.WriteByte(' ')
	w.WriteString(formatFloat(v))
	w.WriteByte('\n')
}

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

func escapeHelp(s string) string  { return helpEscaper.Replace(s) }
func escapeLabel(s string) string { return labelEscaper.Replace(s) }
