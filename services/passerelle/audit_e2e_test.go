package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/store"
	"github.com/passerelle-sante/passerelle/pkg/store/sqlite"
)

// TestServiceWritesAudited: a discharge goes through intake, pathway and
// teams; every version they write of the patient's data (Patient,
// Encounter, EpisodeOfCare, CarePlan, CareTeam, Task) has its audit record,
// committed with it, naming the service that wrote it, what made it act and
// the patient, and the chain verifies.
func TestServiceWritesAudited(t *testing.T) {
	tp := startPlatform(t, nil)
	body, err := os.ReadFile("../intake/testdata/discharge-hf-declared-team.json")
	if err != nil {
		t.Fatal(err)
	}
	if r := tp.do(t, "POST", "/fhir/$process-message", tp.token(t, "chu-demo-dpi"), string(body)); r.status != 200 {
		t.Fatalf("process-message: %d %s", r.status, r.body)
	}
	ctx := context.Background()
	search := func(typ string, params ...store.Param) []store.Resource {
		page, err := tp.Store.Search(ctx, store.Query{Tenant: tp.Cfg.Tenant, Type: typ, Count: 1000, Params: params})
		if err != nil {
			t.Fatal(err)
		}
		return page.Resources
	}
	// Wait for the team: by then each service has written its part.
	deadline := time.Now().Add(60 * time.Second)
	for len(search("CareTeam", store.Param{Name: "status", Kind: store.KindToken, Values: []store.Value{{Code: "active"}}})) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no active team")
		}
		time.Sleep(100 * time.Millisecond)
	}
	owners := map[string][]string{
		"Patient": {"System/intake"}, "Encounter": {"System/intake"},
		"EpisodeOfCare": {"System/pathway"}, "CarePlan": {"System/pathway"},
		"CareTeam": {"System/intake", "System/teams"}, "Task": {"System/pathway", "System/teams"},
	}
	// Versions first, then the trail: a version's record commits with it.
	type version struct{ typ, entity string }
	var versions []version
	for typ := range owners {
		for _, r := range search(typ) {
			h, err := tp.Store.History(ctx, typ, r.ID, store.HistoryParams{Count: 1000})
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range h.Resources {
				versions = append(versions, version{typ, fmt.Sprintf("%s/%s/_history/%d", typ, v.ID, v.Version)})
			}
		}
	}
	recs, err := tp.Store.AuditLog().List(ctx, 0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	byEntity := map[string]store.AuditRecord{}
	for _, r := range recs {
		byEntity[r.Entity] = r
	}
	seen := map[string]int{}
	for _, v := range versions {
		r, ok := byEntity[v.entity]
		switch {
		case !ok:
			t.Errorf("%s has no audit record", v.entity)
		case !strings.Contains(strings.Join(owners[v.typ], " "), r.Agent) || !strings.HasPrefix(r.Agent, "System/"):
			t.Errorf("%s audited as %q, want one of %v", v.entity, r.Agent, owners[v.typ])
		case !strings.HasPrefix(r.Patient, "Patient/") || !strings.Contains(r.Detail, "event ") && !strings.Contains(r.Detail, "timer "):
			t.Errorf("%s: record names no patient or no cause: %+v", v.entity, r)
		default:
			seen[v.typ+" "+r.Agent]++
		}
	}
	for _, want := range []string{"Patient System/intake", "Encounter System/intake", "EpisodeOfCare System/pathway",
		"CarePlan System/pathway", "Task System/pathway", "CareTeam System/teams"} {
		if seen[want] == 0 {
			t.Errorf("no write audited for %s (seen %v)", want, seen)
		}
	}
	if n, err := VerifyAudit(ctx, tp.Store.AuditLog()); err != nil {
		t.Errorf("audit chain after %d records: %v", n, err)
	}
	b, _ := json.Marshal(seen)
	t.Logf("service writes audited: %s", b)
}

