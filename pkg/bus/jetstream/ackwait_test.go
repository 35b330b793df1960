package jetstream

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/bus"
)

// TestLongHandlerKeptAlive: with an AckWait far shorter than the handler
// takes, the in-progress signals keep the server from redelivering the
// message while it is being handled: each message is delivered once. The
// short AckWait is what lets a crashed process's work come back within
// seconds; this is what makes it safe for live work.
func TestLongHandlerKeptAlive(t *testing.T) {
	srv := startServer(t, ServerConfig{StoreDir: t.TempDir()})
	b := newTestBus(t, Config{Server: srv})
	defer b.Close()
	subject := bus.ResourceSubject("demo", "Encounter", bus.OpUpdated)
	msgs := []bus.Msg{
		{Subject: subject, Header: map[string]string{bus.HeaderMsgID: "Encounter/e/_history/1"}, Data: []byte("1")},
		{Subject: subject, Header: map[string]string{bus.HeaderMsgID: "Encounter/e/_history/2"}, Data: []byte("2")},
	}
	if _, err := b.Publish(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
	const ackWait = 200 * time.Millisecond
	var mu sync.Mutex
	deliveries := map[string][]uint64{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = b.Consume(ctx, bus.ConsumerConfig{Durable: "slow", Subject: subject, AckWait: ackWait}, func(ctx context.Context, m bus.Msg) error {
			mu.Lock()
			deliveries[string(m.Data)] = append(deliveries[string(m.Data)], m.NumDelivered)
			mu.Unlock()
			// Five times AckWait: without in-progress signals the server
			// redelivers it meanwhile.
			select {
			case <-time.After(5 * ackWait):
			case <-ctx.Done():
			}
			return nil
		})
	}()
	deadline := time.Now().Add(testTimeout)
	for {
		mu.Lock()
		n := len(deliveries)
		mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the second message was not delivered")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Give a redelivery of the second message the time to show.
	time.Sleep(5 * ackWait)
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	for _, k := range []string{"1", "2"} {
		if d := deliveries[k]; len(d) != 1 || d[0] != 1 {
			t.Errorf("message %s deliveries %v, want [1]", k, d)
		}
	}
}
