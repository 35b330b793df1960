package access

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/fhir"
	"github.com/passerelle-sante/passerelle/pkg/pathway"
	"github.com/passerelle-sante/passerelle/pkg/store"
	"github.com/passerelle-sante/passerelle/pkg/store/sqlite"
)

func actor(roles ...string) directory.Actor {
	a := directory.Actor{Tenant: "demo", Practitioner: "Practitioner/p"}
	for i, r := range roles {
		a.Roles = append(a.Roles, directory.Role{ID: "r" + string(rune('0'+i)), Code: r})
	}
	return a
}

// permitted is kind's answer when the policy lets the actor through.
const permitted fhir.Kind = "permitted"

// kind is the kind of the policy's answer: permitted, or the error's kind.
func kind(err error) fhir.Kind {
	if err == nil {
		return permitted
	}
	var fe *fhir.Error
	if errors.As(err, &fe) {
		return fe.Kind
	}
	return fhir.Internal
}

var now = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// world is a store holding two patients: pat-in, whose active CareTeam
// counts r0 (the nurse) as an active member and r9 as a member who left;
// pat-out, cared for by others; pat-task, one of whose tasks r0 owns.
func world(t *testing.T) store.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	put := func(tenant string, res map[string]any) {
		b, _ := json.Marshal(res)
		if err := s.Tx(context.Background(), func(tx store.Tx) error { _, err := tx.Create(context.Background(), tenant, b); return err }); err != nil {
			t.Fatal(err)
		}
	}
	member := func(ref, start, end string) map[string]any {
		p := map[string]any{"member": map[string]any{"reference": ref}, "period": map[string]any{"start": start}}
		if end != "" {
			p["period"].(map[string]any)["end"] = end
		}
		return p
	}
	for _, id := range []string{"pat-in", "pat-out", "pat-task", "pat-ended"} {
		put("demo", map[string]any{"resourceType": "Patient", "id": id})
		put("demo", map[string]any{"resourceType": "Observation", "id": "obs-" + id, "status": "final",
			"code": map[string]any{"text": "poids"}, "subject": map[string]any{"reference": "Patient/" + id}})
	}
	put("demo", map[string]any{"resourceType": "CareTeam", "id": "ct-in", "status": "active",
		"subject":     map[string]any{"reference": "Patient/pat-in"},
		"participant": []any{member("PractitionerRole/r0", "2026-10-01", ""), member("PractitionerRole/r9", "2026-10-01", "2026-11-01T00:00:00+01:00")}})
	put("demo", map[string]any{"resourceType": "CareTeam", "id": "ct-out", "status": "active",
		"subject":     map[string]any{"reference": "Patient/pat-out"},
		"participant": []any{member("PractitionerRole/other", "2026-10-01", "")}})
	// An ended episode: the team is inactive, its members see nothing more.
	put("demo", map[string]any{"resourceType": "CareTeam", "id": "ct-ended", "status": "inactive",
		"subject":     map[string]any{"reference": "Patient/pat-ended"},
		"participant": []any{member("PractitionerRole/r0", "2026-01-01", "")}})
	// pat-task's running episode, whose CarePlan task-1 is based on.
	put("demo", map[string]any{"resourceType": "CarePlan", "id": "cp-task", "status": "active", "intent": "plan",
		"subject": map[string]any{"reference": "Patient/pat-task"}})
	put("demo", map[string]any{"resourceType": "EpisodeOfCare", "id": "ep-task", "status": "active",
		"patient":   map[string]any{"reference": "Patient/pat-task"},
		"extension": []any{map[string]any{"url": pathway.ExtEpisodeCarePlan, "valueReference": map[string]any{"reference": "CarePlan/cp-task"}}}})
	put("demo", map[string]any{"resourceType": "Task", "id": "task-1", "status": "requested", "intent": "order",
		"basedOn": []any{map[string]any{"reference": "CarePlan/cp-task"}},
		"for":     map[string]any{"reference": "Patient/pat-task"}, "owner": map[string]any{"reference": "PractitionerRole/r0"}})
	put("demo", map[string]any{"resourceType": "Task", "id": "task-2", "status": "requested", "intent": "order",
		"for": map[string]any{"reference": "Patient/pat-out"}, "owner": map[string]any{"reference": "PractitionerRole/other"}})
	// Another CPTS's patient.
	put("autre", map[string]any{"resourceType": "Patient", "id": "pat-autre"})
	return s
}

