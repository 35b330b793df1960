package pathway_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/access"
	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/bus/jetstream"
	"github.com/passerelle-sante/passerelle/pkg/clock"
	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/fhir/validate"
	"github.com/passerelle-sante/passerelle/pkg/store"
	"github.com/passerelle-sante/passerelle/pkg/store/sqlite"
	intakesvc "github.com/passerelle-sante/passerelle/services/intake"
	"github.com/passerelle-sante/passerelle/services/pathway"
)

// wakeRelay is the running platform's relay, which a store opened with
// notifyRelay wakes after each commit that emitted events, as the binary
// wires it.
var wakeRelay atomic.Pointer[bus.Relay]

func notifyRelay() {
	if r := wakeRelay.Load(); r != nil {
		r.Notify()
	}
}

// platform runs intake and pathway on a real store and an embedded NATS
// server with the outbox relay, as the single binary does.
type platform struct {
	s   store.Store
	b   bus.Bus
	url string
}

func startPlatform(t testing.TB, s store.Store) *platform {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := directory.SeedDev(ctx, s, tenant); err != nil {
		t.Fatal(err)
	}
	ns, err := jetstream.StartServer(jetstream.ServerConfig{StoreDir: filepath.Join(t.TempDir(), "nats")})
	if err != nil {
		t.Fatal(err)
	}
	b, err := jetstream.New(ctx, jetstream.Config{Server: ns})
	if err != nil {
		t.Fatal(err)
	}
	var logOut io.Writer = io.Discard
	if *loadDuration > 0 {
		logOut = os.Stderr
	}
	log := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelWarn}))
	dir := &directory.Resolver{Store: s}
	in := intakesvc.New(intakesvc.Deps{Store: s, Bus: b, Logger: log, Tenant: tenant, PublicURL: "http://passerelle.test",
		Dir: dir, Validator: validate.Bundles{V: validator}})
	pw, err := pathway.New(pathway.Deps{Store: s, Bus: b, Logger: log, Tenant: tenant, Clock: clock.System{}, Validator: validator, Package: packageFS()})
	if err != nil {
		t.Fatal(err)
	}
	relay := &bus.Relay{Store: s, Publisher: b, Owner: "t", Poll: 10 * time.Millisecond, Logger: log}
	relay.Init()
	wakeRelay.Store(relay)
	t.Cleanup(func() { wakeRelay.Store(nil) })
	done := make(chan struct{}, 3)
	for _, run := range []func(context.Context) error{relay.Run, in.Run, pw.Run} {
		go func() { _ = run(ctx); done <- struct{}{} }()
	}
	mux := http.NewServeMux()
	in.Register(mux, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			a, err := dir.System(req.Context(), tenant, directory.DevClient)
			if err != nil {
				http.Error(w, err.Error(), http.StatusForbidden)
				return
			}
			h.ServeHTTP(w, req.WithContext(access.WithActor(req.Context(), a)))
		})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.Close()
		cancel()
		for range 3 {
			<-done
		}
		_ = b.Close()
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return &platform{s: s, b: b, url: srv.URL}
}

func (p *platform) postMessage(t testing.TB, body []byte) {
	t.Helper()
	res, err := http.Post(p.url+"/fhir/$process-message", "application/fhir+json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("process-message: %d %s", res.StatusCode, b)
	}
}

// TestDischargeThroughTheBus posts the intake's sample heart-failure
// discharge and waits for the episode, its care plan and tasks.
func TestDischargeThroughTheBus(t *testing.T) {
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	p := startPlatform(t, s)
	body, err := os.ReadFile("../intake/testdata/discharge-hf-declared-team.json")
	if err != nil {
		t.Fatal(err)
	}
	p.postMessage(t, body)
	deadline := time.Now().Add(20 * time.Second)
	for {
		page, err := s.Search(context.Background(), store.Query{Tenant: tenant, Type: "Task", Count: 100})
		if err == nil && len(page.Resources) == 13 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tasks: %d (%v)", len(page.Resources), err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	page, _ := s.Search(context.Background(), store.Query{Tenant: tenant, Type: "EpisodeOfCare", Count: 10})
	if len(page.Resources) != 1 {
		t.Fatalf("episodes: %d", len(page.Resources))
	}
}
