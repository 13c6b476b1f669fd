package kinesistest

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// Enhanced fan-out consumers become ACTIVE at once (the service takes a few
// seconds in CREATING) and vanish at once on deregistration.

func validConsumerName(name string) error {
	if name == "" || len(name) > 128 {
		return validationError(name, "consumerName", "Member must have length between 1 and 128")
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-') {
			return validationError(name, "consumerName", "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+")
		}
	}
	return nil
}

func (c *consumer) describe(st *stream) types.Consumer {
	return types.Consumer{
		ConsumerName:              aws.String(c.name),
		ConsumerARN:               aws.String(c.arn),
		ConsumerStatus:            types.ConsumerStatusActive,
		ConsumerCreationTimestamp: aws.Time(c.created),
	}
}

func (st *stream) consumer(name string) *consumer {
	for _, c := range st.consumers {
		if c.name == name {
			return c
		}
	}
	return nil
}

func errConsumerNotFound(s *Server, what string) error {
	return &types.ResourceNotFoundException{Message: aws.String(fmt.Sprintf("Consumer %s under account %s not found.", what, s.account))}
}

// consumerLocked finds a consumer by ARN, or by stream ARN and name, as
// DescribeStreamConsumer and DeregisterStreamConsumer accept; s.mu must be
// held. SubscribeToShard resolves its ConsumerARN through it too.
func (s *Server) consumerLocked(consumerARN, streamARN, name *string) (*stream, *consumer, error) {
	if a := aws.ToString(consumerARN); a != "" {
		i := strings.Index(a, "/consumer/")
		if i < 0 {
			return nil, nil, errInvalidArg("%s is not a recognized Kinesis consumer ARN", a)
		}
		st, err := s.lookupLocked(nil, aws.String(a[:i]))
		if err != nil {
			return nil, nil, errConsumerNotFound(s, a)
		}
		for _, c := range st.consumers {
			if c.arn == a {
				return st, c, nil
			}
		}
		return nil, nil, errConsumerNotFound(s, a)
	}
	if streamARN == nil || name == nil {
		return nil, nil, errInvalidArg("Either ConsumerARN or both StreamARN and ConsumerName must be provided.")
	}
	st, err := s.lookupLocked(nil, streamARN)
	if err != nil {
		return nil, nil, err
	}
	c := st.consumer(*name)
	if c == nil {
		return nil, nil, errConsumerNotFound(s, *name)
	}
	return st, c, nil
}

// RegisterStreamConsumer registers an enhanced fan-out consumer; its ARN is
// the stream ARN plus "/consumer/<name>:<creation epoch seconds>".
func (s *Server) RegisterStreamConsumer(ctx context.Context, in *kinesis.RegisterStreamConsumerInput, _ ...func(*kinesis.Options)) (*kinesis.RegisterStreamConsumerOutput, error) {
	if err := s.gate(ctx, OpRegisterStreamConsumer); err != nil {
		return nil, err
	}
	name := aws.ToString(in.ConsumerName)
	if err := validConsumerName(name); err != nil {
		return nil, err
	}
	if in.StreamARN == nil {
		return nil, validationError(nil, "streamARN", "Member must not be null")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.lookupLocked(nil, in.StreamARN)
	if err != nil {
		return nil, err
	}
	if st.consumer(name) != nil {
		return nil, errInUse("Consumer %s under account %s already exists.", name, s.account)
	}
	if len(st.consumers) >= maxConsumers {
		return nil, errLimit("Only %d consumers can be registered to a stream at once.", maxConsumers)
	}
	now := s.clk.Now()
	c := &consumer{name: name, created: now, arn: fmt.Sprintf("%s/consumer/%s:%d", st.arn, name, now.Unix())}
	st.consumers = append(st.consumers, c)
	s.notifyLocked()
	d := c.describe(st)
	return &kinesis.RegisterStreamConsumerOutput{Consumer: &d}, s.afterApply(OpRegisterStreamConsumer)
}

// DescribeStreamConsumer describes a consumer named by ConsumerARN or by
// StreamARN and ConsumerName.
func (s *Server) DescribeStreamConsumer(ctx context.Context, in *kinesis.DescribeStreamConsumerInput, _ ...func(*kinesis.Options)) (*kinesis.DescribeStreamConsumerOutput, error) {
	if err := s.gate(ctx, OpDescribeStreamConsumer); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	st, c, err := s.consumerLocked(in.ConsumerARN, in.StreamARN, in.ConsumerName)
	if err != nil {
		return nil, err
	}
	return &kinesis.DescribeStreamConsumerOutput{ConsumerDescription: &types.ConsumerDescription{
		ConsumerName:              aws.String(c.name),
		ConsumerARN:               aws.String(c.arn),
		ConsumerStatus:            types.ConsumerStatusActive,
		ConsumerCreationTimestamp: aws.Time(c.created),
		StreamARN:                 aws.String(st.arn),
	}}, nil
}

// ListStreamConsumers lists a stream's consumers by name, paging with
// MaxResults (default 100) and NextToken.
func (s *Server) ListStreamConsumers(ctx context.Context, in *kinesis.ListStreamConsumersInput, _ ...func(*kinesis.Options)) (*kinesis.ListStreamConsumersOutput, error) {
	if err := s.gate(ctx, OpListStreamConsumers); err != nil {
		return nil, err
	}
	limit := 100
	if in.MaxResults != nil {
		limit = int(*in.MaxResults)
		if limit < 1 || limit > 10000 {
			return nil, validationError(limit, "maxResults", "Member must have value between 1 and 10000")
		}
	}
	if in.StreamARN == nil {
		return nil, validationError(nil, "streamARN", "Member must not be null")
	}
	after := ""
	if t := aws.ToString(in.NextToken); t != "" {
		tok, ok := decodeToken(t)
		if !ok {
			return nil, errInvalidArg("Invalid NextToken.")
		}
		if s.clk.Now().Sub(timeFromNanos(tok.Issued)) > nextTokenTTL {
			return nil, errExpiredToken()
		}
		after = tok.After
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	st, err := s.lookupLocked(nil, in.StreamARN)
	if err != nil {
		return nil, err
	}
	cs := append([]*consumer(nil), st.consumers...)
	sort.Slice(cs, func(i, j int) bool { return cs[i].name < cs[j].name })
	out := &kinesis.ListStreamConsumersOutput{Consumers: []types.Consumer{}}
	for _, c := range cs {
		if c.name <= after {
			continue
		}
		if len(out.Consumers) == limit {
			out.NextToken = aws.String(encodeToken(pageToken{After: after, Issued: s.clk.Now().UnixNano()}))
			break
		}
		out.Consumers = append(out.Consumers, c.describe(st))
		after = c.name
	}
	return out, nil
}

// DeregisterStreamConsumer removes a consumer named by ConsumerARN or by
// StreamARN and ConsumerName.
func (s *Server) DeregisterStreamConsumer(ctx context.Context, in *kinesis.DeregisterStreamConsumerInput, _ ...func(*kinesis.Options)) (*kinesis.DeregisterStreamConsumerOutput, error) {
	if err := s.gate(ctx, OpDeregisterStreamConsumer); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, c, err := s.consumerLocked(in.ConsumerARN, in.StreamARN, in.ConsumerName)
	if err != nil {
		return nil, err
	}
	for i, x := range st.consumers {
		if x == c {
			st.consumers = append(st.consumers[:i], st.consumers[i+1:]...)
			break
		}
	}
	s.notifyLocked()
	return &kinesis.DeregisterStreamConsumerOutput{}, s.afterApply(OpDeregisterStreamConsumer)
}
