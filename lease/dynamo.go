package lease

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/shardflow/shardflow/checkpoint"
	"github.com/shardflow/shardflow/internal/awserr"
)

// DynamoDBAPI is the subset of *dynamodb.Client that DynamoStore uses.
type DynamoDBAPI interface {
	CreateTable(ctx context.Context, params *dynamodb.CreateTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
	DescribeTable(ctx context.Context, params *dynamodb.DescribeTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
	Scan(ctx context.Context, params *dynamodb.ScanInput, optFns ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
	GetItem(ctx context.Context, params *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, params *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, params *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(ctx context.Context, params *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
}

// DynamoDBQueryAPI is the optional part of a client: NewDynamoStore
// queries the lease-owner index (OwnerIndexName) only when its client also
// implements it, as *dynamodb.Client does. A client without it (an older
// mock or wrapper of DynamoDBAPI) works unchanged, ListOwned then scans.
// It is not part of DynamoDBAPI so that adding the index broke no
// implementation of that interface.
type DynamoDBQueryAPI interface {
	Query(ctx context.Context, params *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
}

var (
	_ DynamoDBAPI      = (*dynamodb.Client)(nil)
	_ DynamoDBQueryAPI = (*dynamodb.Client)(nil)
)

// DynamoOption configures NewDynamoStore.
type DynamoOption func(*dynamoOptions)

type dynamoOptions struct {
	createTable bool
	ownerIndex  bool
	waitTimeout time.Duration
	logger      *slog.Logger
}

// WithLogger sets where DynamoStore reports what it tolerates, such as
// lease items it cannot read (default slog.Default()).
func WithLogger(l *slog.Logger) DynamoOption {
	return func(o *dynamoOptions) {
		if l == nil {
			l = slog.New(slog.NewTextHandler(io.Discard, nil))
		}
		o.logger = l
	}
}

// WithoutTableCreation makes NewDynamoStore fail when the table is missing
// instead of creating it (for deployments that manage tables elsewhere).
func WithoutTableCreation() DynamoOption { return func(o *dynamoOptions) { o.createTable = false } }

// WithTableWaitTimeout bounds how long NewDynamoStore waits for the table to
// become ACTIVE (default 5 minutes).
func WithTableWaitTimeout(d time.Duration) DynamoOption {
	return func(o *dynamoOptions) { o.waitTimeout = d }
}

// DynamoStore is a Store on a KCL-compatible DynamoDB lease table. Every
// mutating write except Create (conditional on absence) and Delete is
// conditional on leaseCounter and leaseOwner.
type DynamoStore struct {
	client DynamoDBAPI
	// query is client as a DynamoDBQueryAPI, nil when it is not one.
	query DynamoDBQueryAPI
	table string
	log   *slog.Logger
	// ownerIndex is set while the table has an ACTIVE
	// LeaseOwnerToLeaseKeyIndex that ListOwned may query.
	ownerIndex atomic.Bool
}

var _ Store = (*DynamoStore)(nil)

// NewDynamoStore returns a store on table. It creates the table when missing
// (partition key leaseKey S, on-demand billing, as KCL does) and waits until
// it is ACTIVE. ListOwned queries the owner index only when client also
// implements DynamoDBQueryAPI (see there).
func NewDynamoStore(ctx context.Context, client DynamoDBAPI, table string, opts ...DynamoOption) (*DynamoStore, error) {
	if client == nil || table == "" {
		return nil, fmt.Errorf("%w: NewDynamoStore needs a client and a table name", ErrInvalidConfig)
	}
	o := dynamoOptions{createTable: true, ownerIndex: true, waitTimeout: 5 * time.Minute, logger: slog.Default()}
	for _, f := range opts {
		f(&o)
	}
	s := &DynamoStore{client: client, table: table, log: o.logger.With("table", table)}
	s.query, _ = client.(DynamoDBQueryAPI)
	if err := s.ensureTable(ctx, o); err != nil {
		return nil, err
	}
	if s.query == nil {
		// A new table still gets the index (KCL 3.x's tables have it);
		// only this store cannot query it.
		s.ownerIndex.Store(false)
	}
	return s, nil
}

func (s *DynamoStore) ensureTable(ctx context.Context, o dynamoOptions) error {
	out, err := s.client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(s.table)})
	var notFound *types.ResourceNotFoundException
	switch {
	case err == nil:
		if out.Table != nil && out.Table.TableStatus == types.TableStatusActive {
			s.ownerIndex.Store(o.ownerIndex && hasOwnerIndex(out.Table))
			return nil
		}
	case errors.As(err, &notFound):
		if !o.createTable {
			return s.fail(err, "describe")
		}
		in := &dynamodb.CreateTableInput{
			TableName:            aws.String(s.table),
			AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String(AttrLeaseKey), AttributeType: types.ScalarAttributeTypeS}},
			KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String(AttrLeaseKey), KeyType: types.KeyTypeHash}},
			BillingMode:          types.BillingModePayPerRequest,
		}
		if o.ownerIndex {
			addOwnerIndex(in)
		}
		_, err = s.client.CreateTable(ctx, in)
		var inUse *types.ResourceInUseException
		if err != nil && !errors.As(err, &inUse) { // in use: another worker is creating it
			return s.fail(err, "create")
		}
	default:
		return s.fail(err, "describe")
	}
	w := dynamodb.NewTableExistsWaiter(s.client, func(wo *dynamodb.TableExistsWaiterOptions) {
		wo.MinDelay, wo.MaxDelay = 100*time.Millisecond, 5*time.Second
	})
	if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(s.table)}, o.waitTimeout); err != nil {
		return s.fail(err, "wait until active")
	}
	if o.ownerIndex {
		out, err := s.client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(s.table)})
		if err != nil {
			return s.fail(err, "describe")
		}
		s.ownerIndex.Store(hasOwnerIndex(out.Table))
	}
	return nil
}

