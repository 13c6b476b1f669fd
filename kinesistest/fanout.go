package kinesistest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream/eventstreamapi"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	smithy "github.com/aws/smithy-go"
)

// Enhanced fan-out (SubscribeToShard) as the service does it:
//
//   - a subscription lasts 5 minutes on the server clock, then its event
//     stream ends normally and the consumer subscribes again;
//   - it pushes a SubscribeToShardEvent as soon as records are written (it
//     waits on the server's change notification, it never polls), at least
//     every 5 seconds when there are none, and one right after subscribing;
//   - every event carries ContinuationSequenceNumber, a sequence number to
//     resubscribe from with AFTER_SEQUENCE_NUMBER, and MillisBehindLatest;
//   - at the end of a closed shard the last event has no
//     ContinuationSequenceNumber and lists ChildShards, and the stream ends;
//   - one subscription per consumer and shard: subscribing again within 5
//     seconds of a successful call fails with ResourceInUseException; later,
//     the new call takes over and the old stream ends with a
//     ResourceInUseException exception event;
//   - with Options.Limits, a consumer reads at most 2 MiB/s per shard and
//     may call SubscribeToShard once per second per shard
//     (LimitExceededException).
const (
	subscriptionLifetime = 5 * time.Minute
	subscriptionTakeover = 5 * time.Second
	subscribeInterval    = time.Second
	heartbeatInterval    = 5 * time.Second
	fanoutBytesPerSec    = 2 << 20

	// An event carries at most this many records and bytes; larger backlogs
	// go out as several events.
	maxEventRecords = 10000
	maxEventBytes   = 1 << 20
)

// subscriptionKey identifies one consumer's subscription to one shard.
type subscriptionKey struct{ consumerARN, shardID string }

// subscriptionRegistry tracks a server's active subscriptions.
type subscriptionRegistry struct {
	mu       sync.Mutex
	active   map[subscriptionKey]*subscription
	lastCall map[subscriptionKey]time.Time
}

type subscription struct {
	started  time.Time
	takeover chan struct{} // closed when a newer call takes over
}

// subscriptions returns the server's registry of active subscriptions.
func (s *Server) subscriptions() *subscriptionRegistry {
	s.fanoutOnce.Do(func() {
		s.fanout = subscriptionRegistry{
			active:   make(map[subscriptionKey]*subscription),
			lastCall: make(map[subscriptionKey]time.Time),
		}
	})
	return &s.fanout
}

// start registers a subscription for key at now, enforcing the one-at-a-time
// and (with limits) once-per-second rules.
func (r *subscriptionRegistry) start(key subscriptionKey, now time.Time, limits bool) (*subscription, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if limits {
		if last, ok := r.lastCall[key]; ok && now.Sub(last) < subscribeInterval {
			return nil, errLimit("Rate exceeded for consumer %s and shard %s.", key.consumerARN, key.shardID)
		}
	}
	r.lastCall[key] = now
	if old, ok := r.active[key]; ok {
		if now.Sub(old.started) < subscriptionTakeover {
			return nil, errInUse("Another active subscription exists for consumer %s and shard %s.", key.consumerARN, key.shardID)
		}
		close(old.takeover)
	}
	sub := &subscription{started: now, takeover: make(chan struct{})}
	r.active[key] = sub
	return sub, nil
}

// end unregisters sub unless a newer subscription already replaced it.
func (r *subscriptionRegistry) end(key subscriptionKey, sub *subscription) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.active[key] == sub {
		delete(r.active, key)
	}
}

// fanoutCursor is a subscription's position in its shard.
type fanoutCursor struct {
	st  *stream
	sh  *shard
	pos uint64 // counter of the last record delivered; 0 is before the first
}