func TestSearch(t *testing.T) {
	st := world(t)
	system := directory.Actor{Tenant: "demo", System: "chu", FINESS: "420000002", Device: "Device/chu"}
	cases := []struct {
		name string
		a    directory.Actor
		typ  string
		want fhir.Kind
	}{
		{"coordinator patients", actor(directory.RoleCoordinator), "Patient", permitted},
		{"referent nurse patients", actor(directory.RoleCoordinatingNurse), "Patient", permitted},
		{"nurse patients", actor(directory.RoleNurse), "Patient", permitted},
		{"nurse directory", actor(directory.RoleNurse), "PractitionerRole", permitted},
		{"nurse templates", actor(directory.RoleNurse), "PlanDefinition", permitted},
		{"nurse message headers", actor(directory.RoleNurse), "MessageHeader", fhir.Forbidden},
		{"nurse audit", actor(directory.RoleNurse), "AuditEvent", fhir.Forbidden},
		{"referent nurse audit", actor(directory.RoleCoordinatingNurse), "AuditEvent", fhir.Forbidden},
		{"coordinator audit", actor(directory.RoleCoordinator), "AuditEvent", permitted},
		{"admin clinical", actor(directory.RoleAdmin), "Observation", fhir.Forbidden},
		{"admin directory", actor(directory.RoleAdmin), "Device", permitted},
		{"system", system, "Patient", fhir.Forbidden},
		{"nobody", directory.Actor{Tenant: "demo", Practitioner: "Practitioner/x"}, "Observation", fhir.Forbidden},
	}
	for _, tc := range cases {
		q := store.Query{Tenant: "other", Type: tc.typ}
		err := Policy{Now: func() time.Time { return now }}.Search(context.Background(), st, tc.a, &q)
		if got := kind(err); got != tc.want {
			t.Errorf("%s: %s, want %s (%v)", tc.name, got, tc.want, err)
		}
		if err == nil && q.Tenant != "demo" {
			t.Errorf("%s: tenant %q not forced to the actor's", tc.name, q.Tenant)
		}
	}
}

// ids runs the search as a would, and returns the ids found and the total.
func ids(t *testing.T, st store.Store, a directory.Actor, typ string, params ...store.Param) ([]string, int) {
	t.Helper()
	q := store.Query{Type: typ, Params: params, Total: true}
	if err := (Policy{Now: func() time.Time { return now }}).Search(context.Background(), st, a, &q); err != nil {
		t.Fatalf("%s: %v", typ, err)
	}
	page, err := st.Search(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range page.Resources {
		out = append(out, r.ID)
	}
	slices.Sort(out)
	return out, page.Total
}

func TestSearchFollowsTheCareRelationship(t *testing.T) {
	st := world(t)
	nurse := actor(directory.RoleNurse)
	if got, total := ids(t, st, nurse, "Patient"); !slices.Equal(got, []string{"pat-in", "pat-task"}) || total != 2 {
		t.Errorf("nurse's patients: %v (total %d), want pat-in and pat-task", got, total)
	}
	if got, total := ids(t, st, nurse, "Observation"); !slices.Equal(got, []string{"obs-pat-in", "obs-pat-task"}) || total != 2 {
		t.Errorf("nurse's observations: %v (total %d)", got, total)
	}
	// Naming a patient outside the relationship finds nothing, total 0.
	outside := store.Param{Name: "patient", Kind: store.KindReference, Values: []store.Value{{Ref: "Patient/pat-out"}}}
	if got, total := ids(t, st, nurse, "Observation", outside); len(got) != 0 || total != 0 {
		t.Errorf("observations of another team's patient: %v (total %d)", got, total)
	}
	// Tasks of a patient in care, whoever owns them; never another's.
	if got, _ := ids(t, st, nurse, "Task"); !slices.Equal(got, []string{"task-1"}) {
		t.Errorf("nurse's tasks: %v", got)
	}
	// A member who left the team, or who is in no team: nothing at all.
	left := directory.Actor{Tenant: "demo", Roles: []directory.Role{{ID: "r9", Code: directory.RoleNurse}}}
	if got, total := ids(t, st, left, "Patient"); len(got) != 0 || total != 0 {
		t.Errorf("former member sees %v (total %d)", got, total)
	}
	// The coordinator sees the CPTS's patients, never another CPTS's.
	if got, _ := ids(t, st, actor(directory.RoleCoordinator), "Patient"); !slices.Equal(got, []string{"pat-ended", "pat-in", "pat-out", "pat-task"}) {
		t.Errorf("coordinator's patients: %v", got)
	}
}

func TestReadAndPatient(t *testing.T) {
	st := world(t)
	p := Policy{Now: func() time.Time { return now }}
	ctx := context.Background()
	read := func(a directory.Actor, typ, id string) fhir.Kind {
		res, err := st.Read(ctx, typ, id)
		if err != nil {
			t.Fatal(err)
		}
		return kind(p.Read(ctx, st, a, res))
	}
	nurse := actor(directory.RoleNurse)
	left := directory.Actor{Tenant: "demo", Roles: []directory.Role{{ID: "r9", Code: directory.RoleNurse}}}
	cases := []struct {
		name    string
		a       directory.Actor
		typ, id string
		want    fhir.Kind
	}{
		{"nurse, own team's patient", nurse, "Patient", "pat-in", permitted},
		{"nurse, own team's observation", nurse, "Observation", "obs-pat-in", permitted},
		{"nurse, patient of an owned task", nurse, "Observation", "obs-pat-task", permitted},
		{"nurse, own task", nurse, "Task", "task-1", permitted},
		{"nurse, other team's patient", nurse, "Patient", "pat-out", fhir.Forbidden},
		{"nurse, other team's task", nurse, "Task", "task-2", fhir.Forbidden},
		{"nurse, inactive team", nurse, "Observation", "obs-pat-ended", fhir.Forbidden},
		{"member who left", left, "Patient", "pat-in", fhir.Forbidden},
		{"coordinator", actor(directory.RoleCoordinator), "Observation", "obs-pat-out", permitted},
		{"admin", actor(directory.RoleAdmin), "Patient", "pat-in", fhir.Forbidden},
		{"coordinator, another CPTS", actor(directory.RoleCoordinator), "Patient", "pat-autre", fhir.NotFound},
		{"system", directory.Actor{Tenant: "demo", System: "chu", Device: "Device/chu"}, "Patient", "pat-in", fhir.Forbidden},
	}
	for _, tc := range cases {
		if got := read(tc.a, tc.typ, tc.id); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
	if got := kind(p.Patient(ctx, st, nurse, "Patient/pat-in")); got != permitted {
		t.Errorf("Patient, in care: %s", got)
	}
	if got := kind(p.Patient(ctx, st, nurse, "Patient/pat-out")); got != fhir.Forbidden {
		t.Errorf("Patient, not in care: %s", got)
	}
	// Before the member left, they were in care.
	before := Policy{Now: func() time.Time { return time.Date(2026, 10, 15, 0, 0, 0, 0, time.UTC) }}
	if got := kind(before.Patient(ctx, st, left, "Patient/pat-in")); got != permitted {
		t.Errorf("before leaving: %s", got)
	}
	other := store.Resource{Tenant: "elsewhere", Type: "Practitioner"}
	if got := kind(p.Read(ctx, st, actor(directory.RoleCoordinator), other)); got != fhir.NotFound {
		t.Errorf("another tenant's resource: %s, want not-found", got)
	}
}

func TestPeriodEnd(t *testing.T) {
	for _, tc := range []struct {
		end  string
		want time.Time
	}{
		{"2026-11-20", time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC).Add(-time.Hour)}, // midnight in Paris
		{"2026-11-20T10:00:00Z", time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)},
		{"2026-11", time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).Add(-time.Hour)},
	} {
		got, ok := fhirEnd(tc.end)
		if !ok || !got.Equal(tc.want) {
			t.Errorf("end %s: %v, want %v", tc.end, got, tc.want)
		}
	}
	if _, ok := fhirEnd("demain"); ok {
		t.Error("a malformed end was read")
	}
}

