package awserr

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"

	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/stretchr/testify/require"
)

func TestClassification(t *testing.T) {
	sendErr := &smithy.OperationError{ServiceID: "Kinesis", OperationName: "ListShards",
		Err: &smithyhttp.RequestSendError{Err: &net.OpError{Op: "dial", Err: errors.New("connection refused")}}}
	for name, tc := range map[string]struct {
		err                             error
		throttle, notFound, unreachable bool
		code                            string
	}{
		"typed throttle":   {err: &types.ProvisionedThroughputExceededException{}, throttle: true, code: ProvisionedThroughputExceed},
		"generic throttle": {err: &smithy.GenericAPIError{Code: "ThrottlingException"}, throttle: true, code: "ThrottlingException"},
		"limit exceeded":   {err: fmt.Errorf("wrapped: %w", &types.LimitExceededException{}), throttle: true, code: "LimitExceededException"},
		"kinesis missing":  {err: &types.ResourceNotFoundException{}, notFound: true, code: ResourceNotFound},
		"table missing":    {err: fmt.Errorf("a: %w", &ddbtypes.ResourceNotFoundException{}), notFound: true, code: ResourceNotFound},
		"joined":           {err: errors.Join(errors.New("x"), &types.ResourceNotFoundException{}), notFound: true, code: ResourceNotFound},
		"unreachable":      {err: sendErr, unreachable: true},
		"canceled send":    {err: &smithyhttp.RequestSendError{Err: context.Canceled}},
		"plain":            {err: errors.New("boom")},
		"nil":              {},
	} {
		t.Run(name, func(t *testing.T) {
			require.Equal(t, tc.throttle, IsThrottle(tc.err))
			require.Equal(t, tc.notFound, IsNotFound(tc.err))
			require.Equal(t, tc.unreachable, IsUnreachable(tc.err))
			code, _, ok := Code(tc.err)
			require.Equal(t, tc.code, code)
			require.Equal(t, tc.code != "", ok)
		})
	}
}

func TestCodes(t *testing.T) {
	require.True(t, IsPermanentCode("AccessDeniedException"))
	require.True(t, IsPermanentCode(ResourceNotFound))
	require.False(t, IsPermanentCode("InternalFailure"))
	require.False(t, IsPermanentCode(ProvisionedThroughputExceed))
	require.True(t, IsThrottleCode("KMSThrottlingException"))
	require.False(t, IsThrottleCode("InternalFailure"))
	require.True(t, HasCode(fmt.Errorf("x: %w", &types.ExpiredIteratorException{}), ExpiredIterator))
	require.False(t, HasCode(&types.ExpiredIteratorException{}, ResourceNotFound))
}
