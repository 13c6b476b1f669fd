package lease

import (
	"context"
	"errors"
	"math"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
)

// OwnerIndexName is KCL 3.x's global secondary index on leaseOwner: hash
// key leaseOwner, range key leaseKey, keys only. It is sparse (unowned
// leases and non-lease items are not in it) and, like every GSI,
// eventually consistent.
const OwnerIndexName = "LeaseOwnerToLeaseKeyIndex"

// OwnerIndex is implemented by stores that can list a worker's leases
// without reading the whole table: DynamoStore (a Query on
// OwnerIndexName when the table has it, else a Scan) and MemoryStore.
type OwnerIndex interface {
	// ListOwned returns the keys of the leases whose leaseOwner is owner,
	// sorted, including leases being handed over to owner. The answer may
	// be stale (the index is eventually consistent): read a lease with Get
	// before acting on it; every write stays fenced by the counter.
	ListOwned(ctx context.Context, owner string) ([]string, error)
}

var (
	_ OwnerIndex = (*DynamoStore)(nil)
	_ OwnerIndex = (*MemoryStore)(nil)
)

// WithoutOwnerIndex makes NewDynamoStore neither create OwnerIndexName with
// a new table nor query it on an existing one. By default a table
// NewDynamoStore creates gets the index, as KCL 3.x's tables have it (so
// a fleet moving to KCL 3.x finds it; it costs an index write only when a
// lease changes owner), and an existing table's index is used when ACTIVE.
// An existing table without it is not altered: adding an index to a live
// table (UpdateTable) takes time and a permission the workers may not
// have; KCL 3.x adds it when it first runs.
func WithoutOwnerIndex() DynamoOption { return func(o *dynamoOptions) { o.ownerIndex = false } }

// addOwnerIndex adds OwnerIndexName, with KCL 3.x's schema, to a table
// definition.
func addOwnerIndex(in *dynamodb.CreateTableInput) {
	in.AttributeDefinitions = append(in.AttributeDefinitions, types.AttributeDefinition{
		AttributeName: aws.String(AttrLeaseOwner), AttributeType: types.ScalarAttributeTypeS,
	})
	in.GlobalSecondaryIndexes = append(in.GlobalSecondaryIndexes, types.GlobalSecondaryIndex{
		IndexName: aws.String(OwnerIndexName),
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(AttrLeaseOwner), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String(AttrLeaseKey), KeyType: types.KeyTypeRange},
		},
		Projection: &types.Projection{ProjectionType: types.ProjectionTypeKeysOnly},
	})
}

// hasOwnerIndex reports whether the table has an ACTIVE OwnerIndexName
// keyed on leaseOwner.
func hasOwnerIndex(t *types.TableDescription) bool {
	if t == nil {
		return false
	}
	for _, gsi := range t.GlobalSecondaryIndexes {
		if aws.ToString(gsi.IndexName) != OwnerIndexName || gsi.IndexStatus != types.IndexStatusActive {
			continue
		}
		for _, k := range gsi.KeySchema {
			if k.KeyType == types.KeyTypeHash && aws.ToString(k.AttributeName) == AttrLeaseOwner {
				return true
			}
		}
	}
	return false
}

// HasOwnerIndex reports whether ListOwned queries OwnerIndexName (false:
// it scans).
func (s *DynamoStore) HasOwnerIndex() bool { return s.ownerIndex.Load() }

// ListOwned implements OwnerIndex with a paginated Query on OwnerIndexName
// when the table has it (and the client implements DynamoDBQueryAPI),
// reading only the owner's keys; otherwise, or once the index turns out to
// be gone (see indexMissing), with List. The unowned leases (owner "") come
// from List too: the index is sparse, it holds no item without a
// leaseOwner, and DynamoDB rejects an empty key value.
func (s *DynamoStore) ListOwned(ctx context.Context, owner string) ([]string, error) {
	if owner != "" && s.ownerIndex.Load() {
		keys, err := s.queryOwned(ctx, owner)
		if !indexMissing(err) {
			return keys, err
		}
		s.ownerIndex.Store(false)
		s.logger().Warn("lease owner index gone: listing owned leases by scan", "index", OwnerIndexName, "err", err)
	}
	all, err := s.List(ctx)
	if err != nil {
		return nil, err
	}
	return ownedKeys(all, owner), nil
}

func (s *DynamoStore) queryOwned(ctx context.Context, owner string) ([]string, error) {
	in := &dynamodb.QueryInput{
		TableName:              aws.String(s.table),
		IndexName:              aws.String(OwnerIndexName),
		KeyConditionExpression: aws.String("#o = :o"),
		ExpressionAttributeNames: map[string]string{
			"#o": AttrLeaseOwner,
		},
		ExpressionAttributeValues: map[string]types.AttributeValue{":o": &types.AttributeValueMemberS{Value: owner}},
	}
	var keys []string
	for {
		page, err := s.query.Query(ctx, in)
		if err != nil {
			return nil, s.fail(err, "query %s", OwnerIndexName)
		}
		for _, av := range page.Items {
			// KCL 3.x's index projects keys only, so entityType shows
			// only on an index that projects more; a non-lease item
			// that slips through is caught by the Get callers make
			// before acting (OwnerIndex).
			if k := itemKey(av); k != "" && isLeaseItem(av) {
				keys = append(keys, k)
			}
		}
		if len(page.LastEvaluatedKey) == 0 {
			break
		}
		in.ExclusiveStartKey = page.LastEvaluatedKey
	}
	sort.Strings(keys)
	return keys, nil
}

