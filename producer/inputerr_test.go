package producer

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/kinesistest"
)

// Bad input is reported with its sentinel and with what was wrong: the
// size over the limit, the offending key.
func TestPutValidationSaysWhy(t *testing.T) {
	srv, stream := newFake(t, 1, kinesistest.Options{})
	p := newProducer(t, srv, stream, fastConfig())
	for _, tc := range []struct {
		rec  Record
		want error
		msg  string
	}{
		{Record{PartitionKey: strings.Repeat("k", 300)}, ErrPartitionKeyTooLong, "partition key is 300 UTF-16 code units, over 256"},
		{Record{PartitionKey: strings.Repeat("😀", 129)}, ErrPartitionKeyTooLong, "partition key is 258 UTF-16 code units"},
		{Record{PartitionKey: "key", Data: make([]byte, MaxRecordSize)}, ErrRecordTooLarge,
			"record is 1048579 bytes (data 1048576 plus partition key 3), over 1048576"},
		{Record{PartitionKey: "k", ExplicitHashKey: "007"}, ErrInvalidExplicitHashKey, `explicit hash key "007" is not`},
		{Record{PartitionKey: "ab\xffc"}, ErrPartitionKeyNotUTF8, "partition key is not valid UTF-8 (bad byte at offset 2)"},
	} {
		_, err := p.PutRecord(context.Background(), tc.rec, nil)
		require.ErrorIs(t, err, tc.want)
		require.ErrorIs(t, err, ErrInvalidRecord)
		require.ErrorContains(t, err, "producer: invalid record: "+tc.msg)
		for _, other := range []error{ErrEmptyPartitionKey, ErrPartitionKeyTooLong, ErrRecordTooLarge, ErrInvalidExplicitHashKey, ErrPartitionKeyNotUTF8} {
			if other != tc.want {
				require.NotErrorIs(t, err, other)
			}
		}
	}
	// A cached key's size check says the same.
	_, err := p.PutRecord(context.Background(), Record{PartitionKey: "key", Data: []byte("x")}, nil)
	require.NoError(t, err)
	_, err = p.PutRecord(context.Background(), Record{PartitionKey: "key", Data: make([]byte, MaxRecordSize)}, nil)
	require.ErrorIs(t, err, ErrRecordTooLarge)
	require.ErrorContains(t, err, "record is 1048579 bytes")
}
