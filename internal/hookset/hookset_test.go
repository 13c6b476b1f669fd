package hookset

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

type nop struct{}

type hookA interface{ A() }

type hasA struct{ called *int }

func (h hasA) A() { *h.called++ }

type noopA struct{}

func (noopA) A() {}

type unrelated struct{}

func TestResolve(t *testing.T) {
	var dst hookA = noopA{}
	if n := Resolve(any(unrelated{}), &dst); n != 0 {
		t.Fatalf("unrelated value resolved: %d", n)
	}
	if _, ok := dst.(noopA); !ok {
		t.Fatalf("dst changed without a hook: %T", dst)
	}
	calls := 0
	if n := Resolve(any(hasA{&calls}), &dst); n != 1 {
		t.Fatalf("hook not resolved: %d", n)
	}
	dst.A()
	if calls != 1 {
		t.Fatalf("resolved hook not called: %d", calls)
	}
}

func TestWarnIfNone(t *testing.T) {
	for _, tc := range []struct {
		name     string
		m        any
		resolved int
		warn     bool
	}{
		{"nil", nil, 0, false},
		{"nop", nop{}, 0, false},
		{"nop pointer", &nop{}, 0, false},
		{"some hook", hasA{}, 1, false},
		{"no hook", unrelated{}, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			WarnIfNone[nop](slog.New(slog.NewTextHandler(&buf, nil)), "pkg", tc.m, tc.resolved)
			got := strings.Contains(buf.String(), "pkg: Config.Metrics implements no hook")
			if got != tc.warn {
				t.Fatalf("warned %v, want %v: %q", got, tc.warn, buf.String())
			}
		})
	}
}
