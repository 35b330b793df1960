package bus_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/bus/jetstream"
	"github.com/passerelle-sante/passerelle/pkg/clock"
	"github.com/passerelle-sante/passerelle/pkg/store"
	"github.com/passerelle-sante/passerelle/pkg/store/sqlite"
	"github.com/passerelle-sante/passerelle/pkg/store/sqlstore"
)

// smallPayloadBus is a real embedded server whose maximum payload is 64 KiB,
// below the store's event bound: an event the store takes that the broker
// refuses, as a broker configured below the default would.
func smallPayloadBus(t *testing.T, dir string) *jetstream.Bus {
	t.Helper()
	srv, err := jetstream.StartServer(jetstream.ServerConfig{StoreDir: filepath.Join(dir, "nats"), MaxPayload: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	b, err := jetstream.New(context.Background(), jetstream.Config{Server: srv})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = b.Close()
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	return b
}

func emit(t *testing.T, s store.Store, id string, data []byte) {
	t.Helper()
	err := s.Tx(context.Background(), func(tx store.Tx) error {
		return tx.Emit(context.Background(), store.Event{Subject: bus.ResourceSubject("demo", "Encounter", bus.OpUpdated),
			MsgID: id, Key: "Encounter/e1", Data: data})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestRefusedEventDeadLettered: an event the broker refuses (maximum payload
// exceeded) goes to the dead-letter stream with an error, and the discharge
// behind it is delivered; the outbox is empty and not stuck. Before, the
// relay retried the refused event for ever and nothing behind it moved.
func TestRefusedEventDeadLettered(t *testing.T) {
	dir := t.TempDir()
	s, err := sqlite.Open(context.Background(), filepath.Join(dir, "db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	b := smallPayloadBus(t, dir)

	emit(t, s, "Encounter/e1/_history/1", []byte(`{"n":1}`))
	emit(t, s, "Encounter/e1/_history/2", bytes.Repeat([]byte("x"), 100<<10))
	emit(t, s, "Encounter/e1/_history/3", []byte(`{"n":3}`))

	reg := prometheus.NewRegistry()
	relay := &bus.Relay{Store: s, Publisher: b, DeadLetters: b, Owner: "r", Poll: 10 * time.Millisecond, Metrics: reg}
	relay.Init()
	stop := runRelay(t, relay)
	defer stop()

	var mu sync.Mutex
	var got []string
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = b.Consume(ctx, bus.ConsumerConfig{Durable: "pathway", Subject: "fhir.demo.Encounter.>"}, func(_ context.Context, m bus.Msg) error {
			mu.Lock()
			got = append(got, m.Header[bus.HeaderMsgID])
			mu.Unlock()
			return nil
		})
	}()
	defer func() { cancel(); <-done }()
	waitFor(t, "the event behind the refused one delivered", 30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 2
	})
	mu.Lock()
	if strings.Join(got, " ") != "Encounter/e1/_history/1 Encounter/e1/_history/3" {
		t.Errorf("delivered %v", got)
	}
	mu.Unlock()

	dls, err := b.DeadLetters(context.Background(), 0, 10)
	if err != nil || len(dls) != 1 {
		t.Fatalf("dead letters: %+v %v", dls, err)
	}
	dl := dls[0]
	if dl.Durable != bus.RelayDurable || dl.Subject != "fhir.demo.Encounter.updated" || !strings.Contains(dl.Error, "maximum payload") ||
		dl.Msg.Header[bus.HeaderMsgID] != "Encounter/e1/_history/2" {
		t.Errorf("dead letter: %+v", dl)
	}
	if err := b.Replay(context.Background(), dl.ID); !errors.Is(err, bus.ErrNoContent) {
		t.Errorf("replaying a dead letter whose content could not be kept: %v", err)
	}
	waitFor(t, "every row marked", 30*time.Second, func() bool {
		n, err := s.Outbox().Backlog(context.Background())
		return err == nil && n == 0
	})
	if err := relay.Check(context.Background()); err != nil {
		t.Errorf("check: %v", err)
	}
	if n := metricValue(t, reg, "passerelle_outbox_dead_lettered_total"); n != 1 {
		t.Errorf("passerelle_outbox_dead_lettered_total = %v", n)
	}
}

// metricValue is the value of a counter or gauge of reg (0 when it has no
// sample yet).
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		var v float64
		for _, m := range mf.GetMetric() {
			v += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
		return v
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

// TestStuckOutboxReported: an event the relay cannot publish (no dead-letter
// stream to take it) holds the outbox; Check reports it stuck once the oldest
// unsent event is older than StuckAfter, and the oldest-unsent gauge says how
// old. Before, /readyz kept answering ready.
func TestStuckOutboxReported(t *testing.T) {
	dir := t.TempDir()
	clk := clock.NewFake(time.Date(2026, 10, 3, 12, 0, 0, 0, time.UTC))
	s, err := sqlite.Open(context.Background(), filepath.Join(dir, "db"), sqlite.Options{Options: sqlstore.Options{Clock: clk}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	b := smallPayloadBus(t, dir)
	emit(t, s, "Encounter/e1/_history/1", bytes.Repeat([]byte("x"), 100<<10))

	reg := prometheus.NewRegistry()
	relay := &bus.Relay{Store: s, Publisher: b, Clock: clk, Owner: "r", Poll: 10 * time.Millisecond, StuckAfter: time.Minute, Metrics: reg}
	relay.Init()
	stop := runRelay(t, relay)
	defer stop()
	waitFor(t, "a failed publish", 30*time.Second, func() bool {
		return metricValue(t, reg, "passerelle_outbox_publish_failures_total") > 0
	})
	if err := relay.Check(context.Background()); err != nil {
		t.Errorf("check before StuckAfter: %v", err)
	}
	clk.Advance(2 * time.Minute)
	if err := relay.Check(context.Background()); !errors.Is(err, bus.ErrOutboxStuck) || !strings.Contains(err.Error(), "fhir.demo.Encounter.updated") {
		t.Errorf("check after StuckAfter: %v", err)
	}
	waitFor(t, "the oldest-unsent gauge", 30*time.Second, func() bool {
		return metricValue(t, reg, "passerelle_outbox_oldest_unsent_seconds") >= 120
	})
}
