package worklist_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	fhirprofiles "github.com/passerelle-sante/passerelle/fhir-profiles"
	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/bus/jetstream"
	"github.com/passerelle-sante/passerelle/pkg/clock"
	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/store"
	"github.com/passerelle-sante/passerelle/pkg/store/sqlite"
	"github.com/passerelle-sante/passerelle/services/pathway"
	"github.com/passerelle-sante/passerelle/services/worklist"
)

// TestAlertThroughTheBus runs the pathway and worklist services on an
// embedded NATS server with the outbox relay, as the single binary does: a
// discharge opens an episode, a measurement out of range comes back as an
// alert through the worklist's consumer.
func TestAlertThroughTheBus(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
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
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	pw, err := pathway.New(pathway.Deps{Store: s, Bus: b, Logger: log, Tenant: tenant, Clock: clock.System{}, Validator: validator, Package: fhirprofiles.FS()})
	if err != nil {
		t.Fatal(err)
	}
	wl := worklist.New(worklist.Deps{Store: s, Bus: b, Logger: log, Tenant: tenant})
	relay := &bus.Relay{Store: s, Publisher: b, Owner: "t", Poll: 10 * time.Millisecond, Logger: log}
	relay.Init()
	done := make(chan struct{}, 3)
	for _, run := range []func(context.Context) error{relay.Run, pw.Run, wl.Run} {
		go func() { _ = run(ctx); done <- struct{}{} }()
	}
	t.Cleanup(func() {
		cancel()
		for range 3 {
			<-done
		}
		_ = b.Close()
		ns.Shutdown()
		ns.WaitForShutdown()
		_ = s.Close()
	})
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("waiting for %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// The rig's discharge message, put on the bus through the outbox.
	r := &rig{t: t, s: s, svc: wl, pw: pw, clk: clock.NewFake(time.Now()), ctx: ctx}
	p := r.patient()
	var msg bus.Msg
	func() {
		// Build the message as the rig's discharge would deliver it.
		rr := *r
		rr.deliverHook = func(m bus.Msg) { msg = m }
		rr.dischargeMsg(p)
	}()
	r.tx(func(tx store.Tx) error {
		return tx.Emit(ctx, store.Event{Subject: msg.Subject, MsgID: msg.Header[bus.HeaderMsgID], Key: "Encounter/" + p, Headers: msg.Header, Data: msg.Data})
	})
	relay.Notify()
	var first string
	waitFor("the episode's first contact", func() bool {
		ts := r.search("Task", refParam("patient", "Patient/"+p), tokenParam("code", "first-contact"))
		if len(ts) == 1 {
			first = ts[0]["id"].(string)
		}
		return first != ""
	})
	ep := r.search("EpisodeOfCare", refParam("patient", "Patient/"+p))[0]
	waitFor("the missing-weight timer", func() bool {
		_, err := s.Timers().Pending(ctx, worklist.TimerMissing+":"+tenant+":"+ep["id"].(string)+":weight-missing")
		return err == nil
	})
	// Assigned as the teams service would (no event needed here).
	res, _ := s.Read(ctx, "Task", first)
	m := map[string]any{}
	_ = jsonUnmarshal(res.Body, &m)
	m["owner"] = map[string]any{"reference": "PractitionerRole/pr-ide-martin"}
	delete(m, "meta")
	r.tx(func(tx store.Tx) error { _, err := tx.Update(ctx, tenant, mustJSON(m), res.Version); return err })
	o := map[string]any{"resourceType": "Observation", "code": loinc("8867-4"), "valueQuantity": map[string]any{"value": 135.0},
		"subject": map[string]any{"reference": "Patient/" + p}}
	if _, err := wl.RecordObservation(ctx, r.actor("ide.martin"), mustJSON(o), ""); err != nil {
		t.Fatal(err)
	}
	relay.Notify()
	waitFor("the heart-rate alert", func() bool { return len(r.flags(p)["heart-rate"]) == 1 })
}
