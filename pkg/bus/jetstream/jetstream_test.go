package jetstream

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/bus/bustest"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// envNATSURL names the external NATS server (with JetStream) the suite also
// runs on; .ci/run sets it.
const envNATSURL = "PASSERELLE_TEST_NATS_URL"

const testTimeout = 30 * time.Second

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := checkGoroutines(10 * time.Second); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// checkGoroutines fails if goroutines of the NATS client, the embedded server
// or this package outlive the tests: every bus was closed and every server
// shut down, so none should be left once they have wound down.
func checkGoroutines(wait time.Duration) error {
	deadline := time.Now().Add(wait)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		leaked := leakedGoroutines()
		if len(leaked) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d goroutines leaked:\n\n%s", len(leaked), strings.Join(leaked, "\n\n"))
		}
		<-tick.C
	}
}

func leakedGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var leaked []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "checkGoroutines") || strings.Contains(g, "leakedGoroutines") {
			continue
		}
		if strings.Contains(g, "github.com/nats-io/") || strings.Contains(g, "passerelle/pkg/bus") {
			leaked = append(leaked, g)
		}
	}
	return leaked
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func uniqueNamespace(t testing.TB) string {
	var r [6]byte
	if _, err := rand.Read(r[:]); err != nil {
		t.Fatal(err)
	}
	return "test" + hex.EncodeToString(r[:])
}

func startServer(t testing.TB, cfg ServerConfig) *Server {
	t.Helper()
	srv, err := StartServer(cfg)
	if err != nil {
		t.Fatalf("StartServer: %v", err)
	}
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	return srv
}

// newTestBus opens a bus in a namespace of its own, with its own registry.
// The caller closes it.
func newTestBus(t testing.TB, cfg Config) *Bus {
	t.Helper()
	if cfg.Namespace == "" {
		cfg.Namespace = uniqueNamespace(t)
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	b, err := New(ctx, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return b
}

func TestConformanceEmbedded(t *testing.T) {
	srv := startServer(t, ServerConfig{StoreDir: t.TempDir()})
	bustest.Run(t, func(t *testing.T) bus.Bus {
		return newTestBus(t, Config{Server: srv})
	})
}

func TestConformanceExternal(t *testing.T) {
	url := os.Getenv(envNATSURL)
	if url == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is empty on CI: the run on an external NATS server must not be skipped there", envNATSURL)
		}
		t.Skipf("%s is not set", envNATSURL)
	}
	keepAccountStore(t, url)
	bustest.Run(t, func(t *testing.T) bus.Bus {
		b := newTestBus(t, Config{URL: url})
		// Registered before the suite's Close, so it runs after it: the
		// shared server must not collect the streams of every test run.
		t.Cleanup(func() { deleteStreams(t, url, b) })
		return b
	})
}

// keepAccountStore makes sure one stream always exists on the shared server.
// NATS 2.9 removes an account's store directory when its last stream is
// deleted, and a stream created at that moment fails with "could not create
// storage directory": test runs that delete their streams while others create
// theirs would fail at random. The anchor stream is empty and is left there
// on purpose.
func keepAccountStore(t *testing.T, url string) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{
		Name:     "PASSERELLE_TEST_ANCHOR",
		Subjects: []string{"passerelle-test-anchor"},
		Storage:  jetstream.FileStorage,
		MaxMsgs:  1,
	})
	if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		t.Fatalf("create anchor stream: %v", err)
	}
}

