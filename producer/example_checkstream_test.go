package producer_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/shardflow/shardflow/kinesistest"
	"github.com/shardflow/shardflow/producer"
)

// A service fails at start-up when its stream is missing, instead of
// failing every record later.
func ExampleProducer_CheckStream() {
	ctx := context.Background()
	srv := kinesistest.New(kinesistest.Options{}) // no stream "orders"
	p, err := producer.New(srv, "orders", producer.Config{})
	if err != nil {
		panic(err)
	}
	defer p.Close(ctx)
	if err := p.CheckStream(ctx); errors.Is(err, producer.ErrStreamNotFound) {
		fmt.Println("no stream: fix the configuration")
		return
	}
	fmt.Println("ready")
	// Output: no stream: fix the configuration
}
