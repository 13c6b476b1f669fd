package main

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/stretchr/testify/require"
)

func TestParseColumns(t *testing.T) {
	cols, err := ParseColumns("id:bigint, name:text,ts:timestamptz,user_name=user.name:string,amount:NUMERIC")
	require.NoError(t, err)
	require.Equal(t, []Column{
		{Name: "id", Field: "id", Type: Bigint},
		{Name: "name", Field: "name", Type: Text},
		{Name: "ts", Field: "ts", Type: Timestamptz},
		{Name: "user_name", Field: "user.name", Type: Text},
		{Name: "amount", Field: "amount", Type: Numeric},
	}, cols)

	for _, bad := range []string{
		"", "id", "id:varchar(3)", "Id:text", "a-b:text", "id:bigint,id:text",
		"shard_id:text", "sequence_number:numeric", `x";drop table t;--:text`,
	} {
		_, err := ParseColumns(bad)
		require.Error(t, err, bad)
	}
}

func TestDecodeRecord(t *testing.T) {
	cols, err := ParseColumns("id:bigint,n:int,f:double,d:numeric,s:text,b:bool,ts:timestamptz,j:jsonb,u:uuid,nested=a.b:text")
	require.NoError(t, err)
	vals, err := decodeRecord(cols, []byte(`{"id":9007199254740993,"n":-5,"f":1.5,"d":"12345678901234567890.5","s":"hé",
		"b":true,"ts":"2026-11-25T12:00:00.5Z","j":{"x":[1,2]},"u":"6ba7b810-9dad-11d1-80b4-00c04fd430c8","a":{"b":"deep"}}`))
	require.NoError(t, err)
	require.Equal(t, int64(9007199254740993), vals[0], "integers keep full precision")
	require.Equal(t, int64(-5), vals[1])
	require.Equal(t, 1.5, vals[2])
	require.True(t, vals[3].(pgtype.Numeric).Valid)
	require.Equal(t, "hé", vals[4])
	require.Equal(t, true, vals[5])
	require.Equal(t, time.Date(2026, 11, 25, 12, 0, 0, 5e8, time.UTC), vals[6])
	require.JSONEq(t, `{"x":[1,2]}`, string(vals[7].(json.RawMessage)))
	require.True(t, vals[8].(pgtype.UUID).Valid)
	require.Equal(t, "deep", vals[9])

	vals, err = decodeRecord(cols, []byte(`{"id":null,"ts":1764072000.25}`))
	require.NoError(t, err)
	require.Nil(t, vals[0], "null is NULL")
	require.Nil(t, vals[4], "missing is NULL")
	require.Equal(t, time.Date(2025, 11, 25, 12, 0, 0, 25e7, time.UTC), vals[6])

	for _, bad := range []string{
		`not json`, `[1,2]`, `null`, `"str"`, `{"id":1} trailing`, `{"id":"1"}`, `{"id":1.5}`,
		`{"n":3000000000}`, `{"f":"x"}`, `{"d":"abc"}`, `{"s":5}`, `{"s":"nul\u0000"}`, `{"b":"true"}`,
		`{"ts":"yesterday"}`, `{"ts":true}`, `{"u":"not-a-uuid"}`,
	} {
		_, err := decodeRecord(cols, []byte(bad))
		require.ErrorIs(t, err, ErrBadRecord, bad)
	}
}