func deleteStreams(t *testing.T, url string, b *Bus) {
	nc, err := nats.Connect(url)
	if err != nil {
		t.Errorf("delete test streams: %v", err)
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Errorf("delete test streams: %v", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	for _, name := range streamNames() {
		if err := js.DeleteStream(ctx, b.StreamName(name)); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Errorf("delete test stream %s: %v", b.StreamName(name), err)
		}
	}
}

func TestSubjectSubset(t *testing.T) {
	tests := []struct {
		sub, filter string
		want        bool
	}{
		{"fhir.t1.Encounter.created", "fhir.>", true},
		{"fhir.*.Encounter.*", "fhir.>", true},
		{"fhir.>", "fhir.>", true},
		{"fhir", "fhir.>", false},
		{"inbound.t1.adt", "fhir.>", false},
		{">", "fhir.>", false},
		{"*.t1.x", "fhir.>", false},
		{"fhir.t1", "fhir.*", true},
		{"fhir.*", "fhir.*", true},
		{"fhir.>", "fhir.*", false},
		{"fhir.t1.x", "fhir.*", false},
		{"fhir..x", "fhir.>", false},
	}
	for _, tc := range tests {
		t.Run(tc.sub+" in "+tc.filter, func(t *testing.T) {
			if got := subjectSubset(tc.sub, tc.filter); got != tc.want {
				t.Errorf("subjectSubset(%q, %q) = %v, want %v", tc.sub, tc.filter, got, tc.want)
			}
		})
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(testTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out after %s waiting for %s", testTimeout, what)
		case <-tick.C:
		}
	}
}

// runConsumer runs Consume until the end of the test.
func runConsumer(t *testing.T, b *Bus, cfg bus.ConsumerConfig, h bus.Handler) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Consume(ctx, cfg, h) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Consume: %v", err)
		}
	})
}

// TestEmbeddedRestartKeepsAcked stops the embedded server while a publisher
// is busy, starts a new one on the same store, and checks that every message
// whose publication was acknowledged is there.
func TestEmbeddedRestartKeepsAcked(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, ServerConfig{StoreDir: dir}) // shut down by the test; again at cleanup is harmless
	b := newTestBus(t, Config{Server: srv, PublishTimeout: 2 * time.Second})
	ns := b.cfg.Namespace
	subject := bus.ResourceSubject("t1", "Encounter", bus.OpCreated)

	var (
		mu    sync.Mutex
		acked []string
	)
	pubDone := make(chan error, 1)
	go func() {
		// Bounded: stops by itself even if the server never goes away.
		for batch := range 500 {
			msgs := make([]bus.Msg, 128)
			for i := range msgs {
				id := fmt.Sprintf("Encounter/e%d-%d/_history/1", batch, i)
				msgs[i] = bus.Msg{Subject: subject, Header: map[string]string{bus.HeaderMsgID: id}, Data: []byte(id)}
			}
			n, err := b.Publish(context.Background(), msgs)
			mu.Lock()
			for _, m := range msgs[:n] {
				acked = append(acked, m.Header[bus.HeaderMsgID])
			}
			mu.Unlock()
			if err != nil {
				pubDone <- err
				return
			}
		}
		pubDone <- nil
	}()
	waitFor(t, "two thousand acknowledged messages", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 2000
	})
	srv.Shutdown()
	select {
	case err := <-pubDone:
		if err == nil {
			t.Fatalf("publisher finished without noticing the server stop")
		}
		t.Logf("publisher stopped: %v", err)
	case <-time.After(testTimeout):
		t.Fatalf("publisher still running %s after the server stopped", testTimeout)
	}
	srv.WaitForShutdown()
	if err := b.Close(); err != nil {
		t.Errorf("Close after the server stopped: %v", err)
	}
	mu.Lock()
	want := append([]string(nil), acked...)
	mu.Unlock()
	t.Logf("%d messages acknowledged before the stop", len(want))

	srv2 := startServer(t, ServerConfig{StoreDir: dir})
	b2 := newTestBus(t, Config{Server: srv2, Namespace: ns})
	t.Cleanup(func() { b2.Close() })

	s, err := b2.js.Stream(t.Context(), b2.StreamName(bus.StreamFHIR))
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs < uint64(len(want)) {
		t.Errorf("stream holds %d messages after restart, want at least the %d acknowledged", info.State.Msgs, len(want))
	}

	var (
		gotMu sync.Mutex
		got   = map[string]bool{}
	)
	runConsumer(t, b2, bus.ConsumerConfig{Durable: "check", Subject: "fhir.>", Concurrency: 8}, func(_ context.Context, m bus.Msg) error {
		gotMu.Lock()
		defer gotMu.Unlock()
		got[string(m.Data)] = true
		return nil
	})
	waitFor(t, "every stored message", func() bool {
		gotMu.Lock()
		defer gotMu.Unlock()
		return uint64(len(got)) >= info.State.Msgs
	})
	gotMu.Lock()
	defer gotMu.Unlock()
	missing := 0
	for _, id := range want {
		if !got[id] {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d acknowledged messages lost across the restart", missing, len(want))
	}
}

