package jetstream

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/bus"
)

// Backlog counts what the durable consumers of this process have still to
// handle, including a message held by a handler, and ignores transient
// consumers.
func TestBacklogCountsUnhandledMessages(t *testing.T) {
	srv := startServer(t, ServerConfig{StoreDir: t.TempDir()})
	b := newTestBus(t, Config{Server: srv})
	t.Cleanup(func() { b.Close() })
	ctx := t.Context()
	if n, err := b.Backlog(ctx); err != nil || n != 0 {
		t.Fatalf("Backlog with no consumer = %d, %v", n, err)
	}
	subject := bus.ResourceSubject("t1", "Task", bus.OpUpdated)
	release := make(chan struct{})
	handled := make(chan struct{}, 10)
	runConsumer(t, b, bus.ConsumerConfig{Durable: "slow", Subject: subject}, func(ctx context.Context, m bus.Msg) error {
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
		handled <- struct{}{}
		return nil
	})
	// A live view that never handles anything does not hold the backlog.
	runConsumer(t, b, bus.ConsumerConfig{Durable: "live", Subject: subject, Transient: true}, func(ctx context.Context, m bus.Msg) error {
		<-ctx.Done()
		return ctx.Err()
	})
	var msgs []bus.Msg
	for i := range 3 {
		msgs = append(msgs, bus.Msg{Subject: subject, Header: map[string]string{bus.HeaderMsgID: fmt.Sprint("m", i)}, Data: []byte("x")})
	}
	if _, err := b.Publish(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a backlog of 3 (one held by the handler, two waiting)", func() bool {
		n, err := b.Backlog(ctx)
		return err == nil && n == 3
	})
	close(release)
	for range 3 {
		select {
		case <-handled:
		case <-time.After(testTimeout):
			t.Fatal("messages not handled")
		}
	}
	waitFor(t, "no backlog once every message was handled", func() bool {
		n, err := b.Backlog(ctx)
		return err == nil && n == 0
	})
}
