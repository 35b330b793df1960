// Package bustest is the conformance suite of bus.Bus. Every implementation
// runs it against a real server:
//
//	bustest.Run(t, func(t *testing.T) bus.Bus { return newEmbeddedBus(t) })
//
// Each subtest runs in parallel on a bus of its own from newBus, and also uses
// subjects, tenants and durable names of its own, so that the suite can share
// a server with other runs. The suite closes the buses it gets.
package bustest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// Timeouts of the suite. Deliveries take milliseconds; these only bound how
// long a broken implementation makes the suite wait.
const (
	waitTimeout = 20 * time.Second
	pollEvery   = 10 * time.Millisecond
)

// fastBackOff keeps redelivery tests short.
var fastBackOff = []time.Duration{50 * time.Millisecond}

// Run runs the conformance suite on buses made by newBus.
func Run(t *testing.T, newBus func(t *testing.T) bus.Bus) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, b bus.Bus)
	}{
		{"Ping", testPing},
		{"RoundTripHeaders", testRoundTripHeaders},
		{"OrderConcurrencyOne", testOrder},
		{"Concurrency", testConcurrency},
		{"DuplicateMsgID", testDuplicate},
		{"PublishAckedPrefix", testAckedPrefix},
		{"RetryThenSuccess", testRetry},
		{"DeadLetterAfterMaxDeliver", testDeadLetter},
		{"PermanentError", testPermanent},
		{"Replay", testReplay},
		{"ReplayFailsAgain", testReplayFailsAgain},
		{"ReplayUnknown", testReplayUnknown},
		{"ReplayForOtherDurableSkipped", testReplayForOther},
		{"DeadLettersPaging", testDeadLettersPaging},
		{"Restart", testRestart},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := newBus(t)
			t.Cleanup(func() {
				if err := b.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(t, b)
		})
	}
}

// names is a subtest's own tenant and durable names.
type names struct{ id string }

func newNames(t *testing.T) names {
	t.Helper()
	var r [5]byte
	if _, err := rand.Read(r[:]); err != nil {
		t.Fatal(err)
	}
	return names{id: hex.EncodeToString(r[:])}
}

func (n names) tenant() string             { return "t" + n.id }
func (n names) durable(role string) string { return role + "-" + n.id }
func (n names) subject(resource, op string) string {
	return bus.ResourceSubject(n.tenant(), resource, op)
}

// msg is an event with the headers a publisher sets.
func msg(subject, id string, data string) bus.Msg {
	return bus.Msg{
		Subject: subject,
		Header: map[string]string{
			bus.HeaderMsgID:       id,
			bus.HeaderEventID:     id,
			bus.HeaderTraceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		},
		Data: []byte(data),
	}
}

func publish(t *testing.T, b bus.Bus, msgs ...bus.Msg) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	n, err := b.Publish(ctx, msgs)
	if err != nil || n != len(msgs) {
		t.Fatalf("Publish(%d messages) = %d, %v; want %d, nil", len(msgs), n, err, len(msgs))
	}
}

// consume runs Consume in the background until the end of the test, and
// checks it then returns nil. The returned stop ends it earlier.
func consume(t *testing.T, b bus.Bus, cfg bus.ConsumerConfig, h bus.Handler) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Consume(ctx, cfg, h) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Consume(%s) returned %v after its context ended; want nil", cfg.Durable, err)
				}
			case <-time.After(waitTimeout):
				t.Errorf("Consume(%s) did not return %s after its context ended", cfg.Durable, waitTimeout)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out after %s waiting for %s", waitTimeout, what)
		case <-tick.C:
		}
	}
}

// recorder collects what a handler saw.
type recorder struct {
	mu   sync.Mutex
	msgs []bus.Msg
}

func (r *recorder) add(m bus.Msg) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, m)
}

func (r *recorder) all() []bus.Msg {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]bus.Msg(nil), r.msgs...)
}

