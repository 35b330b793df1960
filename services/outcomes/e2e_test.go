package outcomes

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	fhirprofiles "github.com/passerelle-sante/passerelle/fhir-profiles"
	"github.com/passerelle-sante/passerelle/pkg/access"
	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/bus/jetstream"
	"github.com/passerelle-sante/passerelle/pkg/clock"
	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/fhir/profile"
	"github.com/passerelle-sante/passerelle/pkg/fhir/validate"
	"github.com/passerelle-sante/passerelle/pkg/outcome"
	"github.com/passerelle-sante/passerelle/pkg/store/sqlite"
	intakesvc "github.com/passerelle-sante/passerelle/services/intake"
	"github.com/passerelle-sante/passerelle/services/pathway"
)

// TestDischargeReachesTheMeasures runs intake, pathway and outcomes on a
// real store and an embedded NATS server with the outbox relay, as the
// single binary does: the sample heart-failure discharge becomes one
// episode of the measures, with its hospital, pathway and tasks, from the
// events the other services really publish.
func TestDischargeReachesTheMeasures(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var relay *bus.Relay
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := directory.SeedDev(ctx, s, tenant); err != nil {
		t.Fatal(err)
	}
	reg, err := profile.Load(fhirprofiles.FS())
	if err != nil {
		t.Fatal(err)
	}
	v, err := validate.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := jetstream.StartServer(jetstream.ServerConfig{StoreDir: filepath.Join(t.TempDir(), "nats")})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	b, err := jetstream.New(ctx, jetstream.Config{Server: ns})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := &directory.Resolver{Store: s}
	in := intakesvc.New(intakesvc.Deps{Store: s, Bus: b, Logger: log, Tenant: tenant, PublicURL: "http://passerelle.test", Dir: dir, Validator: validate.Bundles{V: v}})
	pw, err := pathway.New(pathway.Deps{Store: s, Bus: b, Logger: log, Tenant: tenant, Clock: clock.System{}, Validator: v, Package: fhirprofiles.FS()})
	if err != nil {
		t.Fatal(err)
	}
	out := New(Deps{Store: s, Bus: b, Logger: log, Tenant: tenant, Package: fhirprofiles.FS(), PseudonymKey: []byte("k")})
	relay = &bus.Relay{Store: s, Publisher: b, Owner: "t", Poll: 10 * time.Millisecond, Logger: log}
	relay.Init()
	done := make(chan struct{}, 4)
	for _, run := range []func(context.Context) error{relay.Run, in.Run, pw.Run, out.Run} {
		go func() { _ = run(ctx); done <- struct{}{} }()
	}
	defer func() {
		cancel()
		for range 4 {
			<-done
		}
	}()
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
	defer srv.Close()
	body, err := os.ReadFile("../intake/testdata/discharge-hf-declared-team.json")
	if err != nil {
		t.Fatal(err)
	}
	// Dated now: the sample's own date (October 2026) makes it a discharge
	// notified late, whose past visits are recorded missed and stay out of
	// tasks-on-time (docs/domain.md).
	now := time.Now()
	for old, d := range map[string]time.Duration{"2026-09-26T10:15:00+02:00": -7 * 24 * time.Hour,
		"2026-10-03T15:00:00+02:00": -time.Minute, "2026-10-03T15:10:00+02:00": -30 * time.Second, "2026-10-03T15:30:00+02:00": 0} {
		body = bytes.ReplaceAll(body, []byte(old), []byte(now.Add(d).Format(time.RFC3339)))
	}
	res, err := http.Post(srv.URL+"/fhir/$process-message", "application/fhir+json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	rb, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("process-message: %d %s", res.StatusCode, rb)
	}
	p := outcome.Params{Start: outcome.CivilDay(2000, 1, 1), End: outcome.CivilDay(2100, 1, 1), Now: time.Now()}
	deadline := time.Now().Add(30 * time.Second)
	var rs []*outcome.Result
	for {
		rs, err = out.Evaluate(ctx, tenant, p, outcome.Readmission30, outcome.TasksOnTime)
		if err == nil && rs[0].Initial == 1 && rs[1].Initial > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the discharge did not reach the measures: %v %+v %+v", err, rs[0], rs[1])
		}
		time.Sleep(20 * time.Millisecond)
	}
	if c, ok := rs[0].Stratum(outcome.StratPathway, "hf-post-discharge"); !ok || c.Initial != 1 {
		t.Errorf("pathway stratum: %+v %v", rs[0].Stratifiers, ok)
	}
	if c, ok := rs[0].Stratum(outcome.StratHospital, "420000002"); !ok || c.Initial != 1 {
		t.Errorf("hospital stratum (the demo hospital's FINESS): %+v", rs[0].Stratifiers[1])
	}
	if c, ok := rs[0].Stratum(outcome.StratSex, "unknown"); ok {
		t.Errorf("the patient's sex did not reach the record: %+v", c)
	}
	if _, err := s.Read(ctx, "Measure", outcome.Readmission30); err != nil {
		t.Errorf("shipped measure not stored: %v", err)
	}
}
