package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseKeySpec(t *testing.T) {
	for in, want := range map[string]KeySpec{
		"":          {Mode: KeyRandom},
		"random":    {Mode: KeyRandom},
		"fixed:a:b": {Mode: KeyFixed, Fixed: "a:b"},
		"csv:3":     {Mode: KeyCSVColumn, Column: 3},
	} {
		got, err := ParseKeySpec(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, bad := range []string{"fixed:", "fixed:" + strings.Repeat("k", 257), "csv:0", "csv:x", "hash"} {
		_, err := ParseKeySpec(bad)
		require.Error(t, err, bad)
	}
}

func TestFormat(t *testing.T) {
	tests := []struct {
		name    string
		f       Formatter
		line    string
		key     string // "" means: any non-empty key
		data    string
		badLine bool
	}{
		{name: "raw random", line: "hello, world", data: "hello, world"},
		{name: "raw fixed", f: Formatter{Key: KeySpec{Mode: KeyFixed, Fixed: "k"}}, line: `a,"b`, key: "k", data: `a,"b`},
		{name: "csv key", f: Formatter{Key: KeySpec{Mode: KeyCSVColumn, Column: 2}}, line: `1,"x,y",3`, key: "x,y", data: `1,"x,y",3`},
		{name: "tab json", f: Formatter{Delimiter: '\t', CSVFields: []string{"a", "b"}}, line: "1\t\"q\"", data: `{"a":"1","b":"q"}`},
		{name: "json escapes", f: Formatter{CSVFields: []string{"a\"", "b"}}, line: `<x>,\`, data: `{"a\"":"\u003cx\u003e","b":"\\"}`},
		{name: "missing key column", f: Formatter{Key: KeySpec{Mode: KeyCSVColumn, Column: 3}}, line: "a,b", badLine: true},
		{name: "bare quote", f: Formatter{CSVFields: []string{"a", "b"}}, line: `a"b,c`, badLine: true},
		{name: "too large", line: strings.Repeat("x", MaxRecordBytes), badLine: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, tc.f.Validate())
			key, data, err := tc.f.Format([]byte(tc.line))
			if tc.badLine {
				require.ErrorIs(t, err, ErrMalformed)
				return
			}
			require.NoError(t, err)
			if tc.key == "" {
				require.NotEmpty(t, key)
			} else {
				require.Equal(t, tc.key, key)
			}
			require.Equal(t, tc.data, string(data))
		})
	}
}