func (r *recorder) count(data string) int {
	n := 0
	for _, m := range r.all() {
		if string(m.Data) == data {
			n++
		}
	}
	return n
}

func (r *recorder) has(data string) func() bool {
	return func() bool { return r.count(data) > 0 }
}

func deadLettersOf(t *testing.T, b bus.Bus, durable string) []bus.DeadLetter {
	t.Helper()
	var out []bus.DeadLetter
	var after uint64
	for {
		page, err := b.DeadLetters(t.Context(), after, 100)
		if err != nil {
			t.Fatalf("DeadLetters(%d, 100): %v", after, err)
		}
		if len(page) == 0 {
			return out
		}
		for _, dl := range page {
			if dl.Durable == durable {
				out = append(out, dl)
			}
			after = dl.ID
		}
	}
}

func testPing(t *testing.T, b bus.Bus) {
	if err := b.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func testRoundTripHeaders(t *testing.T, b bus.Bus) {
	n := newNames(t)
	subject := n.subject("Encounter", bus.OpCreated)
	header := map[string]string{
		bus.HeaderMsgID:        "Encounter/e1/_history/1",
		bus.HeaderTraceparent:  "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		bus.HeaderResourceType: "Encounter",
		bus.HeaderVersion:      "1",
		bus.HeaderTenant:       n.tenant(),
		bus.HeaderEventID:      "Encounter/e1/_history/1",
		"x-lower-case":         "kept as is",
		"X-MiXeD-CaSe":         "also kept",
	}
	data := `{"resourceType":"Encounter","id":"e1"}`
	publish(t, b, bus.Msg{Subject: subject, Header: header, Data: []byte(data)})

	var rec recorder
	consume(t, b, bus.ConsumerConfig{Durable: n.durable("roundtrip"), Subject: subject}, func(_ context.Context, m bus.Msg) error {
		rec.add(m)
		return nil
	})
	waitFor(t, "the message", rec.has(data))
	got := rec.all()[0]
	if got.Subject != subject {
		t.Errorf("Subject = %q, want %q", got.Subject, subject)
	}
	if string(got.Data) != data {
		t.Errorf("Data = %q, want %q", got.Data, data)
	}
	for k, v := range header {
		if gv, ok := got.Header[k]; !ok || gv != v {
			t.Errorf("Header[%q] = %q (present %v), want %q", k, gv, ok, v)
		}
	}
	// Names must come back exactly as sent, not canonicalised.
	for _, k := range []string{"Traceparent", "X-Lower-Case", "X-Mixed-Case", "NATS-Msg-Id"} {
		if _, ok := got.Header[k]; ok {
			t.Errorf("Header has %q: header names were rewritten", k)
		}
	}
	if got.Stream != bus.StreamFHIR {
		t.Errorf("Stream = %q, want %q", got.Stream, bus.StreamFHIR)
	}
	if got.StreamSeq == 0 {
		t.Errorf("StreamSeq = 0, want the stream sequence")
	}
	if got.NumDelivered != 1 {
		t.Errorf("NumDelivered = %d, want 1", got.NumDelivered)
	}
}

func testOrder(t *testing.T, b bus.Bus) {
	n := newNames(t)
	subject := n.subject("Task", bus.OpUpdated)
	const total = 200
	var batch []bus.Msg
	for i := range total / 2 {
		batch = append(batch, msg(subject, fmt.Sprintf("Task/t/_history/%d", i), strconv.Itoa(i)))
	}
	publish(t, b, batch...) // one call, many in flight
	for i := total / 2; i < total; i++ {
		publish(t, b, msg(subject, fmt.Sprintf("Task/t/_history/%d", i), strconv.Itoa(i)))
	}

	// The tenth message fails once: with Concurrency 1 the order must hold
	// through its redelivery too.
	var (
		mu     sync.Mutex
		order  []int
		failed bool
	)
	consume(t, b, bus.ConsumerConfig{Durable: n.durable("order"), Subject: subject, BackOff: fastBackOff}, func(_ context.Context, m bus.Msg) error {
		i, err := strconv.Atoi(string(m.Data))
		if err != nil {
			return bus.Permanent(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if i == 10 && !failed {
			failed = true
			return errors.New("transient failure")
		}
		order = append(order, i)
		return nil
	})
	waitFor(t, "all messages", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(order) >= total
	})
	mu.Lock()
	defer mu.Unlock()
	for i, got := range order {
		if got != i {
			t.Fatalf("handled order[%d] = %d, want %d (order %v)", i, got, i, order)
		}
	}
}

func testConcurrency(t *testing.T, b bus.Bus) {
	n := newNames(t)
	subject := n.subject("Observation", bus.OpCreated)
	const total, conc = 40, 4
	var batch []bus.Msg
	for i := range total {
		batch = append(batch, msg(subject, fmt.Sprintf("Observation/o%d/_history/1", i), strconv.Itoa(i)))
	}
	publish(t, b, batch...)

	// The first handlers wait until conc of them run at once, which proves
	// the deliveries are handled concurrently.
	var (
		inFlight, maxInFlight atomic.Int32
		all                   = make(chan struct{})
		allOnce               sync.Once
		rec                   recorder
	)
	consume(t, b, bus.ConsumerConfig{Durable: n.durable("conc"), Subject: subject, Concurrency: conc}, func(ctx context.Context, m bus.Msg) error {
		cur := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			old := maxInFlight.Load()
			if cur <= old || maxInFlight.CompareAndSwap(old, cur) {
				break
			}
		}
		if cur == conc {
			allOnce.Do(func() { close(all) })
		}
		select {
		case <-all:
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(waitTimeout):
			return errors.New("handlers never ran concurrently")
		}
		rec.add(m)
		return nil
	})
	waitFor(t, "all messages", func() bool { return len(rec.all()) >= total })
	if got := maxInFlight.Load(); got != conc {
		t.Errorf("at most %d handlers ran at once, want %d", got, conc)
	}
	seen := map[string]int{}
	for _, m := range rec.all() {
		seen[string(m.Data)]++
	}
	for i := range total {
		if seen[strconv.Itoa(i)] != 1 {
			t.Errorf("message %d handled %d times, want 1", i, seen[strconv.Itoa(i)])
		}
	}
}

func testDuplicate(t *testing.T, b bus.Bus) {
	n := newNames(t)
	subject := n.subject("Patient", bus.OpUpdated)
	publish(t, b, msg(subject, "Patient/p1/_history/1", "first"))
	// A relay re-sending after a lost acknowledgement: same id, stored once.
	publish(t, b, msg(subject, "Patient/p1/_history/1", "first"))
	publish(t, b, msg(subject, "Patient/p1/_history/1", "first"), msg(subject, "Patient/p1/_history/2", "second"))

	var rec recorder
	consume(t, b, bus.ConsumerConfig{Durable: n.durable("dup"), Subject: subject}, func(_ context.Context, m bus.Msg) error {
		rec.add(m)
		return nil
	})
	// In order, so once "second" is handled every copy of "first" was.
	waitFor(t, "the second message", rec.has("second"))
	if got := rec.count("first"); got != 1 {
		t.Errorf("first message delivered %d times, want 1", got)
	}
}

func testAckedPrefix(t *testing.T, b bus.Bus) {
	n := newNames(t)
	subject := n.subject("Encounter", bus.OpUpdated)
	msgs := []bus.Msg{
		msg(subject, "Encounter/a/_history/1", "a"),
		msg(subject, "Encounter/b/_history/1", "b"),
		msg("nowhere."+n.tenant(), "Encounter/c/_history/1", "c"), // in no stream
		msg(subject, "Encounter/d/_history/1", "d"),
	}
	acked, err := b.Publish(t.Context(), msgs)
	if err == nil || acked != 2 {
		t.Fatalf("Publish with a message in no stream at index 2 = %d, %v; want 2 and an error", acked, err)
	}
	acked, err = b.Publish(t.Context(), nil)
	if err != nil || acked != 0 {
		t.Fatalf("Publish(nil) = %d, %v; want 0, nil", acked, err)
	}
}

func testRetry(t *testing.T, b bus.Bus) {
	n := newNames(t)
	subject := n.subject("CarePlan", bus.OpCreated)
	durable := n.durable("retry")
	publish(t, b, msg(subject, "CarePlan/c1/_history/1", "flaky"))

	var (
		calls atomic.Int32
		rec   recorder
	)
	consume(t, b, bus.ConsumerConfig{Durable: durable, Subject: subject, MaxDeliver: 5, BackOff: fastBackOff}, func(_ context.Context, m bus.Msg) error {
		if calls.Add(1) <= 2 {
			return errors.New("database unavailable")
		}
		rec.add(m)
		return nil
	})
	waitFor(t, "the third delivery", rec.has("flaky"))
	got := rec.all()[0]
	if got.NumDelivered != 3 {
		t.Errorf("NumDelivered = %d, want 3", got.NumDelivered)
	}
	if dls := deadLettersOf(t, b, durable); len(dls) != 0 {
		t.Errorf("dead letters of %s = %d, want none", durable, len(dls))
	}
}

func testDeadLetter(t *testing.T, b bus.Bus) {
	n := newNames(t)
	subject := n.subject("Task", bus.OpCreated)
	durable := n.durable("dl")
	poison := msg(subject, "Task/x/_history/1", "poison")
	poison.Header[bus.HeaderResourceType] = "Task"
	publish(t, b, poison, msg(subject, "Task/y/_history/1", "sentinel"))

	var (
		poisonCalls atomic.Int32
		rec         recorder
	)
	consume(t, b, bus.ConsumerConfig{Durable: durable, Subject: subject, MaxDeliver: 3, BackOff: fastBackOff}, func(_ context.Context, m bus.Msg) error {
		if string(m.Data) == "poison" {
			poisonCalls.Add(1)
			return fmt.Errorf("boom %d", 42)
		}
		rec.add(m)
		return nil
	})
	// The sentinel comes after the poison message, which holds it back until
	// it is dead-lettered.
	waitFor(t, "the sentinel", rec.has("sentinel"))
	if got := poisonCalls.Load(); got != 3 {
		t.Errorf("poison message handled %d times, want MaxDeliver = 3", got)
	}
	var dls []bus.DeadLetter
	waitFor(t, "the dead letter", func() bool {
		dls = deadLettersOf(t, b, durable)
		return len(dls) > 0
	})
	if len(dls) != 1 {
		t.Fatalf("dead letters of %s = %d, want 1", durable, len(dls))
	}
	dl := dls[0]
	if dl.ID == 0 {
		t.Errorf("ID = 0")
	}
	if dl.Subject != subject || dl.Msg.Subject != subject {
		t.Errorf("Subject = %q, Msg.Subject = %q, want %q", dl.Subject, dl.Msg.Subject, subject)
	}
	if !strings.Contains(dl.Error, "boom 42") {
		t.Errorf("Error = %q, want the handler's error", dl.Error)
	}
	if string(dl.Msg.Data) != "poison" {
		t.Errorf("Msg.Data = %q, want the original data", dl.Msg.Data)
	}
	for k, v := range poison.Header {
		if dl.Msg.Header[k] != v {
			t.Errorf("Msg.Header[%q] = %q, want %q", k, dl.Msg.Header[k], v)
		}
	}
	if dl.Msg.StreamSeq == 0 || dl.Msg.Stream != bus.StreamFHIR {
		t.Errorf("Msg.Stream, StreamSeq = %q, %d; want %q and the original sequence", dl.Msg.Stream, dl.Msg.StreamSeq, bus.StreamFHIR)
	}
	if dl.Msg.NumDelivered != 3 {
		t.Errorf("Msg.NumDelivered = %d, want 3", dl.Msg.NumDelivered)
	}
	if dl.Time.IsZero() || time.Since(dl.Time) > time.Hour {
		t.Errorf("Time = %v, want about now", dl.Time)
	}
}

func testPermanent(t *testing.T, b bus.Bus) {
	n := newNames(t)
	subject := n.subject("Encounter", bus.OpCreated)
	durable := n.durable("perm")
	publish(t, b, msg(subject, "Encounter/bad/_history/1", "invalid"), msg(subject, "Encounter/ok/_history/1", "sentinel"))

	var (
		calls atomic.Int32
		rec   recorder
	)
	consume(t, b, bus.ConsumerConfig{Durable: durable, Subject: subject, MaxDeliver: 5, BackOff: fastBackOff}, func(_ context.Context, m bus.Msg) error {
		if string(m.Data) == "invalid" {
			calls.Add(1)
			return bus.Permanent(errors.New("no resourceType"))
		}
		rec.add(m)
		return nil
	})
	waitFor(t, "the sentinel", rec.has("sentinel"))
	if got := calls.Load(); got != 1 {
		t.Errorf("permanently failing message handled %d times, want 1", got)
	}
	var dls []bus.DeadLetter
	waitFor(t, "the dead letter", func() bool {
		dls = deadLettersOf(t, b, durable)
		return len(dls) > 0
	})
	if len(dls) != 1 || dls[0].Msg.NumDelivered != 1 || !strings.Contains(dls[0].Error, "no resourceType") {
		t.Fatalf("dead letters = %+v; want one, delivered once, with the handler's error", dls)
	}
}

func testReplay(t *testing.T, b bus.Bus) {
	n := newNames(t)
	subject := n.subject("EpisodeOfCare", bus.OpCreated)
	failing, other := n.durable("failing"), n.durable("other")
	const origID = "EpisodeOfCare/ep1/_history/1"
	orig := msg(subject, origID, "episode")
	delete(orig.Header, bus.HeaderEventID) // replay must derive it from Nats-Msg-Id
	publish(t, b, orig)

	var (
		fixed           atomic.Bool
		failingRec, rec recorder
	)
	consume(t, b, bus.ConsumerConfig{Durable: failing, Subject: subject, MaxDeliver: 2, BackOff: fastBackOff}, func(_ context.Context, m bus.Msg) error {
		if !fixed.Load() {
			return errors.New("bug in handler")
		}
		failingRec.add(m)
		return nil
	})
	consume(t, b, bus.ConsumerConfig{Durable: other, Subject: subject}, func(_ context.Context, m bus.Msg) error {
		rec.add(m)
		return nil
	})
	var dls []bus.DeadLetter
	waitFor(t, "the dead letter", func() bool {
		dls = deadLettersOf(t, b, failing)
		return len(dls) > 0
	})
	waitFor(t, "the other consumer", rec.has("episode"))

	fixed.Store(true)
	if err := b.Replay(t.Context(), dls[0].ID); err != nil {
		t.Fatalf("Replay(%d): %v", dls[0].ID, err)
	}
	waitFor(t, "the replayed message", failingRec.has("episode"))
	got := failingRec.all()[0]
	if got.Subject != subject {
		t.Errorf("replayed Subject = %q, want %q", got.Subject, subject)
	}
	if got.Header[bus.HeaderReplayFor] != failing {
		t.Errorf("replayed %s = %q, want %q", bus.HeaderReplayFor, got.Header[bus.HeaderReplayFor], failing)
	}
	if got.Header[bus.HeaderEventID] != origID {
		t.Errorf("replayed %s = %q, want the original id %q", bus.HeaderEventID, got.Header[bus.HeaderEventID], origID)
	}
	if id := got.Header[bus.HeaderMsgID]; id == "" || id == origID {
		t.Errorf("replayed %s = %q, want a new id", bus.HeaderMsgID, id)
	}
	if got.Header[bus.HeaderTraceparent] != orig.Header[bus.HeaderTraceparent] {
		t.Errorf("replayed traceparent = %q, want the original", got.Header[bus.HeaderTraceparent])
	}

	// The other durable skips the replay: a message published after it
	// reaches it only once the replay was passed over.
	publish(t, b, msg(subject, "EpisodeOfCare/ep2/_history/1", "after"))
	waitFor(t, "the message after the replay", rec.has("after"))
	if got := rec.count("episode"); got != 1 {
		t.Errorf("other durable handled the message %d times, want 1 (replays are for %s only)", got, failing)
	}
	if dls := deadLettersOf(t, b, failing); len(dls) != 0 {
		t.Errorf("dead letters after replay = %d, want 0", len(dls))
	}
	if err := b.Replay(t.Context(), dls[0].ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second Replay(%d) = %v, want an error wrapping store.ErrNotFound", dls[0].ID, err)
	}
}

// testReplayFailsAgain replays a dead letter to a handler that still fails:
// it must land in the dead-letter stream again, not be dropped as a duplicate
// of the first dead letter.
func testReplayFailsAgain(t *testing.T, b bus.Bus) {
	n := newNames(t)
	subject := n.subject("CareTeam", bus.OpUpdated)
	durable := n.durable("stubborn")
	const id = "CareTeam/ct1/_history/3"
	publish(t, b, msg(subject, id, "team"))
	var calls atomic.Int32
	consume(t, b, bus.ConsumerConfig{Durable: durable, Subject: subject, MaxDeliver: 1}, func(context.Context, bus.Msg) error {
		calls.Add(1)
		return errors.New("still broken")
	})
	var first []bus.DeadLetter
	waitFor(t, "the first dead letter", func() bool {
		first = deadLettersOf(t, b, durable)
		return len(first) > 0
	})
	if err := b.Replay(t.Context(), first[0].ID); err != nil {
		t.Fatalf("Replay(%d): %v", first[0].ID, err)
	}
	var second []bus.DeadLetter
	waitFor(t, "the second dead letter", func() bool {
		second = deadLettersOf(t, b, durable)
		return len(second) > 0 && second[0].ID != first[0].ID
	})
	if len(second) != 1 {
		t.Fatalf("dead letters after a failed replay = %d, want 1 (the first was removed)", len(second))
	}
	h := second[0].Msg.Header
	if h[bus.HeaderReplayFor] != durable || h[bus.HeaderEventID] != id {
		t.Errorf("second dead letter headers %s = %q, %s = %q; want %q, %q", bus.HeaderReplayFor, h[bus.HeaderReplayFor], bus.HeaderEventID, h[bus.HeaderEventID], durable, id)
	}
	if got := calls.Load(); got != 2 {
		t.Errorf("handler called %d times, want 2 (first delivery, replay)", got)
	}
}

func testReplayUnknown(t *testing.T, b bus.Bus) {
	err := b.Replay(t.Context(), 1<<62)
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Replay(unknown) = %v, want an error wrapping store.ErrNotFound", err)
	}
}

