package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// discardSink confirms every record at once.
type discardSink struct{}

func (discardSink) Put(_ context.Context, _ string, _ []byte, done func(error)) error {
	done(nil)
	return nil
}
func (discardSink) Flush(context.Context) error { return nil }

// BenchmarkTail measures the agent's own cost per line (read, format,
// track, confirm), raw and with CSV to JSON. ns/op is per line.
func BenchmarkTail(b *testing.B) {
	for _, tc := range []struct {
		name   string
		format Formatter
		line   string
	}{
		{"raw", Formatter{}, strings.Repeat("x", 120)},
		{"csv-json", Formatter{Key: KeySpec{Mode: KeyCSVColumn, Column: 1}, CSVFields: []string{"id", "name", "msg"}}, "12345,alice," + strings.Repeat("y", 100)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			dir := b.TempDir()
			path := filepath.Join(dir, "app.log")
			f, err := os.Create(path)
			if err != nil {
				b.Fatal(err)
			}
			for i := 0; i < b.N; i++ {
				fmt.Fprintln(f, tc.line)
			}
			f.Close()
			a, err := New(Config{Files: path, Sink: discardSink{}, Format: tc.format, Logger: testLogger(nil)})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			if err := a.Poll(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if got := a.Stats().LinesSent; got != int64(b.N) {
				b.Fatalf("sent %d of %d", got, b.N)
			}
		})
	}
}
