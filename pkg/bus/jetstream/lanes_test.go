package jetstream

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/bus"
)

// keyed is a message of order key key, carrying its name as data, on the
// created or updated subject of Encounter in turn: a key's order holds
// across the subjects of one consumer.
func keyed(i int, key, name string) bus.Msg {
	op := bus.OpCreated
	if i%2 == 1 {
		op = bus.OpUpdated
	}
	return bus.Msg{Subject: bus.ResourceSubject("t1", "Encounter", op),
		Header: map[string]string{bus.HeaderMsgID: name, bus.HeaderOrderKey: key}, Data: []byte(name)}
}

func publishAll(t *testing.T, b *Bus, msgs []bus.Msg) {
	t.Helper()
	if n, err := b.Publish(t.Context(), msgs); err != nil || n != len(msgs) {
		t.Fatalf("Publish = %d, %v", n, err)
	}
}

var lanesSubject = bus.ResourceSubject("t1", "Encounter", "*")

// lanesLog records what a handler saw: the order of each key, the messages
// of a key handled at once, the most messages handled at once.
type lanesLog struct {
	mu       sync.Mutex
	byKey    map[string][]string
	busy     map[string]bool
	inFlight int
	maxIn    int
	overlaps []string
	handled  int
}

func newLanesLog() *lanesLog {
	return &lanesLog{byKey: map[string][]string{}, busy: map[string]bool{}}
}

func (l *lanesLog) begin(m bus.Msg) {
	l.mu.Lock()
	defer l.mu.Unlock()
	key := m.Header[bus.HeaderOrderKey]
	if l.busy[key] {
		l.overlaps = append(l.overlaps, string(m.Data))
	}
	l.busy[key] = true
	l.inFlight++
	l.maxIn = max(l.maxIn, l.inFlight)
}

func (l *lanesLog) end(m bus.Msg, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	key := m.Header[bus.HeaderOrderKey]
	l.busy[key] = false
	l.inFlight--
	if ok {
		l.byKey[key] = append(l.byKey[key], string(m.Data))
		l.handled++
	}
}

func (l *lanesLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.handled
}

// TestLanesKeepKeyOrder: with Lanes 8, many keys and a handler that takes
// a random while, each key's messages are handled one at a time and in the
// order published, and several are handled at once.
func TestLanesKeepKeyOrder(t *testing.T) {
	srv := startServer(t, ServerConfig{StoreDir: t.TempDir()})
	b := newTestBus(t, Config{Server: srv})
	t.Cleanup(func() { b.Close() })

	const keys, perKey = 30, 8
	var msgs []bus.Msg
	for i := range perKey {
		for k := range keys {
			msgs = append(msgs, keyed(i, fmt.Sprintf("Patient/p%d", k), fmt.Sprintf("p%d-%d", k, i)))
		}
	}
	// Shuffled across keys, in order within each key.
	rand.Shuffle(len(msgs), func(i, j int) { msgs[i], msgs[j] = msgs[j], msgs[i] })
	for k := range keys {
		var idx []int
		for i, m := range msgs {
			if m.Header[bus.HeaderOrderKey] == fmt.Sprintf("Patient/p%d", k) {
				idx = append(idx, i)
			}
		}
		for n, i := range idx {
			msgs[i] = keyed(n, fmt.Sprintf("Patient/p%d", k), fmt.Sprintf("p%d-%d", k, n))
		}
	}
	publishAll(t, b, msgs)

	log := newLanesLog()
	runConsumer(t, b, bus.ConsumerConfig{Durable: "lanes-order", Subject: lanesSubject, Lanes: 8}, func(ctx context.Context, m bus.Msg) error {
		log.begin(m)
		time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
		log.end(m, true)
		return nil
	})
	waitFor(t, "every message handled", func() bool { return log.count() == len(msgs) })

	log.mu.Lock()
	defer log.mu.Unlock()
	if len(log.overlaps) > 0 {
		t.Errorf("messages handled while another of their key was: %v", log.overlaps)
	}
	for k := range keys {
		key := fmt.Sprintf("Patient/p%d", k)
		want := make([]string, perKey)
		for i := range perKey {
			want[i] = fmt.Sprintf("p%d-%d", k, i)
		}
		if got := log.byKey[key]; !slices.Equal(got, want) {
			t.Errorf("%s handled in the order %v, want %v", key, got, want)
		}
	}
	if log.maxIn < 2 {
		t.Errorf("at most %d message handled at once, want several", log.maxIn)
	}
	if log.maxIn > 8 {
		t.Errorf("%d messages handled at once, more than the 8 lanes", log.maxIn)
	}
}

