package consumer_test

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/consumer"
	"github.com/shardflow/shardflow/kinesistest"
	"github.com/shardflow/shardflow/lease"
)

// namedStore is a lease store that knows its table, as lease.DynamoStore
// does.
type namedStore struct {
	lease.Store
	table string
}

func (s namedStore) Table() string { return s.table }

func TestTableNameMustMatchStore(t *testing.T) {
	srv := kinesistest.New(kinesistest.Options{})
	f := consumer.ProcessRecord(func(context.Context, string, consumer.Record) error { return nil })
	for name, tc := range map[string]struct {
		table, app, store string
		ok                bool
	}{
		"default is the application":   {app: "app", store: "app", ok: true},
		"explicit table":               {table: "leases", app: "app", store: "leases", ok: true},
		"application is not the table": {app: "app", store: "other-app"},
		"table is not the store's":     {table: "leases", app: "app", store: "app"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := consumer.New(srv, namedStore{lease.NewMemoryStore(), tc.store}, f,
				consumer.Config{ApplicationName: tc.app, TableName: tc.table, StreamName: "s"})
			if tc.ok {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, consumer.ErrInvalidConfig)
			require.ErrorContains(t, err, "TableName")
			require.ErrorContains(t, err, tc.store)
		})
	}
	// A store without a table name is not checked.
	_, err := consumer.New(srv, lease.NewMemoryStore(), f,
		consumer.Config{ApplicationName: "app", TableName: "anything", StreamName: "s"})
	require.NoError(t, err)
}

// describeOnly is a DynamoDB whose every table exists and is ACTIVE; it
// records the tables asked for.
type describeOnly struct {
	lease.DynamoDBAPI
	tables []string
}

func (d *describeOnly) DescribeTable(_ context.Context, in *dynamodb.DescribeTableInput, _ ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error) {
	d.tables = append(d.tables, aws.ToString(in.TableName))
	return &dynamodb.DescribeTableOutput{Table: &types.TableDescription{TableName: in.TableName, TableStatus: types.TableStatusActive}}, nil
}

func TestNewWithDynamoDBUsesTableName(t *testing.T) {
	srv := kinesistest.New(kinesistest.Options{})
	f := consumer.ProcessRecord(func(context.Context, string, consumer.Record) error { return nil })
	for _, tc := range []struct{ table, want string }{{"", "app"}, {"leases", "leases"}} {
		ddb := &describeOnly{}
		_, err := consumer.NewWithDynamoDB(t.Context(), srv, ddb, f,
			consumer.Config{ApplicationName: "app", TableName: tc.table, StreamName: "s"})
		require.NoError(t, err)
		require.Equal(t, []string{tc.want}, ddb.tables)
	}
}