// Table returns the table name.
func (s *DynamoStore) Table() string { return s.table }

// fail wraps an error of a DynamoDB call on the table: "lease: table T:
// op: err", also matching ErrTableNotFound or ErrStoreUnreachable when it
// is one of those.
func (s *DynamoStore) fail(err error, format string, a ...any) error {
	e := &storeError{msg: fmt.Sprintf("lease: table %s: ", s.table) + fmt.Sprintf(format, a...), err: err}
	switch {
	case awserr.IsNotFound(err):
		e.kind = ErrTableNotFound
	case awserr.IsUnreachable(err):
		e.kind = ErrStoreUnreachable
	}
	return e
}

// storeError is a failed DynamoDB call; it unwraps to the SDK's error
// and, if set, kind.
type storeError struct {
	msg       string
	kind, err error
}

func (e *storeError) Error() string { return e.msg + ": " + e.err.Error() }

func (e *storeError) Unwrap() []error {
	if e.kind != nil {
		return []error{e.kind, e.err}
	}
	return []error{e.err}
}

func keyOf(key string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{AttrLeaseKey: &types.AttributeValueMemberS{Value: key}}
}

// List implements Store with a paginated, consistent Scan. An item it
// cannot read as a lease (a malformed checkpoint, a wrong attribute type,
// written by another tool) is logged at Error and left out, so one bad row
// cannot stop the fleet from balancing the others; the shard of such an
// item is not processed until the item is fixed.
func (s *DynamoStore) List(ctx context.Context) ([]Lease, error) {
	var out []Lease
	in := &dynamodb.ScanInput{TableName: aws.String(s.table), ConsistentRead: aws.Bool(true)}
	for {
		page, err := s.client.Scan(ctx, in)
		if err != nil {
			return nil, s.fail(err, "scan")
		}
		for _, av := range page.Items {
			if !isLeaseItem(av) {
				continue
			}
			l, err := UnmarshalItem(av)
			if err != nil {
				s.logger().Error("skipping unreadable lease item", "lease", itemKey(av), "err", err)
				continue
			}
			out = append(out, l)
		}
		if len(page.LastEvaluatedKey) == 0 {
			break
		}
		in.ExclusiveStartKey = page.LastEvaluatedKey
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func (s *DynamoStore) logger() *slog.Logger {
	if s.log == nil {
		return slog.Default().With("table", s.table)
	}
	return s.log
}

// itemKey returns an item's leaseKey for logs, or "" if it has none.
func itemKey(av map[string]types.AttributeValue) string {
	if k, ok := av[AttrLeaseKey].(*types.AttributeValueMemberS); ok {
		return k.Value
	}
	return ""
}

// Get implements Store with a consistent GetItem.
func (s *DynamoStore) Get(ctx context.Context, key string) (Lease, error) {
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(s.table), Key: keyOf(key), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return Lease{}, s.fail(err, "get %s", key)
	}
	if len(out.Item) == 0 || !isLeaseItem(out.Item) {
		return Lease{}, fmt.Errorf("lease: %s: %w", key, ErrNotFound)
	}
	return UnmarshalItem(out.Item)
}

// Create implements Store with a PutItem conditional on the key's absence.
func (s *DynamoStore) Create(ctx context.Context, l Lease) (bool, error) {
	av, err := MarshalItem(l)
	if err != nil {
		return false, err
	}
	_, err = s.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                aws.String(s.table),
		Item:                     av,
		ConditionExpression:      aws.String("attribute_not_exists(#k)"),
		ExpressionAttributeNames: map[string]string{"#k": AttrLeaseKey},
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return false, nil
	}
	if err != nil {
		return false, s.fail(err, "create %s", l.Key)
	}
	return true, nil
}

