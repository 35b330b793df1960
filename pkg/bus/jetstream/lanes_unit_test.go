package jetstream

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/passerelle-sante/passerelle/pkg/bus"
)

// fakeMsg is a delivery the lanes are handed directly, without a server,
// for what a server cannot be made to do on cue: lose a message that went
// away, redeliver one that is held.
type fakeMsg struct {
	seq, delivered uint64
	key, name      string

	mu       sync.Mutex
	acked    bool
	naks     []time.Duration
	released bool
}

func (m *fakeMsg) Metadata() (*jetstream.MsgMetadata, error) {
	return &jetstream.MsgMetadata{Sequence: jetstream.SequencePair{Stream: m.seq, Consumer: m.seq}, NumDelivered: m.delivered}, nil
}
func (m *fakeMsg) Data() []byte { return []byte(m.name) }
func (m *fakeMsg) Headers() nats.Header {
	return nats.Header{bus.HeaderOrderKey: []string{m.key}}
}
func (m *fakeMsg) Subject() string { return "fhir.t1.Encounter.updated" }
func (m *fakeMsg) Reply() string   { return "" }
func (m *fakeMsg) Ack() error      { return m.DoubleAck(context.Background()) }
func (m *fakeMsg) DoubleAck(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.acked = true
	return nil
}
func (m *fakeMsg) Nak() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.released = true
	return nil
}
func (m *fakeMsg) NakWithDelay(d time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.naks = append(m.naks, d)
	return nil
}
func (m *fakeMsg) InProgress() error           { return nil }
func (m *fakeMsg) Term() error                 { return errors.New("not used") }
func (m *fakeMsg) TermWithReason(string) error { return errors.New("not used") }
func (m *fakeMsg) state() (acked, naked, released bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.acked, len(m.naks) > 0, m.released
}

// fakeLanes runs lanes for h without a server.
func fakeLanes(t *testing.T, h bus.Handler) *lanes {
	t.Helper()
	met, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	b := &Bus{metrics: met, log: testLogger(t)}
	cfg := bus.ConsumerConfig{Durable: "fake", Subject: "fhir.t1.Encounter.*", Lanes: 4, MaxDeliver: 5,
		AckWait: 30 * time.Millisecond, BackOff: []time.Duration{20 * time.Millisecond}}
	c := &consumer{b: b, cfg: cfg, h: h, stream: bus.StreamFHIR, window: cfg.Lanes, log: b.log}
	ctx, cancel := context.WithCancel(context.Background())
	l := newLanes(ctx, c)
	t.Cleanup(func() {
		cancel()
		l.close()
	})
	return l
}

func (l *lanes) held(key string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if ln := l.keys[key]; ln != nil {
		return len(ln.queue)
	}
	return 0
}

// TestLanesAwayNotBack: when a message that went away does not come back
// (another process received it), its key's held messages go on once its
// back-off, AckWait and awayGrace have passed, rather than waiting for
// good; if it comes back later, it is handled as any other.
func TestLanesAwayNotBack(t *testing.T) {
	defer func(g time.Duration) { awayGrace = g }(awayGrace)
	awayGrace = 20 * time.Millisecond
	var (
		mu      sync.Mutex
		handled []string
	)
	l := fakeLanes(t, func(_ context.Context, m bus.Msg) error {
		mu.Lock()
		defer mu.Unlock()
		handled = append(handled, fmt.Sprintf("%s#%d", m.Data, m.NumDelivered))
		if string(m.Data) == "a1" && m.NumDelivered == 1 {
			return errors.New("not yet")
		}
		return nil
	})
	a1 := &fakeMsg{seq: 1, delivered: 1, key: "Patient/a", name: "a1"}
	a2 := &fakeMsg{seq: 2, delivered: 1, key: "Patient/a", name: "a2"}
	l.arrive(a1)
	waitFor(t, "a1 negatively acknowledged", func() bool { _, naked, _ := a1.state(); return naked })
	l.arrive(a2)
	if n := l.held("Patient/a"); n != 1 {
		t.Fatalf("%d messages held behind a1 away, want a2", n)
	}
	waitFor(t, "a2 handled without a1", func() bool { acked, _, _ := a2.state(); return acked })

	// a1 comes back after all: handled, though after a2.
	a1again := &fakeMsg{seq: 1, delivered: 2, key: "Patient/a", name: "a1"}
	l.arrive(a1again)
	waitFor(t, "a1 handled", func() bool { acked, _, _ := a1again.state(); return acked })
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"a1#1", "a2#1", "a1#2"}; !slices.Equal(handled, want) {
		t.Errorf("handled %v, want %v", handled, want)
	}
}

// TestLanesHeldRedelivered: a held message that the server delivers again
// (its in-progress signals were lost) is held once, as its latest
// delivery, and handled once.
func TestLanesHeldRedelivered(t *testing.T) {
	var (
		mu      sync.Mutex
		handled []string
	)
	release := make(chan struct{})
	l := fakeLanes(t, func(ctx context.Context, m bus.Msg) error {
		if string(m.Data) == "b1" {
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		mu.Lock()
		defer mu.Unlock()
		handled = append(handled, fmt.Sprintf("%s#%d", m.Data, m.NumDelivered))
		return nil
	})
	b1 := &fakeMsg{seq: 1, delivered: 1, key: "Patient/b", name: "b1"}
	b2 := &fakeMsg{seq: 2, delivered: 1, key: "Patient/b", name: "b2"}
	b2again := &fakeMsg{seq: 2, delivered: 2, key: "Patient/b", name: "b2"}
	l.arrive(b1)
	l.arrive(b2)
	l.arrive(b2again)
	if n := l.held("Patient/b"); n != 1 {
		t.Fatalf("%d messages held behind b1, want b2 once", n)
	}
	close(release)
	waitFor(t, "b2 handled", func() bool { acked, _, _ := b2again.state(); return acked })
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"b1#1", "b2#2"}; !slices.Equal(handled, want) {
		t.Errorf("handled %v, want %v", handled, want)
	}
	if acked, _, _ := b2.state(); acked {
		t.Error("the older delivery of b2 was acknowledged too")
	}
}