// indexMissing reports whether a Query failed because the index does not
// exist: DynamoDB answers ResourceNotFoundException for a deleted index
// and, for one the table never had, ValidationException "The table does
// not have the specified index: <name>" (dynalite says the same). Other
// ValidationExceptions (a bad key value, a bad expression) say nothing
// about the index and leave it in use.
func indexMissing(err error) bool {
	var nf *types.ResourceNotFoundException
	if errors.As(err, &nf) {
		return true
	}
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "ValidationException" &&
		strings.Contains(strings.ToLower(ae.ErrorMessage()), "does not have the specified index")
}

// indexUnusable reports whether a query of the owner index failed in a
// way that retrying soon will not cure: the workers may not query it
// (AccessDeniedException: IAM policies written for KCL 2.x grant the
// table's ARN, not table/<name>/index/*, which a Query of an index needs),
// or DynamoDB rejects the request (ValidationException, the index missing
// included, see indexMissing).
func indexUnusable(err error) bool {
	var nf *types.ResourceNotFoundException
	if errors.As(err, &nf) {
		return true
	}
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.ErrorCode() {
	case "AccessDeniedException", "ValidationException":
		return true
	}
	return false
}

func ownedKeys(all []Lease, owner string) []string {
	var keys []string
	for _, l := range all {
		if l.Owner == owner {
			keys = append(keys, l.Key)
		}
	}
	return keys
}

// ListOwned implements OwnerIndex.
func (s *MemoryStore) ListOwned(ctx context.Context, owner string) ([]string, error) {
	all, err := s.List(ctx)
	if err != nil {
		return nil, err
	}
	return ownedKeys(all, owner), nil
}

// HasOwnerIndex reports true: a MemoryStore answers ListOwned as a table
// with OwnerIndexName does (without its lag), so a Coordinator on it reads
// a suspect worker's leases through it as on such a table (see
// Config.ScanScaling). A Store that wraps a MemoryStore without these
// methods has no index, as a table without OwnerIndexName.
func (s *MemoryStore) HasOwnerIndex() bool { return true }

// readUnitBytes is the size of one DynamoDB read unit: a consistent read
// of up to 4 KiB, per item for GetItem, per request (items summed) for
// Scan and Query; an eventually consistent read (a Query of a GSI) costs
// half.
const readUnitBytes = 4096

// readUnits is the read units of a consistent read of size bytes.
func readUnits(size int) float64 { return math.Ceil(float64(size) / readUnitBytes) }

// tableReadUnits is the read units of a consistent Scan of items of the
// given sizes (summed: total) and the mean of a consistent GetItem of one
// of them.
//
// It is an estimate from the leases as MarshalItem writes them (itemSize),
// erring towards ScanFixed: it leaves out the items a Scan is billed for
// that List skips (items whose entityType is not a lease, rows that do not
// parse), which would make each scan dearer and stretching pay sooner; a
// lease that MarshalItem rejects counts as a whole unit (4 KiB).
func tableReadUnits(sizes []int, total int) (scan, get float64) {
	for _, size := range sizes {
		get += readUnits(size)
	}
	if len(sizes) > 0 {
		get /= float64(len(sizes))
	}
	return readUnits(total), get
}

// itemSize is l's size as a DynamoDB item (attribute names plus values,
// as DynamoDB counts them for read units), as MarshalItem writes it.
func itemSize(l Lease) int {
	av, err := MarshalItem(l)
	if err != nil {
		return readUnitBytes // not ours to write: a unit is the worst case for a GetItem
	}
	n := 0
	for k, v := range av {
		n += len(k) + attrSize(v)
	}
	return n
}

func attrSize(v types.AttributeValue) int {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return len(v.Value)
	case *types.AttributeValueMemberN:
		return numSize(v.Value)
	case *types.AttributeValueMemberB:
		return len(v.Value)
	case *types.AttributeValueMemberSS:
		n := 0
		for _, s := range v.Value {
			n += len(s)
		}
		return n
	case *types.AttributeValueMemberNS:
		n := 0
		for _, s := range v.Value {
			n += numSize(s)
		}
		return n
	case *types.AttributeValueMemberBS:
		n := 0
		for _, b := range v.Value {
			n += len(b)
		}
		return n
	case *types.AttributeValueMemberL:
		n := 3
		for _, e := range v.Value {
			n += 1 + attrSize(e)
		}
		return n
	case *types.AttributeValueMemberM:
		n := 3
		for k, e := range v.Value {
			n += len(k) + 1 + attrSize(e)
		}
		return n
	}
	return 1 // BOOL, NULL
}

// numSize is a number's size as DynamoDB counts it: about one byte per two
// significant digits, plus one.
func numSize(v string) int { return (len(strings.TrimLeft(v, "-0"))+1)/2 + 1 }
