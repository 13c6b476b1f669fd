package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
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
// shutdown; the checks hold whatever that was.
func TestRunInMemory(t *testing.T) {
	out := t.TempDir()
	o := options{target: "memory", stream: "events", app: "s3sink", bucket: bucket, errorPrefix: DefaultErrorPrefix,
		partitioning: "hive", schema: "id:bigint,name:string,ts:timestamp", bufferMiB: 128, bufferInterval: DefaultBufferInterval,
		initialPos: "trim_horizon", demo: 500, shards: 2, progress: time.Hour, idleTimeReads: 200 * time.Millisecond, failoverTime: time.Second, out: out}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	require.NoError(t, run(ctx, o, quietLogger()))

	ids := map[int64]bool{}
	bad := 0
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
	require.NotEmpty(t, ids)
	require.LessOrEqual(t, len(ids)+bad, 500)
	t.Logf("%d rows, %d bad records", len(ids), bad)
}
