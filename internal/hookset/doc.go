// Package hookset resolves a Config.Metrics value into the optional hook
// interfaces it implements, once at construction, for the producer, consumer
// and lease packages (franz-go's style of opt-in hooks).
//
//	n := hookset.Resolve(m, &hooks.put) + hookset.Resolve(m, &hooks.failed)
//	hookset.WarnIfNone[NopMetrics](log, "producer", m, n)
package hookset