func (s *Server) serveSubscribeToShard(w http.ResponseWriter, r *http.Request, body []byte) {
	ctx := r.Context()
	in := new(kinesis.SubscribeToShardInput)
	if err := unmarshalShape(body, in); err != nil {
		writeWireError(w, &smithy.GenericAPIError{Code: "SerializationException", Message: err.Error()})
		return
	}
	if err := s.gate(ctx, OpSubscribeToShard); err != nil {
		writeWireError(w, err)
		return
	}
	cur, key, err := s.subscribeStart(in)
	if err != nil {
		writeWireError(w, err)
		return
	}
	reg := s.subscriptions()
	sub, err := reg.start(key, s.clk.Now(), s.limits)
	if err != nil {
		writeWireError(w, err)
		return
	}
	defer reg.end(key, sub)

	w.Header().Set("Content-Type", eventStreamContentType)
	w.WriteHeader(http.StatusOK)
	es := &eventWriter{w: w, enc: eventstream.NewEncoder()}
	if flusher, ok := w.(http.Flusher); ok {
		es.flush = flusher.Flush
	}
	if err := es.event("initial-response", []byte("{}")); err != nil {
		return
	}
	s.runSubscription(ctx, es, sub, key, cur)
}

// subscribeStart validates the request and finds where it starts reading.
func (s *Server) subscribeStart(in *kinesis.SubscribeToShardInput) (fanoutCursor, subscriptionKey, error) {
	var cur fanoutCursor
	switch {
	case in.ConsumerARN == nil:
		return cur, subscriptionKey{}, validationError(nil, "consumerARN", "Member must not be null")
	case in.ShardId == nil:
		return cur, subscriptionKey{}, validationError(nil, "shardId", "Member must not be null")
	case in.StartingPosition == nil:
		return cur, subscriptionKey{}, validationError(nil, "startingPosition", "Member must not be null")
	}
	arn, shardID, pos := *in.ConsumerARN, *in.ShardId, in.StartingPosition

	s.mu.RLock()
	defer s.mu.RUnlock()
	st := s.streamOfConsumerLocked(arn)
	if st == nil {
		return cur, subscriptionKey{}, &types.ResourceNotFoundException{Message: aws.String(fmt.Sprintf(
			"Consumer %s under account %s not found.", arn, s.account))}
	}
	now := s.clk.Now()
	sh, err := s.shardLocked(st, shardID, now)
	if err != nil {
		return cur, subscriptionKey{}, err
	}
	cur = fanoutCursor{st: st, sh: sh}
	trim := uint64(st.trimIndex(sh, now))
	n := uint64(len(sh.records))

	seqArg := func() (uint64, error) {
		if pos.SequenceNumber == nil {
			return 0, errInvalidArg("StartingSequenceNumber must be specified for StartingPosition type %s.", pos.Type)
		}
		idx, counter, fromStream, ok := st.parseSeq(*pos.SequenceNumber)
		switch {
		case !ok:
			return 0, errInvalidArg("StartingSequenceNumber %s used in SubscribeToShard on shard %s in stream %s under account %s is invalid.",
				*pos.SequenceNumber, sh.id, st.name, s.account)
		case idx != sh.index:
			return 0, errInvalidArg("Invalid StartingSequenceNumber. It encodes %s, while it was used in a call to a shard with %s", shardName(idx), sh.id)
		case !fromStream:
			return 0, errInvalidArg("StartingSequenceNumber %s used in SubscribeToShard on shard %s in stream %s under account %s is invalid because it did not come from this stream.",
				*pos.SequenceNumber, sh.id, st.name, s.account)
		}
		return counter, nil
	}
	switch pos.Type {
	case types.ShardIteratorTypeTrimHorizon:
		cur.pos = trim
	case types.ShardIteratorTypeLatest:
		cur.pos = n
	case types.ShardIteratorTypeAtSequenceNumber:
		c, err := seqArg()
		if err != nil {
			return cur, subscriptionKey{}, err
		}
		if c > 0 {
			c--
		}
		cur.pos = max(c, trim)
	case types.ShardIteratorTypeAfterSequenceNumber:
		c, err := seqArg()
		if err != nil {
			return cur, subscriptionKey{}, err
		}
		cur.pos = max(c, trim)
	case types.ShardIteratorTypeAtTimestamp:
		if pos.Timestamp == nil {
			return cur, subscriptionKey{}, errInvalidArg("Timestamp must be specified for StartingPosition type AT_TIMESTAMP.")
		}
		at := *pos.Timestamp
		i := sort.Search(len(sh.records), func(i int) bool { return !sh.records[i].arrival.Before(at) })
		cur.pos = max(uint64(i), trim)
	default:
		return cur, subscriptionKey{}, validationError(pos.Type, "startingPosition.type",
			"Member must satisfy enum value set: [AT_SEQUENCE_NUMBER, AFTER_SEQUENCE_NUMBER, TRIM_HORIZON, LATEST, AT_TIMESTAMP]")
	}
	return cur, subscriptionKey{consumerARN: arn, shardID: sh.id}, nil
}

