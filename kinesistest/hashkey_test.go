package kinesistest

import (
	"context"
	"math/big"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/stretchr/testify/require"
)

func TestParseHashKey(t *testing.T) {
	max := "340282366920938463463374607431768211455"
	for _, c := range []struct {
		in                  string
		wellFormed, inRange bool
	}{
		{"0", true, true},
		{"1", true, true},
		{max, true, true},
		{"340282366920938463463374607431768211456", true, false},
		{"999999999999999999999999999999999999999", true, false},
		{"1000000000000000000000000000000000000000", false, false}, // 40 digits
		{"01", false, false},
		{"", false, false},
		{"-1", false, false},
		{"1e5", false, false},
	} {
		k, wf, ir := parseHashKey(c.in)
		require.Equal(t, c.wellFormed, wf, c.in)
		require.Equal(t, c.inRange, ir, c.in)
		if ir {
			require.Equal(t, c.in, k.String())
		}
	}
}

func TestEvenRangesTile(t *testing.T) {
	for _, n := range []int{1, 2, 3, 7, 10, 1000} {
		rs := evenRanges(u128{}, maxU128, n)
		require.Len(t, rs, n)
		require.Equal(t, u128{}, rs[0][0])
		require.Equal(t, maxU128, rs[n-1][1])
		size := new(big.Int).Div(new(big.Int).Lsh(big.NewInt(1), 128), big.NewInt(int64(n)))
		for i := 1; i < n; i++ {
			next, _ := rs[i-1][1].add(u128{0, 1})
			require.Equal(t, next, rs[i][0])
			require.Zero(t, new(big.Int).Mul(size, big.NewInt(int64(i))).Cmp(rs[i][0].big()))
		}
	}
}

func TestSequenceNumberForOrdering(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestServer(t, Options{})
	s.MustCreateStream("s", 1)
	first, err := s.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("k"), Data: []byte("1")})
	require.NoError(t, err)
	second, err := s.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("k"), Data: []byte("2"), SequenceNumberForOrdering: first.SequenceNumber})
	require.NoError(t, err)
	require.Positive(t, new(big.Int).SetBytes([]byte(*second.SequenceNumber)).Cmp(new(big.Int).SetBytes([]byte(*first.SequenceNumber))))
	_, err = s.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("k"), Data: []byte("3"), SequenceNumberForOrdering: aws.String("x1")})
	require.Error(t, err)
}
