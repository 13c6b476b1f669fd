package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardflow/shardflow/checkpoint"
	"github.com/shardflow/shardflow/clock"
	"github.com/shardflow/shardflow/internal/streamref"
	"github.com/shardflow/shardflow/lease"
)

// stream is one stream the consumer reads: the only one in single-stream
// mode (id ""), or one of the set in multi-stream mode.
type stream struct {
	id      string // serialized lease.StreamIdentifier; "" in single-stream mode
	name    string
	arn     string // resolved by describe
	byARN   bool   // configured by ARN: Kinesis calls name it by ARN
	initial InitialPosition
	// consumerName and fixedConsumerARN configure enhanced fan-out;
	// consumerARN (under Consumer.mu) is the registered consumer.
	consumerName     string
	fixedConsumerARN string
	consumerARN      string
	log              *slog.Logger
	// configured: made from a StreamConfig (not an orphan); tracked:
	// listed by the last Streams call (multi-stream mode).
	configured bool
	tracked    bool
}

func (s *stream) label() string { return streamref.Ref{Name: s.name, ARN: s.arn}.Label() }

// listInput names the stream in a ListShards call.
func (s *stream) listInput() *kinesis.ListShardsInput {
	name, arn := s.ref()
	return &kinesis.ListShardsInput{StreamName: name, StreamARN: arn}
}

// ref names the stream in Kinesis calls the way it was configured: by ARN
// when an ARN was given, else by name.
func (s *stream) ref() (name, arn *string) {
	if s.byARN {
		return streamref.Ref{ARN: s.arn}.Input()
	}
	return streamref.Ref{Name: s.name}.Input()
}

func (s *stream) initialCheckpoint() checkpoint.Position {
	switch s.initial.Type {
	case TrimHorizon:
		return checkpoint.TrimHorizon
	case AtTimestamp:
		return checkpoint.AtTimestamp
	}
	return checkpoint.Latest
}

// multi reports whether the consumer runs in multi-stream mode.
func (c *Consumer) multi() bool { return c.cfg.Streams != nil }

// streamOf returns the stream of a lease, resolving (describe, fan-out
// registration) a stream this worker does not track: a lease of a stream
// another worker added, or of a former stream whose leases are kept. Such
// an orphan starts at OrphanInitialPosition, as in KCL. It is described
// once, by an ARN built from the identifier's account (it may be another
// account's stream) and the region of this worker's client, as KCL does;
// an identifier whose stream no longer exists (deleted, or recreated with
// a new creation epoch) fails with an error matching ResourceNotFound.
func (c *Consumer) streamOf(ctx context.Context, l lease.Lease) (*stream, error) {
	c.mu.Lock()
	s := c.streams[l.StreamID]
	c.mu.Unlock()
	if s != nil {
		return s, nil
	}
	// A table is single- or multi-stream, as in KCL: a lease of the other
	// kind is not processed (and stays as it is for whoever owns it).
	if l.StreamID == "" {
		return nil, fmt.Errorf("consumer: lease %s is a single-stream lease in a multi-stream table", l.Key)
	}
	if !c.multi() {
		return nil, fmt.Errorf("consumer: lease %s is a multi-stream lease in a single-stream table", l.Key)
	}
	id, err := lease.ParseStreamIdentifier(l.StreamID)
	if err != nil {
		return nil, fmt.Errorf("consumer: lease %s: %w", l.Key, err)
	}
	sc := StreamConfig{ARN: c.orphanARN(id), ID: id}
	if sc.ARN == "" {
		sc.Name = id.StreamName // by name: in the client's own account
	}
	d, err := c.describe(ctx, sc)
	if err != nil {
		return nil, err
	}
	if got := arnAccount(aws.ToString(d.StreamARN)); got != id.AccountID {
		return nil, fmt.Errorf("consumer: lease %s: stream of account %s, the client's region unknown: described %s of account %s instead",
			l.Key, id.AccountID, aws.ToString(d.StreamARN), got)
	}
	if got := aws.ToTime(d.StreamCreationTimestamp).Unix(); got != id.CreationEpoch {
		return nil, fmt.Errorf("consumer: stream %s: created at epoch %d, the lease's identifier names the stream of epoch %d: %w",
			aws.ToString(d.StreamARN), got, id.CreationEpoch, &types.ResourceNotFoundException{Message: aws.String("stream " + l.StreamID + " no longer exists")})
	}
	s = &stream{name: id.StreamName, initial: c.cfg.OrphanInitialPosition, consumerName: c.cfg.ConsumerName}
	if err := c.identify(s, sc, d); err != nil {
		return nil, err
	}
	if err := c.register(ctx, s); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur := c.streams[s.id]; cur != nil {
		return cur, nil // resolved concurrently (another shard, the stream sync)
	}
	c.streams[s.id] = s
	return s, nil
}

