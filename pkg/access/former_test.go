package access

import (
	"context"
	"encoding/json"
	"maps"
	"path/filepath"
	"testing"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/fhir"
	"github.com/passerelle-sante/passerelle/pkg/pathway"
	"github.com/passerelle-sante/passerelle/pkg/store"
	"github.com/passerelle-sante/passerelle/pkg/store/sqlite"
)

// closedAt is when the former nurse's care of each patient below ended.
var closedAt = time.Date(2026, 5, 20, 10, 0, 0, 0, time.UTC)

const week = 7 * 24 * time.Hour

// formerWorld is a store in which the nurse rf (PractitionerRole/rf) was
// in care of five patients and still is of one:
//
//   - pat-run: her accepted task of a running episode (in care);
//   - pat-hold: her on-hold task of an episode on hold (readmitted: in care);
//   - pat-done: her task completed at closedAt, the episode still running
//     and its team hers no longer;
//   - pat-moved: her task given to someone else at closedAt (it is no
//     longer hers: version 1 named her, version 2 another nurse);
//   - pat-fin: the episode finished at closedAt: her task cancelled, the
//     team inactive;
//   - pat-left: she left the active team at closedAt;
//   - pat-stale: an open task of hers left on a finished episode.
func formerWorld(t *testing.T) store.Store {
	t.Helper()
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	put := func(res map[string]any) store.Resource {
		b, _ := json.Marshal(res)
		var out store.Resource
		err := s.Tx(ctx, func(tx store.Tx) error { var err error; out, err = tx.Update(ctx, "demo", b, 0); return err })
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	ref := func(r string) map[string]any { return map[string]any{"reference": r} }
	at := closedAt.Format(time.RFC3339)
	episode := func(id, status string) {
		pat := "Patient/pat-" + id
		put(map[string]any{"resourceType": "Patient", "id": "pat-" + id})
		put(map[string]any{"resourceType": "Observation", "id": "obs-" + id, "status": "final",
			"code": map[string]any{"text": "poids"}, "subject": ref(pat)})
		put(map[string]any{"resourceType": "CarePlan", "id": "cp-" + id, "status": "active", "intent": "plan", "subject": ref(pat)})
		ep := map[string]any{"resourceType": "EpisodeOfCare", "id": "ep-" + id, "status": status, "patient": ref(pat),
			"period":    map[string]any{"start": "2026-04-01T08:00:00Z"},
			"extension": []any{map[string]any{"url": pathway.ExtEpisodeCarePlan, "valueReference": ref("CarePlan/cp-" + id)}}}
		if status == "finished" {
			ep["period"].(map[string]any)["end"] = at
		}
		put(ep)
	}
	task := func(id, patient, status, owner string) map[string]any {
		return map[string]any{"resourceType": "Task", "id": id, "status": status, "intent": "order",
			"basedOn": []any{ref("CarePlan/cp-" + patient)}, "for": ref("Patient/pat-" + patient), "owner": ref(owner),
			"lastModified": at}
	}
	team := func(id, patient, status string, participant map[string]any) {
		ct := map[string]any{"resourceType": "CareTeam", "id": id, "status": status, "subject": ref("Patient/pat-" + patient),
			"period":      map[string]any{"start": "2026-04-01T08:00:00Z"},
			"participant": []any{participant, map[string]any{"member": ref("PractitionerRole/other"), "period": map[string]any{"start": "2026-04-01"}}}}
		if status == "inactive" {
			ct["period"].(map[string]any)["end"] = at
		}
		put(ct)
	}
	for id, status := range map[string]string{"run": "active", "hold": "onhold", "done": "active", "moved": "active",
		"fin": "finished", "left": "active", "stale": "finished"} {
		episode(id, status)
	}
	put(task("t-run", "run", "accepted", "PractitionerRole/rf"))
	put(task("t-hold", "hold", "on-hold", "PractitionerRole/rf"))
	put(task("t-done", "done", "completed", "PractitionerRole/rf"))
	put(task("t-moved", "moved", "requested", "PractitionerRole/rf"))
	put(task("t-moved", "moved", "requested", "PractitionerRole/other"))
	put(task("t-fin", "fin", "cancelled", "PractitionerRole/rf"))
	team("ct-fin", "fin", "inactive", map[string]any{"member": ref("PractitionerRole/rf"), "period": map[string]any{"start": "2026-04-01"}})
	team("ct-left", "left", "active", map[string]any{"member": ref("PractitionerRole/rf"), "period": map[string]any{"start": "2026-04-01", "end": at}})
	put(task("t-stale", "stale", "requested", "PractitionerRole/rf"))
	return s
}

var formerNurse = directory.Actor{Tenant: "demo", Practitioner: "Practitioner/f", Roles: []directory.Role{{ID: "rf", Code: directory.RoleNurse}}}

// TestFormerMember: access ends with the care. The former nurse reads a
// patient's data for a week after her part ended, and writes it never
// after; six months later she reaches nothing. A task reassigned away is
// no longer hers, even in its old versions.
func TestFormerMember(t *testing.T) {
	st := formerWorld(t)
	ctx := context.Background()
	type want struct{ read, write fhir.Kind }
	const yes, no = permitted, fhir.Forbidden
	cases := []struct {
		patient string
		after   time.Duration // since closedAt
		want    want
	}{
		{"run", 2 * 24 * time.Hour, want{yes, yes}},
		{"run", 180 * 24 * time.Hour, want{yes, yes}},
		{"hold", 2 * 24 * time.Hour, want{yes, yes}},
		{"done", 2 * 24 * time.Hour, want{yes, no}},
		{"done", 8 * 24 * time.Hour, want{no, no}},
		{"done", 180 * 24 * time.Hour, want{no, no}},
		{"moved", time.Hour, want{no, no}},
		{"moved", 180 * 24 * time.Hour, want{no, no}},
		{"fin", 2 * 24 * time.Hour, want{yes, no}},
		{"fin", 180 * 24 * time.Hour, want{no, no}},
		{"left", 2 * 24 * time.Hour, want{yes, no}},
		{"left", 180 * 24 * time.Hour, want{no, no}},
		{"stale", 2 * 24 * time.Hour, want{no, no}},
		// The review's +24 and +120 months.
		{"done", 2 * 365 * 24 * time.Hour, want{no, no}},
		{"fin", 10 * 365 * 24 * time.Hour, want{no, no}},
	}
	for _, tc := range cases {
		p := Policy{Now: func() time.Time { return closedAt.Add(tc.after) }, Grace: week}
		name := tc.patient + " +" + tc.after.String()
		obs, err := st.Read(ctx, "Observation", "obs-"+tc.patient)
		if err != nil {
			t.Fatal(err)
		}
		got := want{kind(p.Read(ctx, st, formerNurse, obs)), kind(p.Patient(ctx, st, formerNurse, "Patient/pat-"+tc.patient))}
		if got != tc.want {
			t.Errorf("%s: read %s write %s, want read %s write %s", name, got.read, got.write, tc.want.read, tc.want.write)
		}
		r, _ := p.ReadPatient(ctx, st, formerNurse, "Patient/pat-"+tc.patient)
		if wantGrace := tc.want == (want{yes, no}); (r == GraceReach) != wantGrace {
			t.Errorf("%s: reach %d, grace %v", name, r, wantGrace)
		}
	}
	// Without a grace period, nothing after the care.
	strict := Policy{Now: func() time.Time { return closedAt.Add(time.Hour) }}
	for _, id := range []string{"done", "fin", "left"} {
		if got := kind(strict.Patient(ctx, st, formerNurse, "Patient/pat-"+id)); got != fhir.Forbidden {
			t.Errorf("%s, no grace: write %s", id, got)
		}
		if _, err := strict.ReadPatient(ctx, st, formerNurse, "Patient/pat-"+id); kind(err) != fhir.Forbidden {
			t.Errorf("%s, no grace: read %s", id, kind(err))
		}
	}
	// The old version of the task that was hers: what decides is who she
	// is to the patient now.
	old, err := st.VRead(ctx, "Task", "t-moved", 1)
	if err != nil {
		t.Fatal(err)
	}
	p := Policy{Now: func() time.Time { return closedAt.Add(time.Hour) }, Grace: week}
	if got := kind(p.Read(ctx, st, formerNurse, old)); got != fhir.Forbidden {
		t.Errorf("old version of a task reassigned away: %s, want forbidden", got)
	}
}

// TestFormerMemberSearch: the search narrowing applies the same rule, so
// results and totals count only the patients she still reaches, and says
// which of them she reaches under the grace period.
func TestFormerMemberSearch(t *testing.T) {
	st := formerWorld(t)
	ctx := context.Background()
	for _, tc := range []struct {
		after time.Duration
		want  map[string]Reach
	}{
		{2 * 24 * time.Hour, map[string]Reach{"Patient/pat-run": CareReach, "Patient/pat-hold": CareReach,
			"Patient/pat-done": GraceReach, "Patient/pat-fin": GraceReach, "Patient/pat-left": GraceReach}},
		{180 * 24 * time.Hour, map[string]Reach{"Patient/pat-run": CareReach, "Patient/pat-hold": CareReach}},
	} {
		now := closedAt.Add(tc.after)
		got, err := CarePatients(ctx, st, formerNurse, now, week)
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(got, tc.want) {
			t.Errorf("+%s: CarePatients %v, want %v", tc.after, got, tc.want)
		}
		p := Policy{Now: func() time.Time { return now }, Grace: week}
		q := store.Query{Type: "Observation", Total: true}
		grace, err := p.SearchReach(ctx, st, formerNurse, &q)
		if err != nil {
			t.Fatal(err)
		}
		page, err := st.Search(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if page.Total != len(tc.want) {
			t.Errorf("+%s: %d observations found, want %d", tc.after, page.Total, len(tc.want))
		}
		for ref, r := range tc.want {
			if grace[ref] != (r == GraceReach) {
				t.Errorf("+%s: %s under grace: %v", tc.after, ref, grace[ref])
			}
		}
	}
}