// TestRefusedLooksAudited: a search naming a patient outside the user's
// care is in that patient's trail (refused or narrowed to nothing), and an
// API call without a valid token leaves a record too.
func TestRefusedLooksAudited(t *testing.T) {
	tp := startPlatform(t, nil)
	body, err := os.ReadFile("../intake/testdata/discharge-hf-declared-team.json")
	if err != nil {
		t.Fatal(err)
	}
	if r := tp.do(t, "POST", "/fhir/$process-message", tp.token(t, "chu-demo-dpi"), string(body)); r.status != 200 {
		t.Fatalf("process-message: %d %s", r.status, r.body)
	}
	ctx := context.Background()
	var patient string
	deadline := time.Now().Add(30 * time.Second)
	for patient == "" {
		page, err := tp.Store.Search(ctx, store.Query{Tenant: tp.Cfg.Tenant, Type: "Patient", Count: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Resources) == 1 {
			patient = "Patient/" + page.Resources[0].ID
		} else if time.Now().After(deadline) {
			t.Fatal("no patient")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The administrator manages the platform: the patient is not in her care.
	admin := tp.token(t, "admin")
	r := tp.do(t, "GET", "/fhir/Observation?patient="+patient, admin, "")
	if r.status == 200 && strings.Contains(string(r.body), `"entry"`) {
		t.Fatalf("the administrator read a patient's observations: %s", r.body)
	}
	recs, err := tp.Store.AuditLog().Find(ctx, store.AuditFilter{Tenant: tp.Cfg.Tenant, Patient: patient})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, rec := range recs {
		if rec.Agent == "PractitionerRole/pr-admin" && strings.HasPrefix(rec.Entity, "Observation?") {
			found = true
		}
	}
	if !found {
		t.Errorf("the search naming %s (answered %d) is not in the patient's trail (%d records)", patient, r.status, len(recs))
	}

	if r := tp.do(t, "GET", "/fhir/Patient", "", ""); r.status != 401 {
		t.Fatalf("no token: %d", r.status)
	}
	if r := tp.do(t, "GET", "/fhir/Patient", "not-a-token", ""); r.status != 401 {
		t.Fatalf("bad token: %d", r.status)
	}
	all, _ := tp.Store.AuditLog().List(ctx, 0, 100000)
	n := 0
	for _, rec := range all {
		if rec.Entity == "api-authentication" && rec.Outcome == "4" && strings.Contains(rec.Detail, "401") && strings.Contains(rec.Detail, "GET /fhir/Patient") {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d records of refused API authentication, want 2", n)
	}
}

// TestAuditKeyMadeAfterUnkeyedRecords: a data directory from before the
// key keeps verifying: the key file made at first start says the chain is
// keyed from the next record on, and records written since are keyed.
func TestAuditKeyMadeAfterUnkeyedRecords(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{DataDir: dir}
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(dir, "passerelle.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	write := func() {
		t.Helper()
		if err := s.Tx(ctx, func(tx store.Tx) error {
			return tx.Audit(ctx, store.AuditRecord{Tenant: "demo", Agent: "PractitionerRole/pr-1", Action: "R", Entity: "Patient/p1", Patient: "Patient/p1", Outcome: "0"})
		}); err != nil {
			t.Fatal(err)
		}
	}
	write()
	write()
	if err := keyAudit(ctx, cfg, s); err != nil {
		t.Fatal(err)
	}
	write()
	b, err := os.ReadFile(filepath.Join(dir, auditKeyFile))
	if err != nil || !strings.Contains(string(b), "\nfrom 3\n") {
		t.Fatalf("key file: %q %v", b, err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, auditKeyFile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v", fi.Mode().Perm())
	}
	if n, err := VerifyAudit(ctx, s.AuditLog()); err != nil || n != 3 {
		t.Errorf("verify: %d %v", n, err)
	}
	recs, _ := s.AuditLog().List(ctx, 0, 10)
	if recs[0].Hash != store.AuditHash(recs[0]) || recs[2].Hash == store.AuditHash(recs[2]) {
		t.Errorf("records before the key unkeyed, after it keyed: %+v", recs)
	}
	// The same file again: the same key, from the same record.
	k, err := loadAuditKey(ctx, cfg, s.AuditLog(), true)
	if err != nil || k.From != 3 || k.Hash(recs[2]) != recs[2].Hash {
		t.Errorf("reloaded key: from %d, %v", k.From, err)
	}
}