// orphanARN builds the ARN of the stream of id in the region this
// worker's client calls: the region (and partition) of a stream it has
// described, else the client's configured region; "" if neither is known
// (a client that is not a *kinesis.Client, before any stream is
// described).
func (c *Consumer) orphanARN(id lease.StreamIdentifier) string {
	partition, region := "", ""
	c.mu.Lock()
	for _, s := range c.streams {
		if a, ok := streamref.ParseARN(s.arn); ok && a.Region != "" {
			partition, region = a.Partition, a.Region
			break
		}
	}
	c.mu.Unlock()
	if region == "" {
		// c.kc is wrapped for Status; the SDK client's options are on
		// the client the user passed.
		kc := c.kc
		if h, ok := kc.(*healthKinesis); ok {
			kc = h.Kinesis
		}
		if o, ok := kc.(interface{ Options() kinesis.Options }); ok {
			region = o.Options().Region
			partition = partitionOf(region)
		}
	}
	if region == "" {
		return ""
	}
	return streamref.ARN{Partition: partition, Region: region, Account: id.AccountID, Name: id.StreamName}.String()
}

// partitionOf returns the ARN partition of a region.
func partitionOf(region string) string {
	switch {
	case strings.HasPrefix(region, "cn-"):
		return "aws-cn"
	case strings.HasPrefix(region, "us-gov-"):
		return "aws-us-gov"
	case strings.HasPrefix(region, "us-iso-"):
		return "aws-iso"
	case strings.HasPrefix(region, "us-isob-"):
		return "aws-iso-b"
	}
	return "aws"
}

// resolve describes the stream (ARN, identifier), retrying every error
// but ResourceNotFound, and registers its enhanced fan-out consumer.
// Single-stream mode's start-up: there is nothing else to do meanwhile.
func (c *Consumer) resolve(ctx context.Context, s *stream, sc StreamConfig) error {
	rt := retrier{b: c.cfg.ThrottleBackoff}
	for {
		d, err := c.describe(ctx, sc)
		if err == nil {
			if err := c.identify(s, sc, d); err != nil {
				return err
			}
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if isResourceNotFound(err) {
			return err
		}
		c.log.Warn("DescribeStreamSummary failed; retrying", "stream", sc.Name+sc.ARN, "err", err)
		if err := clock.Sleep(ctx, c.cfg.Clock, rt.next()); err != nil {
			return err
		}
	}
	return c.register(ctx, s)
}

// describe calls DescribeStreamSummary once for the stream of sc. A stream
// that does not exist fails with an error matching the SDK's
// ResourceNotFoundException.
func (c *Consumer) describe(ctx context.Context, sc StreamConfig) (*types.StreamDescriptionSummary, error) {
	in := &kinesis.DescribeStreamSummaryInput{}
	in.StreamName, in.StreamARN = streamref.Ref{Name: sc.Name, ARN: sc.ARN}.Input()
	out, err := c.kc.DescribeStreamSummary(ctx, in)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if isResourceNotFound(err) {
			return nil, fmt.Errorf("%w: %s: %w", ErrStreamNotFound, sc.Name+sc.ARN, err)
		}
		return nil, fmt.Errorf("consumer: stream %s: %w", sc.Name+sc.ARN, err)
	}
	if out.StreamDescriptionSummary == nil {
		return &types.StreamDescriptionSummary{}, nil
	}
	return out.StreamDescriptionSummary, nil
}

