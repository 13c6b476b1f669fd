//go:build integration

package aggregation

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/internal/itest"
)

// Compatibility with AWS's Node.js implementation, npm aws-kinesis-agg
// 4.2.8, in both directions, driven by testdata/kinesis_agg_check.js.
//
// Two bugs of that module shape the test; neither is ours:
//   - Its aggregator writes key tables with Object.keys(), which lists
//     integer-like strings ("0".."4294967294") first, so an aggregate mixing
//     such keys with others points records at the wrong keys. Keys sent to
//     its aggregator are therefore never integer-like (a subtest shows the
//     bug and that we decode its bytes exactly as its own decoder does).
//   - Its deaggregateSync gives a record without explicit_hash_key_index the
//     aggregate's first explicit hash key (the protobuf default index 0).
//     The script also decodes with the module's own protobuf model, where
//     presence is visible, and that is compared strictly.

type nodeRecord struct {
	PK   string  `json:"pk"`
	EHK  *string `json:"ehk"`
	Sub  *int    `json:"sub,omitempty"`
	Data []byte  `json:"data"`
}

type nodeRequest struct {
	Deaggregate [][]byte       `json:"deaggregate"`
	Aggregate   [][]nodeRecord `json:"aggregate"`
	Split       []nodeRecord   `json:"split"`
}

type nodeResponse struct {
	Deaggregated []struct {
		Records []nodeRecord `json:"records"`
		Raw     []nodeRecord `json:"raw"`
		Error   *string      `json:"error"`
	} `json:"deaggregated"`
	Aggregated []struct {
		Data         []byte       `json:"data"`
		PartitionKey string       `json:"partitionKey"`
		Raw          []nodeRecord `json:"raw"`
	} `json:"aggregated"`
	Split [][]byte `json:"split"`
}

func runNode(t *testing.T, req nodeRequest) nodeResponse {
	t.Helper()
	modules := itest.NodeModules(t)
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("node is not installed under CI")
		}
		t.Skip("node not installed")
	}
	in, err := json.Marshal(req)
	require.NoError(t, err)
	cmd := exec.Command(node, "testdata/kinesis_agg_check.js", modules)
	cmd.Stdin = bytes.NewReader(in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "node failed: %s", stderr.String())
	var resp nodeResponse
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &resp), "node output: %.500s", stdout.String())
	return resp
}

func toNode(recs []Record) []nodeRecord {
	out := make([]nodeRecord, len(recs))
	for i, r := range recs {
		out[i] = nodeRecord{PK: r.PartitionKey, Data: r.Data}
		if r.ExplicitHashKey != "" {
			ehk := r.ExplicitHashKey
			out[i].EHK = &ehk
		}
	}
	return out
}

func fromNode(t *testing.T, recs []nodeRecord) []Record {
	t.Helper()
	out := make([]Record, len(recs))
	for i, r := range recs {
		out[i] = Record{PartitionKey: r.PK, Data: r.Data}
		if r.EHK != nil {
			require.NotEmpty(t, *r.EHK, "record %d: node reports an empty explicit hash key", i)
			out[i].ExplicitHashKey = *r.EHK
		}
	}
	return out
}

// isArrayIndex reports whether JavaScript orders s as an integer-like key.
func isArrayIndex(s string) bool {
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return false
	}
	v, err := strconv.ParseUint(s, 10, 64)
	return err == nil && v < 1<<32-1
}

// withoutIntegerLikeKeys rewrites keys that trip the Node aggregator's
// Object.keys ordering bug.
func withoutIntegerLikeKeys(recs []Record) []Record {
	out := make([]Record, len(recs))
	for i, r := range recs {
		if isArrayIndex(r.PartitionKey) {
			r.PartitionKey = "k" + r.PartitionKey
		}
		if isArrayIndex(r.ExplicitHashKey) {
			r.ExplicitHashKey = "4294967296" + r.ExplicitHashKey // still a valid 128-bit decimal
		}
		out[i] = r
	}
	return out
}

// compatSets are the record sets sent both ways.
func compatSets() map[string][]Record {
	sets := map[string][]Record{
		"golden": {
			{PartitionKey: "a", Data: []byte("x")},
			{PartitionKey: "b", ExplicitHashKey: "123", Data: nil},
			{PartitionKey: "a", Data: []byte("yz")},
		},
		"unicode and empty data": {
			{PartitionKey: "ключ-😀", ExplicitHashKey: "340282366920938463463374607431768211455", Data: []byte{}},
			{PartitionKey: "中文字", Data: []byte("日本語")},
			{PartitionKey: "ключ-😀", Data: []byte{0, 1, 2}},
			{PartitionKey: "𝄞\u200b€", ExplicitHashKey: "340282366920938463463374607431768211455", Data: []byte{}},
		},
		"integer-like keys": {
			{PartitionKey: "user", Data: []byte("1")},
			{PartitionKey: "42", ExplicitHashKey: "0", Data: []byte("2")},
			{PartitionKey: "7", ExplicitHashKey: "99", Data: []byte("3")},
			{PartitionKey: "user", ExplicitHashKey: "340282366920938463463374607431768211455", Data: []byte("4")},
		},
	}
	for i, s := range shapes {
		if s.count > 1000 {
			s.count = 1000 // keep the JSON small; index varints still reach two bytes
		}
		sets[s.name] = genRecords(rand.New(rand.NewPCG(uint64(i), 99)), s)
	}
	return sets
}