func testReplayForOther(t *testing.T, b bus.Bus) {
	n := newNames(t)
	subject := n.subject("Task", bus.OpUpdated)
	replayed := msg(subject, "Task/z/_history/1/replay/7", "replayed")
	replayed.Header[bus.HeaderReplayFor] = n.durable("someone-else")
	mine := msg(subject, "Task/z/_history/2/replay/8", "mine")
	mine.Header[bus.HeaderReplayFor] = n.durable("me")
	publish(t, b, replayed, mine, msg(subject, "Task/z/_history/3", "sentinel"))

	var rec recorder
	consume(t, b, bus.ConsumerConfig{Durable: n.durable("me"), Subject: subject}, func(_ context.Context, m bus.Msg) error {
		rec.add(m)
		return nil
	})
	waitFor(t, "the sentinel", rec.has("sentinel"))
	if rec.count("replayed") != 0 {
		t.Errorf("a message replayed for another durable was handled")
	}
	if rec.count("mine") != 1 {
		t.Errorf("a message replayed for this durable was handled %d times, want 1", rec.count("mine"))
	}
}

func testDeadLettersPaging(t *testing.T, b bus.Bus) {
	n := newNames(t)
	subject := n.subject("Observation", bus.OpUpdated)
	durable := n.durable("paging")
	const total = 5
	var batch []bus.Msg
	for i := range total {
		batch = append(batch, msg(subject, fmt.Sprintf("Observation/o%d/_history/1", i), strconv.Itoa(i)))
	}
	publish(t, b, batch...)
	consume(t, b, bus.ConsumerConfig{Durable: durable, Subject: subject}, func(context.Context, bus.Msg) error {
		return bus.Permanent(errors.New("rejected"))
	})
	waitFor(t, "all dead letters", func() bool { return len(deadLettersOf(t, b, durable)) == total })

	// Pages of 2, in order, none repeated.
	var (
		after uint64
		got   []string
	)
	for range 100 {
		page, err := b.DeadLetters(t.Context(), after, 2)
		if err != nil {
			t.Fatalf("DeadLetters(%d, 2): %v", after, err)
		}
		if len(page) > 2 {
			t.Fatalf("DeadLetters(%d, 2) returned %d", after, len(page))
		}
		if len(page) == 0 {
			break
		}
		for _, dl := range page {
			if dl.ID <= after {
				t.Fatalf("DeadLetters(%d, 2) returned id %d", after, dl.ID)
			}
			after = dl.ID
			if dl.Durable == durable {
				got = append(got, string(dl.Msg.Data))
			}
		}
	}
	if len(got) != total {
		t.Fatalf("paged through %d dead letters of %s, want %d", len(got), durable, total)
	}
	for i, d := range got {
		if d != strconv.Itoa(i) {
			t.Errorf("dead letter %d has data %q, want %q", i, d, strconv.Itoa(i))
		}
	}
}

