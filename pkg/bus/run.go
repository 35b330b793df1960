package bus

import (
	"context"
	"fmt"
	"sync"
)

// Consumer runs durable consumers.
type Consumer interface {
	Consume(ctx context.Context, cfg ConsumerConfig, h Handler) error
}

// Consumption is one durable consumer a service runs: its configuration
// and its handler.
type Consumption struct {
	Config  ConsumerConfig
	Handler Handler
}

// RunAll runs a service's consumers until ctx ends. One failing stops the
// others, so that the platform sees the service fail instead of running
// half of it; the first failure is returned.
func RunAll(ctx context.Context, c Consumer, cs ...Consumption) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, len(cs))
	for _, x := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.Consume(ctx, x.Config, x.Handler); err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("%s: %w", x.Config.Durable, err)
				cancel()
			}
		}()
	}
	wg.Wait()
	close(errc)
	return <-errc
}