// TestLanesRunKeysAtOnce: the first messages of two keys are handled at the
// same time: each handler waits until the other has started.
func TestLanesRunKeysAtOnce(t *testing.T) {
	srv := startServer(t, ServerConfig{StoreDir: t.TempDir()})
	b := newTestBus(t, Config{Server: srv})
	t.Cleanup(func() { b.Close() })
	publishAll(t, b, []bus.Msg{keyed(0, "Patient/a", "a1"), keyed(1, "Patient/b", "b1")})

	var (
		mu      sync.Mutex
		started int
		both    = make(chan struct{})
		met     = make(chan string, 2)
	)
	runConsumer(t, b, bus.ConsumerConfig{Durable: "lanes-at-once", Subject: lanesSubject, Lanes: 2}, func(ctx context.Context, m bus.Msg) error {
		mu.Lock()
		started++
		if started == 2 {
			close(both)
		}
		mu.Unlock()
		select {
		case <-both:
			met <- string(m.Data)
		case <-ctx.Done():
		}
		return nil
	})
	got := map[string]bool{}
	for range 2 {
		select {
		case name := <-met:
			got[name] = true
		case <-time.After(testTimeout):
			t.Fatalf("the messages of two keys were not handled at the same time (met: %v)", got)
		}
	}
}

// TestLanesHoldBehindRetry: a message that fails and waits out its back-off
// holds back the later messages of its key until it succeeds — they are
// delivered once, waiting does not count as a delivery — while the other
// keys go on: the failing message keeps failing until the other key's last
// message has been handled, so the test ends only if that key went on. It
// fails for longer than AckWait: the held messages are kept alive.
func TestLanesHoldBehindRetry(t *testing.T) {
	srv := startServer(t, ServerConfig{StoreDir: t.TempDir()})
	b := newTestBus(t, Config{Server: srv})
	t.Cleanup(func() { b.Close() })
	publishAll(t, b, []bus.Msg{
		keyed(0, "Patient/a", "a1"), keyed(1, "Patient/a", "a2"), keyed(2, "Patient/b", "b1"),
		keyed(3, "Patient/a", "a3"), keyed(4, "Patient/b", "b2"), keyed(5, "Patient/b", "b3"),
	})

	var (
		mu         sync.Mutex
		seen       []string // name and delivery, in handling order
		bDone      bool
		a1Failures int
	)
	const ackWait = 100 * time.Millisecond
	runConsumer(t, b, bus.ConsumerConfig{Durable: "lanes-retry", Subject: lanesSubject, Lanes: 4, MaxDeliver: 1000,
		AckWait: ackWait, BackOff: []time.Duration{ackWait / 4}}, func(ctx context.Context, m bus.Msg) error {
		mu.Lock()
		defer mu.Unlock()
		name := string(m.Data)
		seen = append(seen, fmt.Sprintf("%s#%d", name, m.NumDelivered))
		switch name {
		case "a1":
			if !bDone || a1Failures < 12 { // 12 back-offs: three times AckWait
				a1Failures++
				return errors.New("not yet")
			}
		case "b3":
			bDone = true
		}
		return nil
	})
	waitFor(t, "a3 handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.ContainsFunc(seen, func(s string) bool { return s == "a3#1" })
	})

	mu.Lock()
	defer mu.Unlock()
	if a1Failures == 0 {
		t.Fatalf("a1 never failed (seen %v): the test proves nothing", seen)
	}
	var a, bs []string
	for _, s := range seen {
		if s[0] == 'a' {
			a = append(a, s)
		} else {
			bs = append(bs, s)
		}
	}
	wantA := []string{}
	for i := range a1Failures + 1 {
		wantA = append(wantA, fmt.Sprintf("a1#%d", i+1))
	}
	wantA = append(wantA, "a2#1", "a3#1")
	if !slices.Equal(a, wantA) {
		t.Errorf("key a handled as %v, want %v", a, wantA)
	}
	if want := []string{"b1#1", "b2#1", "b3#1"}; !slices.Equal(bs, want) {
		t.Errorf("key b handled as %v, want %v", bs, want)
	}
}

