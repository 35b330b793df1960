package access

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
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

func status(err error) int {
	if err == nil {
		return 200
	}
	var fe *fhir.Error
	if errors.As(err, &fe) {
		return fe.Status
	}
	return 500
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
		want int
	}{
		{"coordinator patients", actor(directory.RoleCoordinator), "Patient", 200},
		{"referent nurse patients", actor(directory.RoleCoordinatingNurse), "Patient", 200},
		{"nurse patients", actor(directory.RoleNurse), "Patient", 200},
		{"nurse directory", actor(directory.RoleNurse), "PractitionerRole", 200},
		{"nurse templates", actor(directory.RoleNurse), "PlanDefinition", 200},
		{"nurse message headers", actor(directory.RoleNurse), "MessageHeader", 403},
		{"nurse audit", actor(directory.RoleNurse), "AuditEvent", 403},
		{"referent nurse audit", actor(directory.RoleCoordinatingNurse), "AuditEvent", 403},
		{"coordinator audit", actor(directory.RoleCoordinator), "AuditEvent", 200},
		{"admin clinical", actor(directory.RoleAdmin), "Observation", 403},
		{"admin directory", actor(directory.RoleAdmin), "Device", 200},
		{"system", system, "Patient", 403},
		{"nobody", directory.Actor{Tenant: "demo", Practitioner: "Practitioner/x"}, "Observation", 403},
	}
	for _, tc := range cases {
		q := store.Query{Tenant: "other", Type: tc.typ}
		err := Policy{Now: func() time.Time { return now }}.Search(context.Background(), st, tc.a, &q)
		if got := status(err); got != tc.want {
			t.Errorf("%s: %d, want %d (%v)", tc.name, got, tc.want, err)
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
	read := func(a directory.Actor, typ, id string) int {
		res, err := st.Read(ctx, typ, id)
		if err != nil {
			t.Fatal(err)
		}
		return status(p.Read(ctx, st, a, res))
	}
	nurse := actor(directory.RoleNurse)
	left := directory.Actor{Tenant: "demo", Roles: []directory.Role{{ID: "r9", Code: directory.RoleNurse}}}
	cases := []struct {
		name    string
		a       directory.Actor
		typ, id string
		want    int
	}{
		{"nurse, own team's patient", nurse, "Patient", "pat-in", 200},
		{"nurse, own team's observation", nurse, "Observation", "obs-pat-in", 200},
		{"nurse, patient of an owned task", nurse, "Observation", "obs-pat-task", 200},
		{"nurse, own task", nurse, "Task", "task-1", 200},
		{"nurse, other team's patient", nurse, "Patient", "pat-out", 403},
		{"nurse, other team's task", nurse, "Task", "task-2", 403},
		{"nurse, inactive team", nurse, "Observation", "obs-pat-ended", 403},
		{"member who left", left, "Patient", "pat-in", 403},
		{"coordinator", actor(directory.RoleCoordinator), "Observation", "obs-pat-out", 200},
		{"admin", actor(directory.RoleAdmin), "Patient", "pat-in", 403},
		{"coordinator, another CPTS", actor(directory.RoleCoordinator), "Patient", "pat-autre", 404},
		{"system", directory.Actor{Tenant: "demo", System: "chu", Device: "Device/chu"}, "Patient", "pat-in", 403},
	}
	for _, tc := range cases {
		if got := read(tc.a, tc.typ, tc.id); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
	if got := status(p.Patient(ctx, st, nurse, "Patient/pat-in")); got != 200 {
		t.Errorf("Patient, in care: %d", got)
	}
	if got := status(p.Patient(ctx, st, nurse, "Patient/pat-out")); got != 403 {
		t.Errorf("Patient, not in care: %d", got)
	}
	// Before the member left, they were in care.
	before := Policy{Now: func() time.Time { return time.Date(2026, 10, 15, 0, 0, 0, 0, time.UTC) }}
	if got := status(before.Patient(ctx, st, left, "Patient/pat-in")); got != 200 {
		t.Errorf("before leaving: %d", got)
	}
	other := store.Resource{Tenant: "elsewhere", Type: "Practitioner"}
	if got := status(p.Read(ctx, st, actor(directory.RoleCoordinator), other)); got != http.StatusNotFound {
		t.Errorf("another tenant's resource: %d, want 404", got)
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
		want int
	}{
		{actor(directory.RoleCoordinator), "PractitionerRole", 200},
		{actor(directory.RoleAdmin), "Device", 200},
		{actor(directory.RoleAdmin), "Organization", 200},
		{actor(directory.RoleAdmin), "Practitioner", 403},
		{actor(directory.RoleAdmin), "PlanDefinition", 403},
		{actor(directory.RoleNurse), "Practitioner", 403},
		{actor(directory.RoleCoordinator), "PlanDefinition", 200},
		{actor(directory.RoleCoordinatingNurse), "PlanDefinition", 403},
		{actor(directory.RoleCoordinator), "Patient", 403},
		{directory.Actor{Tenant: "demo", System: "chu"}, "Organization", 403},
	}
	for _, tc := range cases {
		if got := status(Policy{}.Write(context.Background(), tc.a, tc.typ)); got != tc.want {
			t.Errorf("%v writes %s: %d, want %d", tc.a.Roles, tc.typ, got, tc.want)
		}
	}
}

func TestOutcomes(t *testing.T) {
	for _, tc := range []struct {
		a    directory.Actor
		want int
	}{
		{actor(directory.RoleCoordinator), 200},
		{actor(directory.RoleCoordinatingNurse), 200},
		{actor(directory.RoleNurse), 403},
		{actor(directory.RoleAdmin), 403},
		{directory.Actor{Tenant: "demo", System: "chu", Roles: []directory.Role{{ID: "x", Code: directory.RoleCoordinator}}}, 403},
	} {
		if got := status(Policy{}.Outcomes(context.Background(), tc.a)); got != tc.want {
			t.Errorf("%v: %d, want %d", tc.a.Roles, got, tc.want)
		}
	}
}