// TestMetrics checks the series the bus exports.
func TestMetrics(t *testing.T) {
	srv := startServer(t, ServerConfig{StoreDir: t.TempDir()})
	reg := prometheus.NewRegistry()
	b := newTestBus(t, Config{Server: srv, Registerer: reg, PendingInterval: 20 * time.Millisecond})
	t.Cleanup(func() { b.Close() })
	// A second bus on the same registry shares the series.
	b2 := newTestBus(t, Config{Server: srv, Registerer: reg})
	t.Cleanup(func() { b2.Close() })

	subject := bus.ResourceSubject("t1", "Task", bus.OpCreated)
	msgs := []bus.Msg{
		{Subject: subject, Header: map[string]string{bus.HeaderMsgID: "a"}, Data: []byte("retry-once")},
		{Subject: subject, Header: map[string]string{bus.HeaderMsgID: "b"}, Data: []byte("permanent")},
		{Subject: subject, Header: map[string]string{bus.HeaderMsgID: "c", bus.HeaderReplayFor: "other"}, Data: []byte("skipped")},
		{Subject: subject, Header: map[string]string{bus.HeaderMsgID: "d"}, Data: []byte("ok")},
	}
	if n, err := b.Publish(t.Context(), msgs); err != nil || n != len(msgs) {
		t.Fatalf("Publish = %d, %v", n, err)
	}
	var (
		mu     sync.Mutex
		failed bool
		done   = make(chan struct{})
	)
	runConsumer(t, b, bus.ConsumerConfig{Durable: "metrics", Subject: subject, BackOff: []time.Duration{10 * time.Millisecond}}, func(_ context.Context, m bus.Msg) error {
		mu.Lock()
		defer mu.Unlock()
		switch string(m.Data) {
		case "retry-once":
			if !failed {
				failed = true
				return errors.New("once")
			}
		case "permanent":
			return bus.Permanent(errors.New("never"))
		case "ok":
			close(done)
		}
		return nil
	})
	select {
	case <-done:
	case <-time.After(testTimeout):
		t.Fatal("last message not handled")
	}

	value := func(name string, labels map[string]string) (float64, bool) {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
		metric:
			for _, m := range mf.GetMetric() {
				for _, lp := range m.GetLabel() {
					if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
						continue metric
					}
				}
				switch {
				case m.GetCounter() != nil:
					return m.GetCounter().GetValue(), true
				case m.GetGauge() != nil:
					return m.GetGauge().GetValue(), true
				case m.GetHistogram() != nil:
					return float64(m.GetHistogram().GetSampleCount()), true
				}
			}
		}
		return 0, false
	}
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"passerelle_bus_published_total", nil, 4},
		{"passerelle_bus_consumed_total", map[string]string{"durable": "metrics", "result": "ok"}, 2},
		{"passerelle_bus_consumed_total", map[string]string{"durable": "metrics", "result": "retry"}, 1},
		{"passerelle_bus_consumed_total", map[string]string{"durable": "metrics", "result": "dead_letter"}, 1},
		{"passerelle_bus_consumed_total", map[string]string{"durable": "metrics", "result": "skipped"}, 1},
		{"passerelle_bus_dead_lettered_total", map[string]string{"durable": "metrics"}, 1},
		{"passerelle_bus_handler_seconds", map[string]string{"durable": "metrics"}, 4},
	}
	for _, c := range checks {
		// The last ack is confirmed right after the handler returns.
		waitFor(t, fmt.Sprintf("%s%v = %v", c.name, c.labels, c.want), func() bool {
			got, ok := value(c.name, c.labels)
			return ok && got == c.want
		})
	}
	waitFor(t, "the pending gauge", func() bool {
		_, ok := value("passerelle_bus_consumer_pending", map[string]string{"durable": "metrics"})
		return ok
	})
}

// TestStrayDeadLetter puts a message that is not a dead letter in the DLQ
// stream: it is listed, and Replay refuses it.
func TestStrayDeadLetter(t *testing.T) {
	srv := startServer(t, ServerConfig{StoreDir: t.TempDir()})
	b := newTestBus(t, Config{Server: srv})
	t.Cleanup(func() { b.Close() })
	ack, err := b.js.Publish(t.Context(), b.subject(bus.DeadLetterSubject("manual")), []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	dls, err := b.DeadLetters(t.Context(), 0, 10)
	if err != nil {
		t.Fatalf("DeadLetters: %v", err)
	}
	if len(dls) != 1 || dls[0].ID != ack.Sequence || dls[0].Durable != "manual" {
		t.Fatalf("DeadLetters = %+v, want the stray message of durable manual", dls)
	}
	if err := b.Replay(t.Context(), ack.Sequence); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Replay(stray) = %v, want an error other than not found", err)
	}
}