// update builds one conditional UpdateItem. Attribute names are added to
// names as #placeholders by the callers.
type update struct {
	set    []string
	remove []string
	// cond is ANDed to the fencing condition apply builds.
	cond   []string
	names  map[string]string
	values map[string]types.AttributeValue
}

func newUpdate(l Lease) *update {
	u := &update{
		names:  map[string]string{"#c": AttrLeaseCounter, "#o": AttrLeaseOwner},
		values: map[string]types.AttributeValue{":c": nAttr(l.Counter), ":next": nAttr(l.Counter + 1)},
	}
	u.set = append(u.set, "#c = :next")
	return u
}

func (u *update) setAttr(attr string, v types.AttributeValue) {
	ph := fmt.Sprintf("#a%d", len(u.names))
	vp := fmt.Sprintf(":v%d", len(u.values))
	u.names[ph] = attr
	u.values[vp] = v
	u.set = append(u.set, ph+" = "+vp)
}

func (u *update) removeAttr(attr string) {
	ph := fmt.Sprintf("#a%d", len(u.names))
	u.names[ph] = attr
	u.remove = append(u.remove, ph)
}

func (u *update) expression() string {
	e := "SET " + strings.Join(u.set, ", ")
	if len(u.remove) > 0 {
		e += " REMOVE " + strings.Join(u.remove, ", ")
	}
	return e
}

// apply runs the conditional update of l, whose expected result is want. A
// failed condition is re-checked with a consistent read: when the SDK
// retried a write that had landed, the item already equals want and the
// write counts as done (KCL does the same for renewals).
func (s *DynamoStore) apply(ctx context.Context, op string, l Lease, u *update, want Lease) (Lease, error) {
	counterCond := "#c = :c"
	if l.Counter == 0 {
		// An item without leaseCounter, or with a NULL one (written by
		// another tool), reads as counter 0; without this it could never
		// be taken, and its shard would silently never be processed.
		counterCond = "(#c = :c OR attribute_not_exists(#c) OR attribute_type(#c, :nullType))"
		u.values[":nullType"] = &types.AttributeValueMemberS{Value: "NULL"}
	}
	// checkpointOwner is part of the condition: a handoff request
	// (MarkHandoff) changes it, and leaseOwner, without moving the counter.
	u.names["#co"] = AttrCheckpointOwner
	coCond := " AND attribute_not_exists(#co)"
	if l.CheckpointOwner != "" {
		coCond = " AND #co = :co"
		u.values[":co"] = &types.AttributeValueMemberS{Value: l.CheckpointOwner}
	}
	for _, c := range u.cond {
		coCond += " AND " + c
	}
	cond := counterCond + " AND #o = :o" + coCond
	if l.Owner == "" {
		// Unowned: the attribute absent (as KCL and this package write
		// it), NULL or "" (as other tools may write it).
		cond = counterCond + " AND (attribute_not_exists(#o) OR attribute_type(#o, :nullType) OR #o = :noOwner)" + coCond
		u.values[":nullType"] = &types.AttributeValueMemberS{Value: "NULL"}
		u.values[":noOwner"] = &types.AttributeValueMemberS{Value: ""}
	} else {
		u.values[":o"] = &types.AttributeValueMemberS{Value: l.Owner}
	}
	out, err := s.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.table),
		Key:                       keyOf(l.Key),
		UpdateExpression:          aws.String(u.expression()),
		ConditionExpression:       aws.String(cond),
		ExpressionAttributeNames:  u.names,
		ExpressionAttributeValues: u.values,
		ReturnValues:              types.ReturnValueAllNew,
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		cur, gerr := s.Get(ctx, l.Key)
		switch {
		case errors.Is(gerr, ErrNotFound):
			return Lease{}, gerr
		case gerr != nil:
			return Lease{}, fmt.Errorf("lease: %s %s: re-read after failed condition: %w", op, l.Key, gerr)
		case landed(cur, want):
			return cur, nil
		}
		return Lease{}, &ConflictError{Op: op, Key: l.Key, Counter: l.Counter, Owner: l.Owner, Current: &cur}
	}
	if err != nil {
		return Lease{}, s.fail(err, "%s %s", op, l.Key)
	}
	return UnmarshalItem(out.Attributes)
}