// TestLanesPermanentError: a permanent error dead-letters the message at
// once, and the next message of its key is handled after it.
func TestLanesPermanentError(t *testing.T) {
	srv := startServer(t, ServerConfig{StoreDir: t.TempDir()})
	b := newTestBus(t, Config{Server: srv})
	t.Cleanup(func() { b.Close() })
	publishAll(t, b, []bus.Msg{keyed(0, "Patient/a", "a1"), keyed(1, "Patient/a", "a2"), keyed(2, "Patient/b", "b1")})

	var (
		mu   sync.Mutex
		seen []string
	)
	runConsumer(t, b, bus.ConsumerConfig{Durable: "lanes-permanent", Subject: lanesSubject, Lanes: 4,
		BackOff: []time.Duration{time.Minute}}, func(ctx context.Context, m bus.Msg) error {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, fmt.Sprintf("%s#%d", m.Data, m.NumDelivered))
		if string(m.Data) == "a1" {
			return bus.Permanent(errors.New("cannot be read"))
		}
		return nil
	})
	waitFor(t, "a2 and b1 handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == 3
	})
	mu.Lock()
	var a []string
	for _, s := range seen {
		if s[0] == 'a' {
			a = append(a, s)
		}
	}
	mu.Unlock()
	if want := []string{"a1#1", "a2#1"}; !slices.Equal(a, want) {
		t.Errorf("key a handled as %v, want %v", a, want)
	}
	dls, err := b.DeadLetters(t.Context(), 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 1 || string(dls[0].Msg.Data) != "a1" || dls[0].Durable != "lanes-permanent" {
		t.Errorf("dead letters %+v, want a1 of lanes-permanent", dls)
	}
}

// TestLanesShutdownHandsBack: a consumer stopped while messages of a key
// are held behind one that failed hands them back; the next run handles
// every message, and none is dead-lettered for having waited.
func TestLanesShutdownHandsBack(t *testing.T) {
	srv := startServer(t, ServerConfig{StoreDir: t.TempDir()})
	b := newTestBus(t, Config{Server: srv})
	t.Cleanup(func() { b.Close() })
	publishAll(t, b, []bus.Msg{keyed(0, "Patient/a", "a1"), keyed(1, "Patient/a", "a2"), keyed(2, "Patient/a", "a3")})
	// Long enough for a1 not to come back before the first run stops.
	cfg := bus.ConsumerConfig{Durable: "lanes-stop", Subject: lanesSubject, Lanes: 4,
		BackOff: []time.Duration{2 * time.Second}}

	// First run: a1 fails; a2 and a3 arrive and are held behind it.
	var (
		mu    sync.Mutex
		first []string
	)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- b.Consume(ctx, cfg, func(ctx context.Context, m bus.Msg) error {
			mu.Lock()
			defer mu.Unlock()
			first = append(first, string(m.Data))
			return errors.New("down")
		})
	}()
	waitFor(t, "a1 failed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(first) > 0
	})
	waitFor(t, "a2 and a3 delivered", func() bool {
		info, err := b.js.Consumer(t.Context(), b.StreamName(bus.StreamFHIR), cfg.Durable)
		return err == nil && info.CachedInfo().NumAckPending == 3
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Consume: %v", err)
	}
	mu.Lock()
	if !slices.Equal(first, []string{"a1"}) {
		t.Errorf("first run handled %v, want a1 only (a2 and a3 held)", first)
	}
	mu.Unlock()

	// Second run: everything is handled (a2 and a3 may come before a1: the
	// one case where a key's order does not hold).
	var seen []string
	runConsumer(t, b, cfg, func(ctx context.Context, m bus.Msg) error {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, string(m.Data))
		return nil
	})
	waitFor(t, "every message handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == 3
	})
	mu.Lock()
	slices.Sort(seen)
	if !slices.Equal(seen, []string{"a1", "a2", "a3"}) {
		t.Errorf("second run handled %v, want a1, a2, a3", seen)
	}
	mu.Unlock()
	if dls, err := b.DeadLetters(t.Context(), 0, 10); err != nil || len(dls) != 0 {
		t.Errorf("dead letters %+v (%v), want none", dls, err)
	}
}
