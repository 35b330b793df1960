package bus_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/bus/jetstream"
	"github.com/passerelle-sante/passerelle/pkg/clock"
	"github.com/passerelle-sante/passerelle/pkg/store"
	"github.com/passerelle-sante/passerelle/pkg/store/sqlite"
	"github.com/passerelle-sante/passerelle/pkg/store/sqlstore"
)

// rig is a real store and a real embedded JetStream server on disk.
type rig struct {
	t     *testing.T
	dir   string
	store store.Store
	srv   *jetstream.Server
	bus   *jetstream.Bus
}

func newRig(t *testing.T) *rig {
	t.Helper()
	dir := t.TempDir()
	s, err := sqlite.Open(context.Background(), filepath.Join(dir, "db.sqlite"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	r := &rig{t: t, dir: dir, store: s}
	r.startBus()
	t.Cleanup(r.stopBus)
	return r
}

func (r *rig) startBus() {
	r.t.Helper()
	srv, err := jetstream.StartServer(jetstream.ServerConfig{StoreDir: filepath.Join(r.dir, "nats"), Listen: "127.0.0.1:0"})
	if err != nil {
		r.t.Fatal(err)
	}
	b, err := jetstream.New(context.Background(), jetstream.Config{Server: srv})
	if err != nil {
		r.t.Fatal(err)
	}
	r.srv, r.bus = srv, b
}

func (r *rig) stopBus() {
	if r.bus != nil {
		_ = r.bus.Close()
		r.bus = nil
	}
	if r.srv != nil {
		r.srv.Shutdown()
		r.srv.WaitForShutdown()
		r.srv = nil
	}
}

// streamMsgIDs reads every message of the FHIR stream and returns the count
// of each Nats-Msg-Id.
func (r *rig) streamMsgIDs() map[string]int {
	r.t.Helper()
	nc, err := nats.Connect(r.srv.ClientURL())
	if err != nil {
		r.t.Fatal(err)
	}
	defer nc.Close()
	js, err := natsjs.New(nc)
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, bus.StreamFHIR)
	if err != nil {
		r.t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		r.t.Fatal(err)
	}
	ids := map[string]int{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		ids[m.Header.Get(bus.HeaderMsgID)]++
	}
	return ids
}

func commitEvents(t *testing.T, s store.Store, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		err := s.Tx(context.Background(), func(tx store.Tx) error {
			id := fmt.Sprintf("Task/t%d/_history/1", i)
			return tx.Emit(context.Background(), store.Event{Subject: bus.ResourceSubject("demo", "Task", bus.OpCreated),
				MsgID: id, Key: fmt.Sprintf("Task/t%d", i), Data: []byte(`{"resourceType":"Task"}`)})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func runRelay(t *testing.T, r *bus.Relay) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	return func() { cancel(); <-done }
}

// crashAfterPublish publishes and then fails as if the relay died before
// marking the rows sent.
type crashAfterPublish struct{ p bus.Publisher }

func (c crashAfterPublish) Publish(ctx context.Context, msgs []bus.Msg) (int, error) {
	if _, err := c.p.Publish(ctx, msgs); err != nil {
		return 0, err
	}
	return 0, errors.New("relay died before marking the rows sent")
}

// TestRelayStoppedBetweenCommitAndPublish: events committed while no relay
// runs, then a relay that publishes but dies before marking them sent, then
// a fresh relay: every event is in the stream exactly once.
func TestRelayStoppedBetweenCommitAndPublish(t *testing.T) {
	r := newRig(t)
	const n = 200
	commitEvents(t, r.store, 0, n)
	if b, _ := r.store.Outbox().Backlog(context.Background()); b != n {
		t.Fatalf("backlog %d, want %d", b, n)
	}
	crashing := &bus.Relay{Store: r.store, Publisher: crashAfterPublish{r.bus}, Owner: "first", Poll: 20 * time.Millisecond}
	stop := runRelay(t, crashing)
	waitFor(t, "the crashing relay to publish", 20*time.Second, func() bool { return len(r.streamMsgIDs()) == n })
	stop()
	if b, _ := r.store.Outbox().Backlog(context.Background()); b != n {
		t.Fatalf("backlog after the crash %d, want %d", b, n)
	}
	// The dead relay's lease must run out before another takes over.
	fresh := &bus.Relay{Store: r.store, Publisher: r.bus, Owner: "second", Poll: 20 * time.Millisecond}
	_ = r.store.Leases().Release(context.Background(), "outbox-relay", "first")
	stop = runRelay(t, fresh)
	defer stop()
	waitFor(t, "the backlog to drain", 20*time.Second, func() bool {
		b, _ := r.store.Outbox().Backlog(context.Background())
		return b == 0
	})
	ids := r.streamMsgIDs()
	if len(ids) != n {
		t.Fatalf("%d distinct events in the stream, want %d", len(ids), n)
	}
	for id, c := range ids {
		if c != 1 {
			t.Errorf("%s stored %d times", id, c)
		}
	}
}

// TestConsumerKilledAfterCommitBeforeAck: the handler's writes commit, then
// the consumer dies before acking; the redelivery is absorbed by the inbox.
func TestConsumerKilledAfterCommitBeforeAck(t *testing.T) {
	r := newRig(t)
	const n = 50
	commitEvents(t, r.store, 0, n)
	relay := &bus.Relay{Store: r.store, Publisher: r.bus, Owner: "r", Poll: 20 * time.Millisecond}
	stop := runRelay(t, relay)
	defer stop()

	var mu sync.Mutex
	deliveries := map[string]int{}
	var applied atomic.Int32
	inner := bus.Inbox(r.store, "pathway", func(ctx context.Context, tx store.Tx, m bus.Msg) error {
		applied.Add(1)
		_, err := tx.Create(ctx, "demo", json.RawMessage(`{"resourceType":"Basic","code":{"text":"`+m.Header[bus.HeaderMsgID]+`"}}`))
		return err
	})
	h := func(ctx context.Context, m bus.Msg) error {
		if err := inner(ctx, m); err != nil {
			return err
		}
		mu.Lock()
		deliveries[m.Header[bus.HeaderMsgID]]++
		first := deliveries[m.Header[bus.HeaderMsgID]] == 1
		mu.Unlock()
		if first {
			// Committed, not acknowledged: as if the process died here.
			return errors.New("killed before ack")
		}
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = r.bus.Consume(ctx, bus.ConsumerConfig{Durable: "pathway", Subject: "fhir.demo.Task.>", BackOff: []time.Duration{20 * time.Millisecond}, MaxDeliver: 5}, h)
	}()
	waitFor(t, "every event redelivered", 30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		if len(deliveries) < n {
			return false
		}
		for _, c := range deliveries {
			if c < 2 {
				return false
			}
		}
		return true
	})
	cancel()
	<-done
	if got := applied.Load(); got != n {
		t.Errorf("handler applied %d times, want %d", got, n)
	}
	page, err := r.store.Search(context.Background(), store.Query{Type: "Basic", Count: 1000, Total: true})
	if err != nil || page.Total != n {
		t.Errorf("%d resources written, want %d (%v)", page.Total, n, err)
	}
}

// swappable publishes on whichever bus is current; between a broker stop
// and its restart it fails like a broker that is down.
type swappable struct {
	mu sync.Mutex
	p  bus.Publisher
}

func (s *swappable) set(p bus.Publisher) { s.mu.Lock(); s.p = p; s.mu.Unlock() }

func (s *swappable) Publish(ctx context.Context, msgs []bus.Msg) (int, error) {
	s.mu.Lock()
	p := s.p
	s.mu.Unlock()
	if p == nil {
		return 0, errors.New("broker down")
	}
	return p.Publish(ctx, msgs)
}

// TestBrokerRestartUnderLoad stops and restarts the embedded NATS server on
// the same store while events are being committed: none is lost.
func TestBrokerRestartUnderLoad(t *testing.T) {
	r := newRig(t)
	pub := &swappable{p: r.bus}
	relay := &bus.Relay{Store: r.store, Publisher: pub, Owner: "r", Poll: 10 * time.Millisecond}
	stop := runRelay(t, relay)
	defer stop()
	const batches, per = 10, 40
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range batches {
			commitEvents(t, r.store, i*per, per)
			relay.Notify()
		}
	}()
	waitFor(t, "some events published", 20*time.Second, func() bool {
		b, _ := r.store.Outbox().Backlog(context.Background())
		n := 0
		rows, _ := r.store.Outbox().Pending(context.Background(), 1)
		if len(rows) > 0 {
			n = int(rows[0].Seq)
		}
		return n > 40 || (b == 0 && n > 0)
	})
	pub.set(nil)
	r.stopBus()
	r.startBus()
	pub.set(r.bus)
	<-done
	waitFor(t, "the backlog to drain", 30*time.Second, func() bool {
		b, _ := r.store.Outbox().Backlog(context.Background())
		return b == 0
	})
	ids := r.streamMsgIDs()
	if len(ids) != batches*per {
		t.Fatalf("%d distinct events in the stream after the restart, want %d", len(ids), batches*per)
	}
	for id, c := range ids {
		if c != 1 {
			t.Errorf("%s stored %d times", id, c)
		}
	}
}

// TestRelayPurgesOldIdempotencyKeys: the relay's hourly clean-up drops the
// API's idempotency keys once store.IdempotencyRetention has passed, and
// keeps the younger ones.
func TestRelayPurgesOldIdempotencyKeys(t *testing.T) {
	r := newRig(t)
	clk := clock.NewFake(time.Now().Add(-store.IdempotencyRetention - time.Hour))
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "keys.sqlite"), sqlite.Options{Options: sqlstore.Options{Clock: clk}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	answer := func(key string) {
		t.Helper()
		if _, _, err := s.Idempotency().Answer(context.Background(), store.IdempotentRequest{Scope: "demo Practitioner/a", Key: key, Hash: "h", Status: 201}); err != nil {
			t.Fatal(err)
		}
	}
	answer("old")
	clk.Set(time.Now().Add(-store.IdempotencyRetention + time.Hour))
	answer("young")
	clk.Set(time.Now())
	stop := runRelay(t, &bus.Relay{Store: s, Publisher: r.bus, Owner: "r", Poll: 20 * time.Millisecond, Clock: clk})
	defer stop()
	waitFor(t, "the old key purged", 10*time.Second, func() bool {
		_, err := s.Idempotency().Get(context.Background(), "demo Practitioner/a", "old")
		return errors.Is(err, store.ErrNotFound)
	})
	if _, err := s.Idempotency().Get(context.Background(), "demo Practitioner/a", "young"); err != nil {
		t.Errorf("a key younger than the retention was purged: %v", err)
	}
}
