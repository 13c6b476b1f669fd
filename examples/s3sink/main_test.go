package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The README's in-memory command: demo records into the in-process stream,
// the sink into the in-process S3 server, the lake copied out at the end.
// What the run reached in its time is delivered whole by the graceful
// shutdown; the checks hold whatever that was. A run too short for every
// record (a slow machine) is made again, twice as long: go test -timeout
// is the only bound, and the last run must have delivered every record.
func TestRunInMemory(t *testing.T) {
	const demo, badEvery = 500, 50
	for d := 3 * time.Second; ; d *= 2 {
		ids, bad, err := runInMemory(t, d, demo)
		if errors.Is(err, context.DeadlineExceeded) {
			t.Logf("run of %v ended while producing the demo records; again, longer", d)
			continue
		}
		require.NoError(t, err)
		require.LessOrEqual(t, len(ids)+bad, demo)
		t.Logf("run of %v: %d rows, %d bad records", d, len(ids), bad)
		if len(ids)+bad == demo {
			require.Len(t, ids, demo-demo/badEvery)
			require.Equal(t, demo/badEvery, bad)
			return
		}
	}
}

// runInMemory runs the in-memory command for d and reads the lake it
// copied out: the ids of the rows (each at most once) and the number of
// records in the error prefix.
func runInMemory(t *testing.T, d time.Duration, demo int) (ids map[int64]bool, bad int, err error) {
	out := t.TempDir()
	o := options{target: "memory", stream: "events", app: "s3sink", bucket: bucket, errorPrefix: DefaultErrorPrefix,
		partitioning: "hive", schema: "id:bigint,name:string,ts:timestamp", bufferMiB: 128, bufferInterval: DefaultBufferInterval,
		initialPos: "trim_horizon", demo: demo, shards: 2, progress: time.Hour, idleTimeReads: 200 * time.Millisecond, failoverTime: time.Second, out: out}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := run(ctx, o, quietLogger()); err != nil {
		return nil, 0, err
	}

	ids = map[int64]bool{}
	require.NoError(t, filepath.WalkDir(out, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := os.ReadFile(path)
		require.NoError(t, err)
		rel, _ := filepath.Rel(out, path)
		switch {
		case strings.HasPrefix(rel, DefaultErrorPrefix):
			for _, l := range strings.Split(strings.TrimSpace(string(body)), "\n") {
				var e errorLine
				require.NoError(t, json.Unmarshal([]byte(l), &e))
				raw, _ := base64.StdEncoding.DecodeString(e.RawData)
				require.True(t, strings.HasPrefix(string(raw), "not json"), string(raw))
				bad++
			}
		default:
			require.Regexp(t, `^dt=\d{4}-\d\d-\d\d/hour=\d\d/shardId-\d+-\d+\.\d+-\d+\.\d+\.parquet$`, filepath.ToSlash(rel))
			for _, r := range readParquet(t, body) {
				id := r["id"].Int64()
				require.False(t, ids[id], "id %d twice", id)
				ids[id] = true
			}
		}
		return nil
	}))
	return ids, bad, nil
}
