package producer

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

type ptrHook struct{}

func (*ptrHook) KinesisRecordPut(string, int, int, int) {}

// A Metrics that implements no hook is almost always a mistake (a wrapper
// embedding the interface, hooks with pointer receivers passed by value):
// it is warned about once, at construction; nil and NopMetrics are not.
func TestMetricsWithNoHookWarns(t *testing.T) {
	for _, c := range []struct {
		name string
		m    Metrics
		warn bool
	}{
		{"nil", nil, false},
		{"NopMetrics", NopMetrics{}, false},
		{"*NopMetrics", &NopMetrics{}, false},
		{"pointer", &ptrHook{}, false},
		{"value with pointer-receiver hooks", ptrHook{}, true},
		{"wrapper embedding the interface", struct{ Metrics }{&ptrHook{}}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var b bytes.Buffer
			newMetricHooks(c.m, slog.New(slog.NewTextHandler(&b, nil)))
			if !c.warn {
				require.Empty(t, b.String())
				return
			}
			require.Equal(t, 1, strings.Count(b.String(), "level=WARN"), b.String())
			require.Contains(t, b.String(), "implements no hook")
		})
	}
}