// identify fills s from its description: ARN, name and, in multi-stream
// mode, the identifier (sc.ID, else account, name and creation epoch of
// the described stream). A configured ID naming another stream (name or
// account) is rejected.
func (c *Consumer) identify(s *stream, sc StreamConfig, d *types.StreamDescriptionSummary) error {
	s.byARN = sc.ARN != ""
	s.arn = aws.ToString(d.StreamARN)
	if s.name == "" {
		s.name = aws.ToString(d.StreamName)
	}
	if c.multi() {
		id := sc.ID
		derived := lease.StreamIdentifier{AccountID: arnAccount(s.arn), StreamName: aws.ToString(d.StreamName), CreationEpoch: aws.ToTime(d.StreamCreationTimestamp).Unix()}
		if id == (lease.StreamIdentifier{}) {
			id = derived
		} else if id.StreamName != derived.StreamName || id.AccountID != derived.AccountID {
			return fmt.Errorf("%w: stream %s: ID %s names another stream than %s", ErrInvalidConfig, s.label(), id, s.arn)
		}
		if err := id.Validate(); err != nil {
			return fmt.Errorf("consumer: stream %s: identifier (set StreamConfig.ID): %w", s.label(), err)
		}
		s.id = id.String()
	}
	s.log = c.log
	if c.multi() {
		s.log = c.log.With("stream", s.name)
	}
	return nil
}

// register registers the stream's enhanced fan-out consumer, unless its
// ARN is configured.
func (c *Consumer) register(ctx context.Context, s *stream) error {
	if !c.cfg.EnhancedFanOut {
		return nil
	}
	arn := s.fixedConsumerARN
	if arn == "" {
		var err error
		if arn, err = c.registerConsumer(ctx, c.kc.(FanOutKinesis), s); err != nil {
			return fmt.Errorf("consumer: %w", err)
		}
	}
	c.mu.Lock()
	s.consumerARN = arn
	c.mu.Unlock()
	return nil
}

// arnAccount returns the account id of a Kinesis stream ARN
// (arn:partition:kinesis:region:account:stream/name).
func arnAccount(arn string) string {
	a, _ := streamref.ParseARN(arn)
	return a.Account
}

