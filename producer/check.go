package producer

import (
	"context"
	"fmt"

	"github.com/shardflow/shardflow/internal/awserr"
)

// CheckStream lists the stream's shards once, now, and reports whether
// records can be put: nil when the stream exists and has an open shard;
// an error matching ErrStreamNotFound when it does not exist; the SDK's
// error (access denied, network, ...) otherwise. New does not block, and
// records put before the shard map is loaded wait for it within their
// TTL, so a service that wants to fail at start-up on a wrong stream name
// or missing permissions calls CheckStream after New (and Close on
// error); a readiness probe may call it too. Each ListShards call is
// bounded by Config.RequestTimeout as well as ctx.
func (p *Producer) CheckStream(ctx context.Context) error {
	shards, _, err := p.listOpenShards(ctx)
	name := p.streamLabel()
	switch {
	case err != nil && awserr.IsNotFound(err):
		return fmt.Errorf("%w: %s: %w", ErrStreamNotFound, name, err)
	case err != nil:
		return fmt.Errorf("producer: stream %s: list shards: %w", name, err)
	case len(shards) == 0:
		return fmt.Errorf("producer: stream %s: no open shards", name)
	}
	return nil
}

func (p *Producer) streamLabel() string {
	if p.streamARN != nil {
		return *p.streamARN
	}
	return *p.streamName
}