func TestWrite(t *testing.T) {
	cases := []struct {
		a    directory.Actor
		typ  string
		want fhir.Kind
	}{
		{actor(directory.RoleCoordinator), "PractitionerRole", permitted},
		{actor(directory.RoleAdmin), "Device", permitted},
		{actor(directory.RoleAdmin), "Organization", permitted},
		{actor(directory.RoleAdmin), "Practitioner", fhir.Forbidden},
		{actor(directory.RoleAdmin), "PlanDefinition", fhir.Forbidden},
		{actor(directory.RoleNurse), "Practitioner", fhir.Forbidden},
		{actor(directory.RoleCoordinator), "PlanDefinition", permitted},
		{actor(directory.RoleCoordinatingNurse), "PlanDefinition", fhir.Forbidden},
		{actor(directory.RoleCoordinator), "Patient", fhir.Forbidden},
		{directory.Actor{Tenant: "demo", System: "chu"}, "Organization", fhir.Forbidden},
	}
	for _, tc := range cases {
		if got := kind(Policy{}.Write(context.Background(), tc.a, tc.typ)); got != tc.want {
			t.Errorf("%v writes %s: %s, want %s", tc.a.Roles, tc.typ, got, tc.want)
		}
	}
}

func TestOutcomes(t *testing.T) {
	for _, tc := range []struct {
		a    directory.Actor
		want fhir.Kind
	}{
		{actor(directory.RoleCoordinator), permitted},
		{actor(directory.RoleCoordinatingNurse), permitted},
		{actor(directory.RoleNurse), fhir.Forbidden},
		{actor(directory.RoleAdmin), fhir.Forbidden},
		{directory.Actor{Tenant: "demo", System: "chu", Roles: []directory.Role{{ID: "x", Code: directory.RoleCoordinator}}}, fhir.Forbidden},
	} {
		if got := kind(Policy{}.Outcomes(context.Background(), tc.a)); got != tc.want {
			t.Errorf("%v: %s, want %s", tc.a.Roles, got, tc.want)
		}
	}
}