func testRestart(t *testing.T, b bus.Bus) {
	n := newNames(t)
	subject := n.subject("Encounter", bus.OpUpdated)
	durable := n.durable("restart")
	const first, second = 10, 10
	var batch []bus.Msg
	for i := range first {
		batch = append(batch, msg(subject, fmt.Sprintf("Encounter/e/_history/%d", i), strconv.Itoa(i)))
	}
	publish(t, b, batch...)

	var (
		mu      sync.Mutex
		handled = map[string]int{}
	)
	record := func(m bus.Msg) int {
		mu.Lock()
		defer mu.Unlock()
		handled[string(m.Data)]++
		return len(handled)
	}
	cfg := bus.ConsumerConfig{Durable: durable, Subject: subject, AckWait: 5 * time.Second}

	// First run: stops itself from inside its fifth handling, which still
	// succeeds and must be acknowledged.
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- b.Consume(ctx, cfg, func(_ context.Context, m bus.Msg) error {
			if record(m) == first/2 {
				cancel()
			}
			return nil
		})
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Consume returned %v after its context ended; want nil", err)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("Consume did not return after its context ended")
	}
	cancel()

	for i := first; i < first+second; i++ {
		publish(t, b, msg(subject, fmt.Sprintf("Encounter/e/_history/%d", i), strconv.Itoa(i)))
	}
	consume(t, b, cfg, func(_ context.Context, m bus.Msg) error {
		record(m)
		return nil
	})
	waitFor(t, "every message", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(handled) == first+second
	})
	mu.Lock()
	defer mu.Unlock()
	for i := range first + second {
		if c := handled[strconv.Itoa(i)]; c != 1 {
			t.Errorf("message %d handled %d times, want 1", i, c)
		}
	}
}