// streamOfConsumerLocked finds the stream a consumer ARN is registered on;
// s.mu must be held.
func (s *Server) streamOfConsumerLocked(arn string) *stream {
	for _, st := range s.streams {
		for _, c := range st.consumers {
			if c.arn == arn {
				return st
			}
		}
	}
	return nil
}

// fanoutBatch is what one read of the shard found.
type fanoutBatch struct {
	records  []types.Record
	bytes    int
	pos      uint64 // cursor after the batch
	behind   int64  // MillisBehindLatest after the batch
	children []types.ChildShard
	shardEnd bool  // the shard is closed and everything was delivered
	gone     error // the consumer, stream or shard no longer exists
}

// read takes up to maxBytes (at least one record) from the cursor.
func (s *Server) read(key subscriptionKey, cur fanoutCursor, maxBytes int) fanoutBatch {
	s.mu.RLock()
	defer s.mu.RUnlock()
	b := fanoutBatch{pos: cur.pos}
	now := s.clk.Now()
	switch {
	case s.closed:
		b.gone = &types.InternalFailureException{Message: aws.String("kinesistest: server closed")}
		return b
	case s.streams[cur.st.name] != cur.st || s.streamOfConsumerLocked(key.consumerARN) != cur.st:
		b.gone = &types.ResourceNotFoundException{Message: aws.String(fmt.Sprintf(
			"Consumer %s under account %s not found.", key.consumerARN, s.account))}
		return b
	case cur.st.expired(cur.sh, now):
		b.gone = errShardNotFound(s, cur.st.name, cur.sh.id)
		return b
	}
	recs := cur.sh.records
	start := max(cur.pos, uint64(cur.st.trimIndex(cur.sh, now)))
	end := start
	for end < uint64(len(recs)) && len(b.records) < maxEventRecords {
		rec := &recs[end]
		size := len(rec.data) + len(rec.pk)
		if len(b.records) > 0 && b.bytes+size > maxBytes {
			break
		}
		b.records = append(b.records, types.Record{
			Data:                        rec.data,
			PartitionKey:                aws.String(rec.pk),
			SequenceNumber:              aws.String(rec.seq),
			ApproximateArrivalTimestamp: aws.Time(rec.arrival),
		})
		b.bytes += size
		end++
	}
	b.pos = end
	if end < uint64(len(recs)) {
		b.behind = max(0, now.Sub(recs[end].arrival).Milliseconds())
	}
	if !cur.sh.open() && end >= uint64(len(recs)) {
		b.shardEnd = true
		b.children = cur.st.children(cur.sh)
	}
	return b
}