func TestConfigErrors(t *testing.T) {
	if _, err := New(t.Context(), Config{}); err == nil {
		t.Error("New without URL or server succeeded")
	}
	if _, err := New(t.Context(), Config{URL: "nats://127.0.0.1:1", Namespace: "a.b"}); err == nil {
		t.Error("New with a dotted namespace succeeded")
	}
	if _, err := StartServer(ServerConfig{}); err == nil {
		t.Error("StartServer without a store directory succeeded")
	}
	srv := startServer(t, ServerConfig{StoreDir: t.TempDir()})
	b := newTestBus(t, Config{Server: srv})
	t.Cleanup(func() { b.Close() })
	h := func(context.Context, bus.Msg) error { return nil }
	for _, cfg := range []bus.ConsumerConfig{
		{Durable: "", Subject: "fhir.>"},
		{Durable: "a.b", Subject: "fhir.>"},
		{Durable: "x", Subject: "elsewhere.>"},
		{Durable: "x", Subject: ">"},
		{Durable: "x", Subject: "fhir.>", Lanes: 4, Concurrency: 2},
		{Durable: "x", Subject: "fhir.>", Lanes: -1},
	} {
		if err := b.Consume(t.Context(), cfg, h); err == nil {
			t.Errorf("Consume(%+v) succeeded", cfg)
		}
	}
	if err := b.Consume(t.Context(), bus.ConsumerConfig{Durable: "x", Subject: "fhir.>"}, nil); err == nil {
		t.Error("Consume with a nil handler succeeded")
	}
}

func TestEmbeddedListen(t *testing.T) {
	srv := startServer(t, ServerConfig{StoreDir: t.TempDir(), Listen: "127.0.0.1:0"})
	url := srv.ClientURL()
	if !strings.HasPrefix(url, "nats://127.0.0.1:") || strings.HasSuffix(url, ":0") {
		t.Fatalf("ClientURL = %q, want a loopback URL with the chosen port", url)
	}
	b := newTestBus(t, Config{URL: url})
	defer b.Close()
	if err := b.Ping(t.Context()); err != nil {
		t.Fatalf("Ping over TCP: %v", err)
	}
	quiet := startServer(t, ServerConfig{StoreDir: t.TempDir()})
	if u := quiet.ClientURL(); u != "" {
		t.Errorf("ClientURL of a server that does not listen = %q, want empty", u)
	}
}

func BenchmarkPublishSync(b *testing.B)     { benchPublish(b, 1) }
func BenchmarkPublishAsync256(b *testing.B) { benchPublish(b, 256) }

// benchPublish publishes 2 KB messages in calls of batch messages, on an
// embedded server that syncs every write and on one that syncs lazily.
func benchPublish(b *testing.B, batch int) {
	for _, mode := range []struct {
		name string
		lazy bool
	}{{"sync=always", false}, {"sync=default", true}} {
		b.Run(mode.name, func(b *testing.B) {
			srv := startServer(b, ServerConfig{StoreDir: b.TempDir(), LazySync: mode.lazy})
			bb := newTestBus(b, Config{Server: srv, Logger: slog.New(slog.DiscardHandler)})
			defer bb.Close()
			subject := bus.ResourceSubject("bench", "Encounter", bus.OpUpdated)
			data := make([]byte, 2048)
			msgs := make([]bus.Msg, batch)
			sent := 0
			ctx := context.Background()
			b.SetBytes(int64(len(data) * batch))
			for b.Loop() {
				for i := range msgs {
					sent++
					msgs[i] = bus.Msg{
						Subject: subject,
						Header:  map[string]string{bus.HeaderMsgID: fmt.Sprintf("Encounter/e%d/_history/1", sent)},
						Data:    data,
					}
				}
				if n, err := bb.Publish(ctx, msgs); err != nil || n != batch {
					b.Fatalf("Publish = %d, %v", n, err)
				}
			}
			b.ReportMetric(float64(sent)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
