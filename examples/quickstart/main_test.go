package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// syncBuffer is a bytes.Buffer safe for the loggers of several workers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The quickstart's output is clean: workers started together split the
// shards without stealing, so no lease is lost, nothing is redelivered and
// nothing is logged at WARN.
func TestQuickstartInMemory(t *testing.T) {
	var out bytes.Buffer
	var logs syncBuffer
	o := options{target: "memory", stream: "qs", shards: 4, app: "qs", records: 5000, workers: 3, timeout: 10 * time.Minute, idle: 200 * time.Millisecond, logs: &logs}
	lost, err := run(context.Background(), o, &out)
	require.NoError(t, err)
	require.Zero(t, lost)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	last := lines[len(lines)-1]
	require.Regexp(t, regexp.MustCompile(`^produced=5000 consumed=5000 unique=5000 lost=0 duplicates=0 elapsed=\S+$`), last)
	require.Empty(t, logs.String(), "nothing logged at WARN or above")
}
