package consumer

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/schemas"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go/transport/http/protocol/awsjson"

	"github.com/shardflow/shardflow/clock"
)

// registerConsumer registers the enhanced fan-out consumer, or finds it when
// it already exists, and waits until it is ACTIVE. It returns its ARN.
func (c *Consumer) registerConsumer(ctx context.Context, kc FanOutKinesis, s *stream) (string, error) {
	rt := retrier{b: c.cfg.ThrottleBackoff}
	for {
		arn, status, err := c.registerOnce(ctx, kc, s)
		if err == nil && status == types.ConsumerStatusActive {
			s.log.Info("enhanced fan-out consumer active", "consumer", s.consumerName, "arn", arn)
			return arn, nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			if !isThrottle(err) && !isResourceInUse(err) {
				return "", fmt.Errorf("register stream consumer %s on %s: %w", s.consumerName, s.label(), err)
			}
		}
		if err := clock.Sleep(ctx, c.cfg.Clock, rt.next()); err != nil {
			return "", err
		}
	}
}

// fanOutConsumerARN returns the registered fan-out consumer's ARN.
func (c *Consumer) fanOutConsumerARN(s *stream) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return s.consumerARN
}

// reregisterConsumer registers the fan-out consumer again after it was
// deregistered (by an operator, or another application sharing its name)
// and returns its new ARN. Every shard's subscriber may call it: the
// registration is idempotent.
func (c *Consumer) reregisterConsumer(ctx context.Context, s *stream) (string, error) {
	arn, err := c.registerConsumer(ctx, c.kc.(FanOutKinesis), s)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	s.consumerARN = arn
	c.mu.Unlock()
	return arn, nil
}

func (c *Consumer) registerOnce(ctx context.Context, kc FanOutKinesis, s *stream) (string, types.ConsumerStatus, error) {
	streamARN := s.arn
	d, err := kc.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{
		StreamARN:    aws.String(streamARN),
		ConsumerName: aws.String(s.consumerName),
	})
	if err == nil && d.ConsumerDescription != nil {
		return aws.ToString(d.ConsumerDescription.ConsumerARN), d.ConsumerDescription.ConsumerStatus, nil
	}
	if err != nil && !isResourceNotFound(err) {
		return "", "", err
	}
	r, err := kc.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{
		StreamARN:    aws.String(streamARN),
		ConsumerName: aws.String(s.consumerName),
	})
	if err != nil {
		// ResourceInUse: another worker registered it meanwhile; describe again.
		return "", "", err
	}
	if r.Consumer == nil {
		return "", "", fmt.Errorf("RegisterStreamConsumer returned no consumer")
	}
	return aws.ToString(r.Consumer.ConsumerARN), r.Consumer.ConsumerStatus, nil
}

// ownEventStreamCodec gives one SubscribeToShard call its own protocol
// instance. aws-sdk-go-v2's awsJson protocol keeps a single event-stream
// codec (decoder and payload buffer) per client and uses it, unsynchronised,
// for every event stream of that client: concurrent subscriptions on one
// *kinesis.Client race and can mix up events (the race detector shows it).
// A protocol per call gives each subscription its own codec.
func ownEventStreamCodec(o *kinesis.Options) {
	o.Protocol = awsjson.New11(schemas.Kinesis_20131202)
}

// fanOutResubscribeAfter is when, on the consumer's clock, a subscription
// is replaced by a new one. The service ends every subscription 5 minutes
// after the call; switching 30 s earlier, from the last continuation
// sequence number, keeps records flowing without a gap at the limit and
// leaves the switch to the consumer (the old stream is closed first; the
// service lets a call made 5 s or more after the previous one take over).
const fanOutResubscribeAfter = 5*time.Minute - 30*time.Second

// subscriber is the enhanced fan-out fetcher: SubscribeToShard, read the
// event stream, and subscribe again from the last continuation sequence
// number before the service's 5-minute limit (fanOutResubscribeAfter), or
// when the subscription ends (the service ends each after 5 minutes) or
// fails.
type subscriber struct {
	shardReader
	kc          FanOutKinesis
	consumerARN string
	start       startPos
	// reregister registers the consumer again when it no longer exists.
	reregister func(context.Context) (string, error)
}

