package streamref

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/stretchr/testify/require"
)

func TestRef(t *testing.T) {
	const arn = "arn:aws:kinesis:eu-west-1:123456789012:stream/orders"
	r := Parse(arn)
	require.Equal(t, Ref{ARN: arn}, r)
	require.Equal(t, arn, r.Label())
	name, a := r.Input()
	require.Nil(t, name)
	require.Equal(t, arn, aws.ToString(a))

	r = Parse("orders")
	require.Equal(t, Ref{Name: "orders"}, r)
	name, a = r.Input()
	require.Equal(t, "orders", aws.ToString(name))
	require.Nil(t, a)

	both := Ref{Name: "orders", ARN: arn}
	require.Equal(t, "orders", both.Label())
	name, a = both.Input()
	require.Nil(t, name, "the ARN names a stream given both ways")
	require.Equal(t, arn, aws.ToString(a))
}

func TestParseARN(t *testing.T) {
	a, ok := ParseARN("arn:aws-cn:kinesis:cn-north-1:123456789012:stream/my-stream")
	require.True(t, ok)
	require.Equal(t, ARN{Partition: "aws-cn", Region: "cn-north-1", Account: "123456789012", Name: "my-stream"}, a)
	require.Equal(t, "arn:aws-cn:kinesis:cn-north-1:123456789012:stream/my-stream", a.String())
	for _, s := range []string{"", "orders", "arn:aws:kinesis:eu-west-1:123"} {
		_, ok := ParseARN(s)
		require.False(t, ok, s)
	}
	a, ok = ParseARN("arn:aws:kinesis:eu-west-1:123:stream/x/consumer/c:1")
	require.True(t, ok)
	require.Equal(t, "123", a.Account)
}