// landed reports whether cur is exactly the result the write wanted.
func landed(cur, want Lease) bool {
	eqPos := func(a, b *checkpoint.Position) bool {
		return (a == nil) == (b == nil) && (a == nil || *a == *b)
	}
	return cur.Counter == want.Counter && cur.Owner == want.Owner && cur.CheckpointOwner == want.CheckpointOwner &&
		cur.Checkpoint == want.Checkpoint && eqPos(cur.PendingCheckpoint, want.PendingCheckpoint) &&
		bytes.Equal(cur.PendingCheckpointState, want.PendingCheckpointState) &&
		slices.Equal(sortedSet(cur.ChildShardIDs), sortedSet(want.ChildShardIDs))
}

// expected returns l after f and the counter moved by step, as apply's want.
func expected(l Lease, f func(*Lease), step int64) Lease {
	w := l.Clone()
	f(&w)
	w.Counter += step
	return normalize(w)
}

// Renew implements Store.
func (s *DynamoStore) Renew(ctx context.Context, l Lease) (Lease, error) {
	if l.Owner == "" {
		return Lease{}, fmt.Errorf("lease: %s: renew: no owner", l.Key)
	}
	u := newUpdate(l)
	// Written on every renewal, 0 included, as KCL 3.x does (it never
	// removes the attribute).
	u.setAttr(AttrThroughputKBps, &types.AttributeValueMemberN{Value: strconv.FormatFloat(max(l.ThroughputKBps, 0), 'f', -1, 64)})
	return s.apply(ctx, "renew", l, u, expected(l, func(*Lease) {}, 1))
}

// Take implements Store.
func (s *DynamoStore) Take(ctx context.Context, l Lease, owner string) (Lease, error) {
	if owner == "" {
		return Lease{}, fmt.Errorf("lease: %s: take: empty owner", l.Key)
	}
	u := newUpdate(l)
	u.set = append(u.set, "#o = :owner")
	u.values[":owner"] = &types.AttributeValueMemberS{Value: owner}
	if switchesOwner(l, owner) {
		// As KCL: a switch is a move from another worker; taking an
		// unowned (released or new) lease is not one, nor is completing a
		// handoff (see switchesOwner).
		u.names["#sw"] = AttrOwnerSwitchesSinceCheckpoint
		u.values[":zero"], u.values[":one"] = nAttr(0), nAttr(1)
		u.set = append(u.set, "#sw = if_not_exists(#sw, :zero) + :one")
	}
	// A fresh owner ends any handoff in progress, as KCL's take does.
	u.remove = append(u.remove, "#co")
	return s.apply(ctx, "take", l, u, expected(l, func(c *Lease) { c.Owner, c.CheckpointOwner = owner, "" }, 1))
}

// MarkHandoff implements Store. Like KCL 3.x's initiateGracefulLeaseHandoff
// it leaves leaseCounter as it is.
func (s *DynamoStore) MarkHandoff(ctx context.Context, l Lease, next string) (Lease, error) {
	if err := checkHandoff(l, next); err != nil {
		return Lease{}, err
	}
	u := &update{
		names:  map[string]string{"#c": AttrLeaseCounter, "#o": AttrLeaseOwner},
		values: map[string]types.AttributeValue{":c": nAttr(l.Counter)},
	}
	u.set = append(u.set, "#o = :next", "#co = :from")
	u.values[":next"] = &types.AttributeValueMemberS{Value: next}
	u.values[":from"] = &types.AttributeValueMemberS{Value: l.Owner}
	// As KCL 3.x: a finished lease is not handed over.
	u.names["#cp"] = AttrCheckpoint
	u.values[":shardEnd"] = &types.AttributeValueMemberS{Value: checkpoint.SentinelShardEnd}
	u.cond = append(u.cond, "(attribute_not_exists(#cp) OR #cp <> :shardEnd)")
	return s.apply(ctx, "mark handoff", l, u, expected(l, func(c *Lease) { c.Owner, c.CheckpointOwner = next, l.Owner }, 0))
}