// TestNodeDeaggregatesOurBlobs: blobs from Marshal deaggregate in
// aws-kinesis-agg (with checksum verification) to the same records.
func TestNodeDeaggregatesOurBlobs(t *testing.T) {
	sets := compatSets()
	var names []string
	var req nodeRequest
	for name, recs := range sets {
		blob, err := Marshal(recs)
		require.NoError(t, err)
		names = append(names, name)
		req.Deaggregate = append(req.Deaggregate, blob)
	}
	plain := []byte("not an aggregate")
	badSum, err := Marshal(sets["golden"])
	require.NoError(t, err)
	badSum[len(badSum)-1] ^= 1
	req.Deaggregate = append(req.Deaggregate, plain, badSum)

	resp := runNode(t, req)
	require.Len(t, resp.Deaggregated, len(names)+2)
	for i, name := range names {
		t.Run(name, func(t *testing.T) {
			want := sets[name]
			got := resp.Deaggregated[i]
			require.Nil(t, got.Error)
			// Strict: the module's own protobuf decoding of our bytes.
			requireSameRecords(t, want, fromNode(t, got.Raw))
			// deaggregateSync, allowing for its default-index quirk.
			firstEHK := ""
			for _, r := range want {
				if r.ExplicitHashKey != "" {
					firstEHK = r.ExplicitHashKey
					break
				}
			}
			require.Len(t, got.Records, len(want))
			for j, r := range got.Records {
				require.Equal(t, want[j].PartitionKey, r.PK, "record %d", j)
				require.True(t, bytes.Equal(want[j].Data, r.Data), "record %d data", j)
				require.NotNil(t, r.Sub)
				require.Equal(t, j, *r.Sub, "sub-sequence number")
				wantEHK := want[j].ExplicitHashKey
				if wantEHK == "" {
					wantEHK = firstEHK // node's quirk; "" when the table is empty
				}
				gotEHK := ""
				if r.EHK != nil {
					gotEHK = *r.EHK
				}
				require.Equal(t, wantEHK, gotEHK, "record %d explicit hash key", j)
			}
		})
	}
	t.Run("plain record passes through", func(t *testing.T) {
		got := resp.Deaggregated[len(names)]
		require.Nil(t, got.Error)
		require.Len(t, got.Records, 1)
		require.Equal(t, "outer", got.Records[0].PK)
		require.Equal(t, plain, got.Records[0].Data)
		require.Nil(t, got.Records[0].Sub)
		require.False(t, IsAggregated(plain))
	})
	t.Run("bad checksum rejected by both", func(t *testing.T) {
		got := resp.Deaggregated[len(names)+1]
		require.NotNil(t, got.Error)
		require.Contains(t, *got.Error, "checksum")
		_, err := Unmarshal(badSum)
		require.ErrorIs(t, err, ErrNotAggregated)
	})
}

// TestWeUnmarshalNodeBlobs: aggregates built by aws-kinesis-agg unmarshal
// here to the records it was given, byte-identical to what Marshal writes.
func TestWeUnmarshalNodeBlobs(t *testing.T) {
	sets := compatSets()
	var names []string
	var req nodeRequest
	for name, recs := range sets {
		if name == "large data" {
			continue // two 1 MiB records exceed one Kinesis record; see the split test
		}
		names = append(names, name)
		req.Aggregate = append(req.Aggregate, toNode(withoutIntegerLikeKeys(recs)))
	}
	// Node's integer-like key bug, sent as is.
	req.Aggregate = append(req.Aggregate, toNode(sets["integer-like keys"]))

	resp := runNode(t, req)
	require.Len(t, resp.Aggregated, len(names)+1)
	for i, name := range names {
		t.Run(name, func(t *testing.T) {
			want := withoutIntegerLikeKeys(sets[name])
			blob := resp.Aggregated[i].Data
			require.True(t, IsAggregated(blob))
			got, err := Unmarshal(blob)
			require.NoError(t, err)
			requireSameRecords(t, want, got)
			ours, err := Marshal(want)
			require.NoError(t, err)
			require.True(t, bytes.Equal(ours, blob), "Marshal output differs from aws-kinesis-agg's bytes")
		})
	}
	t.Run("node bug: integer-like keys", func(t *testing.T) {
		node := resp.Aggregated[len(names)]
		got, err := Unmarshal(node.Data)
		require.NoError(t, err)
		// We read exactly what node wrote, as its own decoder does...
		requireSameRecords(t, fromNode(t, node.Raw), got)
		// ...which is not what it was given: record 0 ("user") now carries
		// key "7" or "42" because the table was reordered.
		require.NotEqual(t, "user", got[0].PartitionKey, "aws-kinesis-agg's ordering bug seems fixed; tighten this test")
		ours, err := Marshal(sets["integer-like keys"])
		require.NoError(t, err)
		back, err := Unmarshal(ours)
		require.NoError(t, err)
		requireSameRecords(t, sets["integer-like keys"], back)
	})
}

// TestWeUnmarshalNodeSplit: more than 1 MiB of records through
// aws-kinesis-agg's aggregate(), which splits them into several aggregates.
func TestWeUnmarshalNodeSplit(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	var recs []Record
	for i := range 14 {
		rec := Record{PartitionKey: "key-" + strings.Repeat("é", i%4) + strconv.Itoa(i%5), Data: randData(r, 100<<10+i)}
		if i%3 == 0 {
			rec.ExplicitHashKey = randHashKey(r)
		}
		recs = append(recs, rec)
	}
	recs = withoutIntegerLikeKeys(recs)
	resp := runNode(t, nodeRequest{Split: toNode(recs)})
	require.GreaterOrEqual(t, len(resp.Split), 2, "expected aws-kinesis-agg to split 1.4 MiB")
	var got []Record
	for i, blob := range resp.Split {
		require.LessOrEqual(t, len(blob), 1<<20, "aggregate %d exceeds a Kinesis record", i)
		var err error
		got, err = AppendUnmarshal(got, blob)
		require.NoError(t, err, "aggregate %d", i)
	}
	requireSameRecords(t, recs, got)
}
