package access

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/pathway"
	"github.com/passerelle-sante/passerelle/pkg/store"
	"github.com/passerelle-sante/passerelle/pkg/store/sqlite"
)

// BenchmarkRelation measures the access check every request of a
// professional makes (SQLite), in a CPTS of 2,000 patients where the nurse
// has a year behind her: 50 patients in her care now (team member of 25,
// owner of open tasks of 25 more), 200 former patients (ended teams,
// closed tasks), and 5,000 tasks of others:
//
//	go test -run '^$' -bench Relation -benchtime 2000x ./pkg/access/
//
// team: a member of the patient's active team (one search); task: the
// owner of an open task of a running episode (three); former: nothing
// left (four, the worst case); patients: CarePatients, the narrowing of
// every search (five).
func BenchmarkRelation(b *testing.B) {
	ctx := context.Background()
	st := benchStore(b)
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	a := directory.Actor{Tenant: "demo", Practitioner: "Practitioner/n", Roles: []directory.Role{{ID: "rn", Code: directory.RoleNurse}}}
	for _, tc := range []struct {
		name, patient string
		want          Reach
	}{
		{"team", "Patient/p0010", CareReach},
		{"task", "Patient/p0030", CareReach},
		{"former", "Patient/p0100", NoReach},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				r, err := Relation(ctx, st, a, tc.patient, now, 7*24*time.Hour)
				if err != nil || r != tc.want {
					b.Fatalf("%s: %v %v, want %v", tc.patient, r, err, tc.want)
				}
			}
		})
	}
	b.Run("patients", func(b *testing.B) {
		for b.Loop() {
			ps, err := CarePatients(ctx, st, a, now, 7*24*time.Hour)
			if err != nil || len(ps) != 50 {
				b.Fatalf("%d patients, %v", len(ps), err)
			}
		}
	})
}

// benchStore builds the CPTS of BenchmarkRelation.
func benchStore(b *testing.B) store.Store {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "db"), sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	var batch []map[string]any
	flush := func() {
		err := st.Tx(ctx, func(tx store.Tx) error {
			for _, r := range batch {
				body, _ := json.Marshal(r)
				if _, err := tx.Create(ctx, "demo", body); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		batch = batch[:0]
	}
	ref := func(r string) map[string]any { return map[string]any{"reference": r} }
	for i := range 2000 {
		pid := fmt.Sprintf("p%04d", i)
		pat := "Patient/" + pid
		epStatus, teamStatus, nurse := "active", "active", "PractitionerRole/other"
		taskStatus, taskOwner := "requested", "PractitionerRole/other"
		switch {
		case i < 25: // in her team
			nurse = "PractitionerRole/rn"
		case i < 50: // her open task
			taskOwner, taskStatus = "PractitionerRole/rn", "accepted"
		case i < 250: // former: the episode ended months ago
			epStatus, teamStatus, nurse = "finished", "inactive", "PractitionerRole/rn"
			taskOwner, taskStatus = "PractitionerRole/rn", "completed"
		}
		team := map[string]any{"resourceType": "CareTeam", "id": "ct-" + pid, "status": teamStatus, "subject": ref(pat),
			"period":      map[string]any{"start": "2026-01-01"},
			"participant": []any{map[string]any{"member": ref(nurse)}, map[string]any{"member": ref("PractitionerRole/gp")}}}
		if teamStatus == "inactive" {
			team["period"] = map[string]any{"start": "2026-01-01", "end": "2026-06-01"}
		}
		batch = append(batch,
			map[string]any{"resourceType": "Patient", "id": pid},
			map[string]any{"resourceType": "EpisodeOfCare", "id": "ep-" + pid, "status": epStatus, "patient": ref(pat),
				"extension": []any{map[string]any{"url": pathway.ExtEpisodeCarePlan, "valueReference": ref("CarePlan/cp-" + pid)}}},
			team)
		for k := range 3 {
			batch = append(batch, map[string]any{"resourceType": "Task", "id": fmt.Sprintf("t-%s-%d", pid, k), "status": taskStatus,
				"intent": "order", "for": ref(pat), "owner": ref(taskOwner), "basedOn": []any{ref("CarePlan/cp-" + pid)},
				"lastModified": "2026-06-01T10:00:00Z"})
		}
		if i%100 == 99 {
			flush()
		}
	}
	flush()
	return st
}