func (s *subscriber) run(ctx context.Context, out chan<- *batch) error {
	clk := s.cfg.Clock
	pos := s.start
	if pos.typ == types.ShardIteratorTypeLatest {
		// See poller.run: resubscribing before the first event must not skip.
		pos = startPos{typ: types.ShardIteratorTypeAtTimestamp, timestamp: clk.Now().Add(-5 * time.Second)}
	}
	first := true
	lastSeq := "" // last record delivered: a resubscription never repeats it
	rt := retrier{b: s.cfg.ThrottleBackoff}
	for {
		sp := &types.StartingPosition{Type: types.ShardIteratorType(pos.typ)}
		use := pos
		if first {
			use = s.start
		}
		sp.Type = types.ShardIteratorType(use.typ)
		switch use.typ {
		case types.ShardIteratorTypeAtSequenceNumber, types.ShardIteratorTypeAfterSequenceNumber:
			sp.SequenceNumber = aws.String(use.seq)
		case types.ShardIteratorTypeAtTimestamp:
			sp.Timestamp = aws.Time(use.timestamp)
		}
		called := clk.Now()
		res, err := s.kc.SubscribeToShard(ctx, &kinesis.SubscribeToShardInput{
			ConsumerARN:      aws.String(s.consumerARN),
			ShardId:          aws.String(s.shardID),
			StartingPosition: sp,
		}, ownEventStreamCodec)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			switch {
			case isThrottle(err), isResourceInUse(err):
				// One subscription per shard and consumer, one call per
				// second: the previous one may still be closing.
				s.met.Throttled(s.metricsKey)
			case isResourceNotFound(err) && s.consumerExists(ctx):
				// The consumer is there, so the shard is not found: it has
				// ended if ListShards confirms it, as with polling.
				if s.notFound(ctx, "SubscribeToShard", err) {
					return s.deliver(ctx, out, nil, nil, true, nil)
				}
			case isResourceNotFound(err) && s.reregister != nil:
				// The consumer was deregistered: without registering it
				// again this shard would never be read.
				s.log.Warn("enhanced fan-out consumer not found; registering it again", "err", err)
				arn, rerr := s.reregister(ctx)
				if rerr != nil {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					s.log.Warn("registering the enhanced fan-out consumer failed; retrying", "err", rerr)
					break
				}
				s.consumerARN = arn
				continue
			default:
				if next, ok := s.trimmed(ctx, use, err); ok {
					s.start, pos = next, next
					continue
				}
				s.log.Warn("SubscribeToShard failed; retrying", "err", err)
			}
			if err := clock.Sleep(ctx, clk, rt.next()); err != nil {
				return err
			}
			continue
		}
		first = false
		end, planned, next, err := s.read(ctx, res.GetStream(), out, &lastSeq, pos, called.Add(fanOutResubscribeAfter))
		if end || err != nil {
			return err
		}
		if next != pos {
			rt.reset() // progress: the next failure starts from a short backoff
		}
		pos = next
		if planned {
			continue // a planned switch: no backoff
		}
		if err := clock.Sleep(ctx, clk, rt.next()/4); err != nil {
			return err
		}
	}
}

// consumerExists reports whether the fan-out consumer is still registered.
func (s *subscriber) consumerExists(ctx context.Context) bool {
	_, err := s.kc.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{ConsumerARN: aws.String(s.consumerARN)})
	return err == nil
}

// read consumes one subscription until renewAt (consumer clock). It returns
// the position to resubscribe from, end=true after the shard's last event,
// planned=true when it stopped at renewAt, or ctx's error. Events received
// but not delivered are dropped with the stream: next is after the last
// delivered one, so the new subscription sends them again.
func (s *subscriber) read(ctx context.Context, es *kinesis.SubscribeToShardEventStream, out chan<- *batch, lastSeq *string, pos startPos, renewAt time.Time) (end, planned bool, next startPos, err error) {
	defer es.Close()
	renew := s.cfg.Clock.NewTimer(max(renewAt.Sub(s.cfg.Clock.Now()), 0))
	defer renew.Stop()
	next = pos
	for {
		var ev types.SubscribeToShardEventStream
		var ok bool
		select {
		case <-ctx.Done():
			return false, false, next, ctx.Err()
		case <-renew.C():
			s.log.Debug("renewing subscription before the 5-minute limit")
			return false, true, next, nil
		case ev, ok = <-es.Events():
		}
		if !ok {
			if err := es.Err(); err != nil && ctx.Err() == nil {
				s.log.Info("subscription ended; resubscribing", "err", err)
			}
			return false, false, next, ctx.Err()
		}
		e, isEvent := ev.(*types.SubscribeToShardEventStreamMemberSubscribeToShardEvent)
		if !isEvent {
			continue
		}
		recs := e.Value.Records
		// Drop anything at or before the last record already delivered, in
		// case a resubscription overlaps.
		for len(recs) > 0 && *lastSeq != "" && recs[0].SequenceNumber != nil && !seqLess(*lastSeq, *recs[0].SequenceNumber) {
			recs = recs[1:]
		}
		if n := len(recs); n > 0 && recs[n-1].SequenceNumber != nil {
			*lastSeq = *recs[n-1].SequenceNumber
			next = startPos{typ: types.ShardIteratorTypeAfterSequenceNumber, seq: *lastSeq}
		}
		shardEnd := e.Value.ContinuationSequenceNumber == nil
		if !shardEnd {
			next = startPos{typ: types.ShardIteratorTypeAfterSequenceNumber, seq: *e.Value.ContinuationSequenceNumber}
		}
		if err := s.deliver(ctx, out, recs, e.Value.MillisBehindLatest, shardEnd, e.Value.ChildShards); err != nil {
			return false, false, next, err
		}
		if shardEnd {
			return true, false, next, nil
		}
	}
}