// runSubscription pushes events until the subscription ends.
func (s *Server) runSubscription(ctx context.Context, es *eventWriter, sub *subscription, key subscriptionKey, cur fanoutCursor) {
	expires := sub.started.Add(subscriptionLifetime)
	bucket := float64(fanoutBytesPerSec)
	refilled := sub.started
	var lastSent time.Time
	sentFirst := false

	inUse := func() error {
		return errInUse("Another subscription for consumer %s and shard %s took over.", key.consumerARN, key.shardID)
	}
	for {
		// A busy shard never waits below, so check for the ends here too.
		select {
		case <-ctx.Done():
			return
		case <-sub.takeover:
			_ = es.exception(inUse())
			return
		default:
		}
		changed := s.dataChanged() // before reading, so no write is missed
		now := s.clk.Now()
		if !now.Before(expires) {
			return // the stream ends normally; the consumer subscribes again
		}
		var wake time.Time // when the next read may make progress regardless of writes
		maxBytes := maxEventBytes
		throttled := false
		if s.limits {
			bucket = min(fanoutBytesPerSec, bucket+now.Sub(refilled).Seconds()*fanoutBytesPerSec)
			refilled = now
			if bucket <= 0 {
				throttled = true
				wake = now.Add(time.Duration((1 - bucket) / fanoutBytesPerSec * float64(time.Second)))
			} else {
				maxBytes = min(maxBytes, int(bucket))
			}
		}
		var b fanoutBatch
		if !throttled {
			b = s.read(key, cur, maxBytes)
		} else {
			b = fanoutBatch{pos: cur.pos}
		}
		if b.gone != nil {
			_ = es.exception(b.gone)
			return
		}
		if !throttled && (len(b.records) > 0 || !sentFirst || !now.Before(lastSent.Add(heartbeatInterval)) || b.shardEnd) {
			ev := &types.SubscribeToShardEvent{
				Records:            b.records,
				MillisBehindLatest: aws.Int64(b.behind),
			}
			if ev.Records == nil {
				ev.Records = []types.Record{}
			}
			if b.shardEnd && len(b.records) == 0 {
				ev.ChildShards = b.children
				if ev.ChildShards == nil {
					ev.ChildShards = []types.ChildShard{}
				}
			} else {
				ev.ContinuationSequenceNumber = aws.String(cur.st.seq(cur.sh.index, b.pos))
			}
			if err := es.subscribeToShardEvent(ev); err != nil {
				return
			}
			if ev.ContinuationSequenceNumber == nil {
				return // end of a closed shard: the consumer moves on to the children
			}
			cur.pos = b.pos
			sentFirst, lastSent = true, now
			bucket -= float64(b.bytes)
			if len(b.records) > 0 {
				continue // there may be more: read again before waiting
			}
		}
		// Wait for a write, the next heartbeat, the expiry or the rate limit.
		next := lastSent.Add(heartbeatInterval)
		if expires.Before(next) {
			next = expires
		}
		if !wake.IsZero() && wake.Before(next) {
			next = wake
		}
		// The timer exists only while the subscription waits, so a test's
		// fake clock shows one pending timer per idle subscription.
		timer := s.clk.NewTimer(next.Sub(now))
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-sub.takeover:
			timer.Stop()
			_ = es.exception(inUse())
			return
		case <-changed:
		case <-timer.C():
		}
		timer.Stop()
	}
}

// eventWriter writes event-stream messages to an HTTP response.
type eventWriter struct {
	w     io.Writer
	flush func()
	enc   *eventstream.Encoder
}

func (e *eventWriter) write(msg eventstream.Message) error {
	if err := e.enc.Encode(e.w, msg); err != nil {
		return err
	}
	if e.flush != nil {
		e.flush()
	}
	return nil
}

func (e *eventWriter) event(eventType string, payload []byte) error {
	var msg eventstream.Message
	msg.Headers.Set(eventstreamapi.MessageTypeHeader, eventstream.StringValue(eventstreamapi.EventMessageType))
	msg.Headers.Set(eventstreamapi.EventTypeHeader, eventstream.StringValue(eventType))
	msg.Headers.Set(eventstreamapi.ContentTypeHeader, eventstream.StringValue("application/json"))
	msg.Payload = payload
	return e.write(msg)
}

func (e *eventWriter) subscribeToShardEvent(ev *types.SubscribeToShardEvent) error {
	payload, err := marshalShape(ev)
	if err != nil {
		return err
	}
	return e.event("SubscribeToShardEvent", payload)
}

// exception ends the stream with an exception message the SDK turns into
// the typed error returned by the event stream's Err.
func (e *eventWriter) exception(err error) error {
	code, message, _ := errorCode(err)
	payload, _ := json.Marshal(struct {
		Message string `json:"message"`
	}{message})
	var msg eventstream.Message
	msg.Headers.Set(eventstreamapi.MessageTypeHeader, eventstream.StringValue(eventstreamapi.ExceptionMessageType))
	msg.Headers.Set(eventstreamapi.ExceptionTypeHeader, eventstream.StringValue(code))
	msg.Headers.Set(eventstreamapi.ContentTypeHeader, eventstream.StringValue("application/json"))
	msg.Payload = payload
	return e.write(msg)
}
