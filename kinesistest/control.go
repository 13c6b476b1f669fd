package kinesistest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

const defaultShardLimit = 500

func validStreamName(name string) error {
	if name == "" || len(name) > 128 {
		return validationError(name, "streamName", "Member must have length between 1 and 128")
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-') {
			return validationError(name, "streamName", "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+")
		}
	}
	return nil
}

func (s *Server) streamARN(name string) string {
	return fmt.Sprintf("arn:aws:kinesis:%s:%s:stream/%s", s.region, s.account, name)
}

// lookupLocked finds the stream named by StreamName and/or StreamARN, as the
// SDK allows either; s.mu must be held.
func (s *Server) lookupLocked(name, arn *string) (*stream, error) {
	n := aws.ToString(name)
	if a := aws.ToString(arn); a != "" {
		prefix := s.streamARN("")
		if !strings.HasPrefix(a, "arn:") || !strings.Contains(a, ":stream/") {
			return nil, validationError(a, "streamARN", "Member must satisfy regular expression pattern: arn:aws.*:kinesis:.*:\\d{12}:stream/\\S+")
		}
		if !strings.HasPrefix(a, prefix) {
			return nil, &types.ResourceNotFoundException{Message: aws.String(fmt.Sprintf("Stream %s not found.", a))}
		}
		an := strings.TrimPrefix(a, prefix)
		if n != "" && n != an {
			return nil, errInvalidArg("StreamARN %s and StreamName %s do not refer to the same stream.", a, n)
		}
		n = an
	}
	if n == "" {
		return nil, errInvalidArg("Either StreamName or StreamARN should be provided.")
	}
	if err := validStreamName(n); err != nil {
		return nil, err
	}
	st := s.streams[n]
	if st == nil {
		return nil, errStreamNotFound(s, n)
	}
	return st, nil
}

func (s *Server) openShardTotalLocked() int {
	n := 0
	for _, st := range s.streams {
		for _, sh := range st.shards {
			if sh.open() {
				n++
			}
		}
	}
	return n
}

func (s *Server) shardLimitErr(current, additional int) error {
	return errLimit("This request would exceed the shard limit for the account %s in %s. Current shard count for the account: %d. Limit: %d. Number of additional shards that would have resulted from this request: %d. Refer to the AWS Service Limits page (http://docs.aws.amazon.com/general/latest/gr/aws_service_limits.html) for current limits and how to request higher limits.",
		s.account, s.region, current, s.shardLimit, additional)
}

// CreateStream creates an ACTIVE stream whose shards split the hash key space
// evenly. ON_DEMAND streams (and a nil ShardCount) start with 4 shards.
func (s *Server) CreateStream(ctx context.Context, in *kinesis.CreateStreamInput, _ ...func(*kinesis.Options)) (*kinesis.CreateStreamOutput, error) {
	if err := s.gate(ctx, OpCreateStream); err != nil {
		return nil, err
	}
	out, err := s.createStream(in)
	if err != nil {
		return nil, err
	}
	return out, s.afterApply(OpCreateStream)
}

