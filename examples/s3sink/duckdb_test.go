package main

import (
	"database/sql"
	"path/filepath"
	"testing"

	_ "github.com/duckdb/duckdb-go/v2"
	"github.com/stretchr/testify/require"
)

type lakeQuery struct {
	rowsPerPartition  map[string]int
	rows, distinctIDs int64
	errorRecords      int64
}

// queryLake runs the SQL an Athena user would over the lake copied to dir,
// in DuckDB (its engine is linked into the test through cgo): rows per Hive
// partition of the table, distinct ids, and the records in the error prefix.
func queryLake(t *testing.T, dir string) lakeQuery {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	require.NoError(t, err)
	defer db.Close()
	table := filepath.ToSlash(filepath.Join(dir, "dt=*", "hour=*", "*.parquet"))
	q := lakeQuery{rowsPerPartition: map[string]int{}}
	rs, err := db.Query(`SELECT dt, hour, count(*) FROM read_parquet(?, hive_partitioning = true, hive_types_autocast = false) GROUP BY dt, hour ORDER BY dt, hour`, table)
	require.NoError(t, err)
	for rs.Next() {
		var dt, hour string
		var n int
		require.NoError(t, rs.Scan(&dt, &hour, &n))
		q.rowsPerPartition["dt="+dt+"/hour="+hour] = n
	}
	require.NoError(t, rs.Err())
	require.NoError(t, rs.Close())
	require.NoError(t, db.QueryRow(`SELECT count(*), count(DISTINCT id) FROM read_parquet(?, hive_partitioning = true)`, table).Scan(&q.rows, &q.distinctIDs))
	errs := filepath.ToSlash(filepath.Join(dir, "format-conversion-failed", "**", "*.json"))
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM read_json(?, format = 'newline_delimited')`, errs).Scan(&q.errorRecords))
	return q
}