// syncStreams calls Streams and brings the tracked set up to date: new
// streams are resolved and get their leases, and streams missing from the
// set are stamped and their leases deleted once missing for
// FormerStreamsDeleteAfter. With that policy on, the streams of the lease
// table's leases count too (as KCL seeds its stream map from the lease
// table): a stream removed while no worker ran is still deleted. A stream
// configured without ID is described at every call: a stream recreated
// under its name has a new identifier, and is a new stream (the old one a
// former stream). It returns how many leases it created, and the Streams
// function's error (the set is then unchanged). A stream that cannot be
// described or synced is tried once, reported at Error and retried at the
// next call; the others go on.
func (c *Consumer) syncStreams(ctx context.Context) (int, error) {
	var cfgs []StreamConfig
	err := safeCall(func() error {
		var err error
		cfgs, err = c.cfg.Streams(ctx)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("consumer: Streams: %w", err)
	}
	now := c.cfg.Clock.Now()
	listed := map[string]bool{}
	created := 0
	var errs []error
	defer func() {
		if err := errors.Join(errs...); err != nil && ctx.Err() == nil {
			c.log.Error("stream sync incomplete; retrying at the next one", "err", err)
		}
	}()
	for _, sc := range cfgs {
		s, err := c.trackStream(ctx, sc)
		if err != nil {
			errs = append(errs, err)
		}
		if s == nil {
			continue
		}
		listed[s.id] = true
		if s.arn != "" && !s.tracked {
			n, err := c.syncShards(ctx, s)
			if err != nil {
				errs = append(errs, fmt.Errorf("consumer: stream %s: shard sync: %w", s.label(), err))
				continue
			}
			s.log.Info("stream added", "stream_id", s.id, "created", n)
			created += n
		}
		c.mu.Lock()
		s.tracked = true
		delete(c.goneSince, s.id)
		c.mu.Unlock()
	}
	known := map[string]bool{}
	if c.cfg.FormerStreamsDeleteAfter > 0 {
		ls, err := c.store.List(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("consumer: former streams: %w", err))
		}
		for _, l := range ls {
			if l.StreamID != "" {
				known[l.StreamID] = true
			}
		}
	}
	var former []string
	c.mu.Lock()
	for id := range c.streams {
		known[id] = true
	}
	for id := range known {
		if listed[id] {
			continue
		}
		if s := c.streams[id]; s != nil {
			s.tracked = false
		}
		since, ok := c.goneSince[id]
		if !ok {
			since = now
			c.goneSince[id] = now
			c.log.Info("stream not listed", "stream_id", id, "delete_after", c.cfg.FormerStreamsDeleteAfter)
		}
		if c.cfg.FormerStreamsDeleteAfter > 0 && now.Sub(since) >= c.cfg.FormerStreamsDeleteAfter {
			former = append(former, id)
		}
	}
	c.mu.Unlock()
	slices.Sort(former)
	for _, id := range former {
		n, err := c.deleteStreamLeases(ctx, id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c.log.Info("former stream's leases deleted", "stream_id", id, "deleted", n)
		c.mu.Lock()
		delete(c.streams, id)
		delete(c.goneSince, id)
		c.mu.Unlock()
	}
	return created, nil
}

// trackStream returns the stream for sc, describing it the first time,
// and at every call when sc has no ID (the identifier of a stream
// recreated under the same name changes). A stream already tracked whose
// describe fails is returned with the error: it stays listed.
func (c *Consumer) trackStream(ctx context.Context, sc StreamConfig) (*stream, error) {
	if sc.Name == "" && sc.ARN == "" {
		return nil, fmt.Errorf("%w: a StreamConfig has neither Name nor ARN", ErrInvalidConfig)
	}
	noID := sc.ID == (lease.StreamIdentifier{})
	var cur *stream
	c.mu.Lock()
	for _, s := range c.streams {
		byARN := sc.ARN != "" && s.arn == sc.ARN
		byName := sc.ARN == "" && s.name == sc.Name && (noID || s.id == sc.ID.String())
		// Of several incarnations of one name, the tracked one.
		if s.configured && (byARN || byName) && (cur == nil || s.tracked) {
			cur = s
		}
	}
	c.mu.Unlock()
	if cur != nil && !noID {
		return cur, nil
	}
	s := &stream{name: sc.Name, initial: c.cfg.InitialPosition, consumerName: c.cfg.ConsumerName, fixedConsumerARN: sc.ConsumerARN, configured: true}
	if sc.InitialPosition != nil {
		if err := sc.InitialPosition.validate(); err != nil {
			return nil, fmt.Errorf("%w: stream %s: InitialPosition: %v", ErrInvalidConfig, sc.Name+sc.ARN, err)
		}
		s.initial = *sc.InitialPosition
	}
	if sc.ConsumerName != "" {
		s.consumerName = sc.ConsumerName
	}
	d, err := c.describe(ctx, sc)
	if err != nil {
		return cur, err
	}
	if err := c.identify(s, sc, d); err != nil {
		return nil, err
	}
	if cur != nil && cur.id == s.id {
		return cur, nil
	}
	c.mu.Lock()
	if old := c.streams[s.id]; old != nil && old.configured {
		c.mu.Unlock()
		return old, nil
	}
	c.mu.Unlock()
	if cur != nil {
		cur.log.Warn("stream recreated: it is a new stream, the old one's leases are a former stream's", "stream_id", s.id, "former_stream_id", cur.id)
	}
	if err := c.register(ctx, s); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.streams[s.id]; old != nil && old.configured {
		return old, nil
	}
	// An orphan resolved by a pipeline is replaced by the configured
	// stream (its initial position and fan-out consumer apply from now).
	c.streams[s.id] = s
	return s, nil
}

// deleteStreamLeases deletes every lease of a stream. Their holders lose
// them at their next write (fenced), as with KCL's lease deletion.
func (c *Consumer) deleteStreamLeases(ctx context.Context, id string) (int, error) {
	ls, err := c.store.List(ctx)
	if err != nil {
		return 0, fmt.Errorf("consumer: delete leases of stream %s: %w", id, err)
	}
	n := 0
	var errs []error
	for _, l := range ls {
		if l.StreamID != id {
			continue
		}
		if err := c.store.Delete(ctx, l.Key); err != nil && !errors.Is(err, lease.ErrNotFound) {
			errs = append(errs, fmt.Errorf("consumer: delete lease %s: %w", l.Key, err))
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// trackedStreams returns the streams the periodic shard sync covers.
func (c *Consumer) trackedStreams() []*stream {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*stream
	for _, s := range c.streams {
		if s.tracked {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b *stream) int { return strings.Compare(a.id, b.id) })
	return out
}