// CancelHandoff implements Store; it leaves leaseCounter as it is.
func (s *DynamoStore) CancelHandoff(ctx context.Context, l Lease) (Lease, error) {
	if !l.InHandoff() {
		return Lease{}, fmt.Errorf("lease: %s: cancel handoff: not in handoff", l.Key)
	}
	u := &update{
		names:  map[string]string{"#c": AttrLeaseCounter, "#o": AttrLeaseOwner},
		values: map[string]types.AttributeValue{":c": nAttr(l.Counter)},
	}
	u.set = append(u.set, "#o = :back")
	u.values[":back"] = &types.AttributeValueMemberS{Value: l.CheckpointOwner}
	u.remove = append(u.remove, "#co")
	return s.apply(ctx, "cancel handoff", l, u, expected(l, func(c *Lease) { c.Owner, c.CheckpointOwner = l.CheckpointOwner, "" }, 0))
}

// Release implements Store.
func (s *DynamoStore) Release(ctx context.Context, l Lease) (Lease, error) {
	if l.Owner == "" {
		return Lease{}, fmt.Errorf("lease: %s: release: no owner", l.Key)
	}
	u := newUpdate(l)
	u.remove = append(u.remove, "#o", "#co")
	return s.apply(ctx, "release", l, u, expected(l, func(c *Lease) { c.Owner, c.CheckpointOwner = "", "" }, 1))
}

// UpdateCheckpoint implements Store.
func (s *DynamoStore) UpdateCheckpoint(ctx context.Context, l Lease, pos checkpoint.Position) (Lease, error) {
	if err := checkStorable(pos); err != nil {
		return Lease{}, fmt.Errorf("lease: %s: checkpoint: %w", l.Key, err)
	}
	u := newUpdate(l)
	u.setAttr(AttrCheckpoint, &types.AttributeValueMemberS{Value: positionAttr(pos)})
	u.setAttr(AttrCheckpointSubSequence, nAttr(pos.SubSequenceNumber))
	u.setAttr(AttrOwnerSwitchesSinceCheckpoint, nAttr(0))
	u.removeAttr(AttrPendingCheckpoint)
	u.removeAttr(AttrPendingCheckpointSubSequence)
	u.removeAttr(AttrPendingCheckpointState)
	return s.apply(ctx, "checkpoint", l, u, expected(l, func(c *Lease) {
		c.Checkpoint, c.PendingCheckpoint, c.PendingCheckpointState = pos, nil, nil
	}, 1))
}

// UpdatePendingCheckpoint implements Store.
func (s *DynamoStore) UpdatePendingCheckpoint(ctx context.Context, l Lease, pos *checkpoint.Position, state []byte) (Lease, error) {
	u := newUpdate(l)
	if pos == nil {
		u.removeAttr(AttrPendingCheckpoint)
		u.removeAttr(AttrPendingCheckpointSubSequence)
		u.removeAttr(AttrPendingCheckpointState)
	} else {
		if err := checkStorable(*pos); err != nil {
			return Lease{}, fmt.Errorf("lease: %s: pending checkpoint: %w", l.Key, err)
		}
		u.setAttr(AttrPendingCheckpoint, &types.AttributeValueMemberS{Value: positionAttr(*pos)})
		u.setAttr(AttrPendingCheckpointSubSequence, nAttr(pos.SubSequenceNumber))
		if len(state) > 0 {
			u.setAttr(AttrPendingCheckpointState, &types.AttributeValueMemberB{Value: state})
		} else {
			u.removeAttr(AttrPendingCheckpointState)
		}
	}
	return s.apply(ctx, "pending checkpoint", l, u, expected(l, func(c *Lease) {
		if pos == nil {
			c.PendingCheckpoint, c.PendingCheckpointState = nil, nil
			return
		}
		p := *pos
		c.PendingCheckpoint, c.PendingCheckpointState = &p, slices.Clone(state)
	}, 1))
}

// UpdateChildShards implements Store.
func (s *DynamoStore) UpdateChildShards(ctx context.Context, l Lease, children []string) (Lease, error) {
	u := newUpdate(l)
	if len(children) == 0 {
		u.removeAttr(AttrChildShardIDs)
	} else {
		u.setAttr(AttrChildShardIDs, &types.AttributeValueMemberSS{Value: sortedSet(children)})
	}
	return s.apply(ctx, "child shards", l, u, expected(l, func(c *Lease) { c.ChildShardIDs = slices.Clone(children) }, 1))
}

// Delete implements Store.
func (s *DynamoStore) Delete(ctx context.Context, key string) error {
	_, err := s.client.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(s.table), Key: keyOf(key)})
	if err != nil {
		return s.fail(err, "delete %s", key)
	}
	return nil
}