func (s *Server) createStream(in *kinesis.CreateStreamInput) (*kinesis.CreateStreamOutput, error) {
	name := aws.ToString(in.StreamName)
	if err := validStreamName(name); err != nil {
		return nil, err
	}
	mode := types.StreamModeProvisioned
	if in.StreamModeDetails != nil && in.StreamModeDetails.StreamMode != "" {
		mode = in.StreamModeDetails.StreamMode
	}
	n := 4
	if in.ShardCount != nil {
		n = int(*in.ShardCount)
		if n < 1 {
			return nil, validationError(n, "shardCount", "Member must have value greater than or equal to 1")
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.streams[name] != nil {
		return nil, errInUse("Stream %s under account %s already exists.", name, s.account)
	}
	if cur := s.openShardTotalLocked(); cur+n > s.shardLimit {
		return nil, s.shardLimitErr(cur, n)
	}
	now := s.clk.Now()
	st := &stream{
		name:      name,
		arn:       s.streamARN(name),
		created:   now,
		seqEpoch:  s.nextSeqEpochLocked(now),
		retention: defaultRetention,
		mode:      mode,
	}
	for _, r := range evenRanges(u128{}, maxU128, n) {
		st.addShard(r[0], r[1], "", "", now)
	}
	s.streams[name] = st
	s.notifyLocked()
	return &kinesis.CreateStreamOutput{}, nil
}

// DeleteStream deletes a stream at once (the service passes through
// DELETING). With registered consumers it fails unless
// EnforceConsumerDeletion is set.
func (s *Server) DeleteStream(ctx context.Context, in *kinesis.DeleteStreamInput, _ ...func(*kinesis.Options)) (*kinesis.DeleteStreamOutput, error) {
	if err := s.gate(ctx, OpDeleteStream); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.lookupLocked(in.StreamName, in.StreamARN)
	if err != nil {
		return nil, err
	}
	if len(st.consumers) > 0 && !aws.ToBool(in.EnforceConsumerDeletion) {
		return nil, errInUse("Stream %s under account %s has registered consumers. Set EnforceConsumerDeletion to delete it with its consumers.", st.name, s.account)
	}
	delete(s.streams, st.name)
	s.notifyLocked()
	return &kinesis.DeleteStreamOutput{}, s.afterApply(OpDeleteStream)
}

func (s *Server) visibleShards(st *stream, now time.Time) []*shard {
	out := make([]*shard, 0, len(st.shards))
	for _, sh := range st.shards {
		if !st.expired(sh, now) {
			out = append(out, sh)
		}
	}
	return out
}

// DescribeStream describes a stream and pages through its shards (Limit,
// default 100; ExclusiveStartShardId).
func (s *Server) DescribeStream(ctx context.Context, in *kinesis.DescribeStreamInput, _ ...func(*kinesis.Options)) (*kinesis.DescribeStreamOutput, error) {
	if err := s.gate(ctx, OpDescribeStream); err != nil {
		return nil, err
	}
	limit := 100
	if in.Limit != nil {
		limit = int(*in.Limit)
		if limit < 1 || limit > 10000 {
			return nil, validationError(limit, "limit", "Member must have value between 1 and 10000")
		}
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	st, err := s.lookupLocked(in.StreamName, in.StreamARN)
	if err != nil {
		return nil, err
	}
	now := s.clk.Now()
	var shards []types.Shard
	more := false
	after := -1
	if id := aws.ToString(in.ExclusiveStartShardId); id != "" {
		if i, ok := shardIndex(id); ok {
			after = i
		}
	}
	for _, sh := range s.visibleShards(st, now) {
		if sh.index <= after {
			continue
		}
		if len(shards) == limit {
			more = true
			break
		}
		shards = append(shards, sh.describe())
	}
	return &kinesis.DescribeStreamOutput{StreamDescription: &types.StreamDescription{
		StreamName:              aws.String(st.name),
		StreamARN:               aws.String(st.arn),
		StreamStatus:            types.StreamStatusActive,
		StreamModeDetails:       &types.StreamModeDetails{StreamMode: st.mode},
		Shards:                  shards,
		HasMoreShards:           aws.Bool(more),
		RetentionPeriodHours:    aws.Int32(int32(st.retention / time.Hour)),
		StreamCreationTimestamp: aws.Time(st.created),
		EnhancedMonitoring:      []types.EnhancedMetrics{{ShardLevelMetrics: []types.MetricsName{}}},
		EncryptionType:          types.EncryptionTypeNone,
	}}, nil
}

// DescribeStreamSummary describes a stream without its shards.
func (s *Server) DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, _ ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error) {
	if err := s.gate(ctx, OpDescribeStreamSummary); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	st, err := s.lookupLocked(in.StreamName, in.StreamARN)
	if err != nil {
		return nil, err
	}
	open := 0
	for _, sh := range st.shards {
		if sh.open() {
			open++
		}
	}
	return &kinesis.DescribeStreamSummaryOutput{StreamDescriptionSummary: &types.StreamDescriptionSummary{
		StreamName:              aws.String(st.name),
		StreamARN:               aws.String(st.arn),
		StreamStatus:            types.StreamStatusActive,
		StreamModeDetails:       &types.StreamModeDetails{StreamMode: st.mode},
		OpenShardCount:          aws.Int32(int32(open)),
		ConsumerCount:           aws.Int32(int32(len(st.consumers))),
		RetentionPeriodHours:    aws.Int32(int32(st.retention / time.Hour)),
		StreamCreationTimestamp: aws.Time(st.created),
		EnhancedMonitoring:      []types.EnhancedMetrics{{ShardLevelMetrics: []types.MetricsName{}}},
		EncryptionType:          types.EncryptionTypeNone,
	}}, nil
}

// pageToken is the opaque NextToken of the List* operations.
type pageToken struct {
	Stream  string `json:"s,omitempty"`
	Epoch   int64  `json:"e,omitempty"`
	After   string `json:"a"`
	Issued  int64  `json:"t"`
	Filter  string `json:"f,omitempty"`
	FilterT int64  `json:"ft,omitempty"`
	FilterS string `json:"fs,omitempty"`
}

func encodeToken(t pageToken) string {
	b, _ := json.Marshal(t)
	return base64.StdEncoding.EncodeToString(b)
}

func decodeToken(s string) (pageToken, bool) {
	var t pageToken
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || json.Unmarshal(b, &t) != nil {
		return t, false
	}
	return t, true
}

const nextTokenTTL = 300 * time.Second

func errExpiredToken() error {
	return &types.ExpiredNextTokenException{Message: aws.String("The NextToken has expired. NextTokens are valid for 300 seconds.")}
}

// ListStreams lists stream names in order, paging with Limit (default 100),
// ExclusiveStartStreamName or NextToken.
func (s *Server) ListStreams(ctx context.Context, in *kinesis.ListStreamsInput, _ ...func(*kinesis.Options)) (*kinesis.ListStreamsOutput, error) {
	if err := s.gate(ctx, OpListStreams); err != nil {
		return nil, err
	}
	limit := 100
	if in.Limit != nil {
		limit = int(*in.Limit)
		if limit < 1 || limit > 10000 {
			return nil, validationError(limit, "limit", "Member must have value between 1 and 10000")
		}
	}
	after := aws.ToString(in.ExclusiveStartStreamName)
	if tok := aws.ToString(in.NextToken); tok != "" {
		t, ok := decodeToken(tok)
		if !ok {
			return nil, errInvalidArg("Invalid NextToken.")
		}
		after = t.After
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	names := make([]string, 0, len(s.streams))
	for n := range s.streams {
		if n > after {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	more := len(names) > limit
	if more {
		names = names[:limit]
	}
	out := &kinesis.ListStreamsOutput{StreamNames: names, HasMoreStreams: aws.Bool(more)}
	for _, n := range names {
		st := s.streams[n]
		out.StreamSummaries = append(out.StreamSummaries, types.StreamSummary{
			StreamName:              aws.String(n),
			StreamARN:               aws.String(st.arn),
			StreamStatus:            types.StreamStatusActive,
			StreamModeDetails:       &types.StreamModeDetails{StreamMode: st.mode},
			StreamCreationTimestamp: aws.Time(st.created),
		})
	}
	if more {
		out.NextToken = aws.String(encodeToken(pageToken{After: names[len(names)-1], Issued: s.clk.Now().UnixNano()}))
	}
	return out, nil
}

// ListShards lists a stream's shards in shard id order with ShardFilter,
// ExclusiveStartShardId and MaxResults (default and effective cap 1000). A
// NextToken (valid for 300 s) carries the stream and filter, so the next
// call must not name the stream again, as on the service.
func (s *Server) ListShards(ctx context.Context, in *kinesis.ListShardsInput, _ ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	if err := s.gate(ctx, OpListShards); err != nil {
		return nil, err
	}
	limit := 1000
	if in.MaxResults != nil {
		limit = int(*in.MaxResults)
		if limit < 1 || limit > 10000 {
			return nil, validationError(limit, "maxResults", "Member must have value between 1 and 10000")
		}
		limit = min(limit, 1000)
	}
	now := s.clk.Now()
	var tok pageToken
	hasStream := in.StreamName != nil || in.StreamARN != nil
	if t := aws.ToString(in.NextToken); t != "" {
		if hasStream {
			return nil, errInvalidArg("NextToken and StreamName cannot be provided together.")
		}
		if in.ExclusiveStartShardId != nil || in.StreamCreationTimestamp != nil {
			return nil, errInvalidArg("NextToken cannot be provided together with ExclusiveStartShardId or StreamCreationTimestamp.")
		}
		var ok bool
		if tok, ok = decodeToken(t); !ok || tok.Stream == "" {
			return nil, errInvalidArg("Invalid NextToken.")
		}
		if now.Sub(time.Unix(0, tok.Issued)) > nextTokenTTL {
			return nil, errExpiredToken()
		}
	} else {
		if !hasStream {
			return nil, errInvalidArg("Either NextToken or StreamName should be provided.")
		}
		tok.After = aws.ToString(in.ExclusiveStartShardId)
		if f := in.ShardFilter; f != nil {
			tok.Filter = string(f.Type)
			tok.FilterS = aws.ToString(f.ShardId)
			if f.Timestamp != nil {
				tok.FilterT = f.Timestamp.UnixNano()
			}
			switch f.Type {
			case types.ShardFilterTypeAfterShardId:
				if f.ShardId == nil {
					return nil, errInvalidArg("Must specify ShardId with ShardFilter type AFTER_SHARD_ID.")
				}
			case types.ShardFilterTypeAtTimestamp, types.ShardFilterTypeFromTimestamp:
				if f.Timestamp == nil {
					return nil, errInvalidArg("Must specify Timestamp with ShardFilter type %s.", f.Type)
				}
			case types.ShardFilterTypeAtTrimHorizon, types.ShardFilterTypeFromTrimHorizon, types.ShardFilterTypeAtLatest:
			default:
				return nil, validationError(f.Type, "shardFilter.type", "Member must satisfy enum value set: [AFTER_SHARD_ID, AT_TRIM_HORIZON, FROM_TRIM_HORIZON, AT_LATEST, AT_TIMESTAMP, FROM_TIMESTAMP]")
			}
		}
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	var st *stream
	var err error
	if tok.Stream != "" {
		st = s.streams[tok.Stream]
		if st == nil || st.seqEpoch != tok.Epoch {
			return nil, errStreamNotFound(s, tok.Stream)
		}
	} else if st, err = s.lookupLocked(in.StreamName, in.StreamARN); err != nil {
		return nil, err
	}
	after := -1
	if tok.After != "" {
		if i, ok := shardIndex(tok.After); ok {
			after = i
		}
	}
	if tok.Filter == string(types.ShardFilterTypeAfterShardId) {
		if i, ok := shardIndex(tok.FilterS); ok && i > after {
			after = i
		}
	}
	match := shardFilter(st, tok, now)
	var out []types.Shard
	var last string
	more := false
	for _, sh := range s.visibleShards(st, now) {
		if sh.index <= after || !match(sh) {
			continue
		}
		if len(out) == limit {
			more = true
			break
		}
		out = append(out, sh.describe())
		last = sh.id
	}
	res := &kinesis.ListShardsOutput{Shards: out}
	if more {
		next := tok
		next.Stream, next.Epoch, next.After, next.Issued = st.name, st.seqEpoch, last, now.UnixNano()
		res.NextToken = aws.String(encodeToken(next))
	}
	return res, nil
}

// shardFilter returns the predicate of a ListShards ShardFilter.
func shardFilter(st *stream, tok pageToken, now time.Time) func(*shard) bool {
	openAt := func(sh *shard, t time.Time) bool {
		return !sh.createdAt.After(t) && (sh.open() || !sh.closedAt.Before(t))
	}
	switch types.ShardFilterType(tok.Filter) {
	case types.ShardFilterTypeAtLatest:
		return func(sh *shard) bool { return sh.open() }
	case types.ShardFilterTypeAtTrimHorizon:
		// The shards open at the trim horizon are those whose parents have
		// aged out (or never existed): where a reader of all retained data
		// starts. Unlike a time comparison, this holds when a reshard
		// happened at the instant the stream was created (a fake clock).
		return func(sh *shard) bool {
			for _, p := range []string{sh.parent, sh.adjParent} {
				if ps := st.shard(p); p != "" && ps != nil && !st.expired(ps, now) {
					return false
				}
			}
			return true
		}
	case types.ShardFilterTypeAtTimestamp, types.ShardFilterTypeFromTimestamp:
		t := time.Unix(0, tok.FilterT)
		if t.Before(st.created) {
			t = st.created
		}
		if types.ShardFilterType(tok.Filter) == types.ShardFilterTypeAtTimestamp {
			return func(sh *shard) bool { return openAt(sh, t) }
		}
		return func(sh *shard) bool { return sh.open() || !sh.closedAt.Before(t) }
	}
	// FROM_TRIM_HORIZON, AFTER_SHARD_ID and no filter: every shard still
	// within retention.
	return func(*shard) bool { return true }
}

func timeFromNanos(n int64) time.Time { return time.Unix(0, n) }

// nextSeqEpochLocked returns the creation stamp of a new stream: its
// creation time in ms, bumped past the previous stream's so that every
// incarnation of a name is distinct. Sequence numbers, iterators and page
// tokens carry it, so none from a deleted stream works on its successor.
func (s *Server) nextSeqEpochLocked(now time.Time) int64 {
	e := max(0, now.UnixMilli()) % 1e13
	if e <= s.lastSeqEpoch {
		e = s.lastSeqEpoch + 1
	}
	s.lastSeqEpoch = e
	return e
}
