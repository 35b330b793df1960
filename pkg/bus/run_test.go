package bus

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// consumeFunc runs a consumer as a function: RunAll's own logic (one
// failure stops the others) is what is tested here; the real consumers
// are tested in bustest.
type consumeFunc func(ctx context.Context, cfg ConsumerConfig, h Handler) error

func (f consumeFunc) Consume(ctx context.Context, cfg ConsumerConfig, h Handler) error {
	return f(ctx, cfg, h)
}

func TestRunAllStopsEveryConsumerWhenOneFails(t *testing.T) {
	stopped := make(chan string, 3)
	c := consumeFunc(func(ctx context.Context, cfg ConsumerConfig, h Handler) error {
		if cfg.Durable == "broken" {
			return errors.New("stream gone")
		}
		<-ctx.Done()
		stopped <- cfg.Durable
		return nil
	})
	err := RunAll(context.Background(), c, Consumption{Config: ConsumerConfig{Durable: "a"}}, Consumption{Config: ConsumerConfig{Durable: "broken"}},
		Consumption{Config: ConsumerConfig{Durable: "b"}})
	if err == nil || !strings.Contains(err.Error(), "broken: stream gone") {
		t.Fatalf("err %v", err)
	}
	if len(stopped) != 2 {
		t.Fatalf("%d consumers stopped", len(stopped))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := RunAll(ctx, c, Consumption{Config: ConsumerConfig{Durable: "a"}}); err != nil {
		t.Fatalf("a cancelled run is not a failure: %v", err)
	}
}
