package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestQuickstartInMemory(t *testing.T) {
	var out bytes.Buffer
	o := options{target: "memory", stream: "qs", shards: 4, app: "qs", records: 5000, workers: 3, timeout: time.Minute, idle: 200 * time.Millisecond}
	lost, err := run(context.Background(), o, &out)
	require.NoError(t, err)
	require.Zero(t, lost)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	last := lines[len(lines)-1]
	require.Regexp(t, regexp.MustCompile(`^produced=5000 consumed=\d+ unique=5000 lost=0 duplicates=\d+ elapsed=\S+$`), last)
}
