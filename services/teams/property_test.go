package teams_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/store"
)

// TestPropertyOwnership runs random sequences of discharges, declines,
// acceptances, completions, time passing (acceptance time-outs, overdue
// tasks, escalations), absences and directory changes, every event
// delivered twice, and checks after each step that no task is owned by
// someone outside its team, every open task has an owner, every task left
// rejected has an escalation, and no notification went out twice.
func TestPropertyOwnership(t *testing.T) {
	seeds := []uint64{1, 2, 3, 4, 5}
	steps := 18
	if testing.Short() {
		seeds, steps = seeds[:2], 10
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 99))
			r := newRig(t, sqliteOpener(t))
			r.dup = true
			nurses := []string{"pr-ide-leroy", "pr-ide-martin"}
			var patients []string
			var log []string
			for step := range steps {
				var op string
				switch k := rng.IntN(10); {
				case k < 3 || len(patients) == 0:
					op = "discharge"
					d := declared{}
					if rng.IntN(2) == 0 {
						d.gpRPPS = rppsBernard
					}
					if rng.IntN(5) == 0 {
						d.postal, d.commune = "69001", "69381"
					}
					enc := fmt.Sprintf("enc-%d-%d", seed, step)
					p := r.patient(d, enc)
					r.discharge(p, enc)
					patients = append(patients, p)
				case k < 5:
					op = "decline"
					if id, ok := r.pick(rng, "requested"); ok {
						r.act(id, "rejected")
					}
				case k < 6:
					op = "accept"
					if id, ok := r.pick(rng, "requested"); ok {
						r.act(id, "accepted")
					}
				case k < 7:
					op = "complete"
					if id, ok := r.pick(rng, "accepted"); ok {
						r.act(id, "completed")
					}
				case k < 8:
					op = "absence"
					r.setAway(nurses[rng.IntN(len(nurses))], rng.IntN(2) == 0)
				case k < 9:
					op = "directory"
					r.setActive(nurses[rng.IntN(len(nurses))], rng.IntN(3) != 0)
				default:
					op = "time"
					r.advance(time.Duration(1+rng.IntN(30)) * time.Hour)
				}
				log = append(log, op)
				if err := r.invariants(); err != nil {
					t.Fatalf("after %s: %v", strings.Join(log, ", "), err)
				}
			}
		})
	}
}

// pick returns a random professional task in status.
func (r *rig) pick(rng *rand.Rand, status string) (string, bool) {
	var ids []string
	for _, t := range r.search("Task", store.Param{Name: "status", Kind: store.KindToken, Values: []store.Value{{Code: status}}}) {
		if strings.HasPrefix(s(t, "owner", "reference"), "PractitionerRole/") {
			ids = append(ids, t["id"].(string))
		}
	}
	slices.Sort(ids)
	if len(ids) == 0 {
		return "", false
	}
	return ids[rng.IntN(len(ids))], true
}

func (r *rig) editRole(id string, fn func(m map[string]any)) {
	r.t.Helper()
	r.tx(func(tx store.Tx) error {
		res, err := tx.Read(r.ctx, "PractitionerRole", id)
		if err != nil {
			return err
		}
		m := map[string]any{}
		_ = jsonUnmarshal(res.Body, &m)
		fn(m)
		delete(m, "meta")
		_, err = tx.Update(r.ctx, tenant, mustJSON(m), res.Version)
		return err
	})
}

func (r *rig) setAway(id string, away bool) {
	r.editRole(id, func(m map[string]any) {
		delete(m, "notAvailable")
		if away {
			m["notAvailable"] = []any{map[string]any{"description": "Absence", "during": map[string]any{
				"start": r.clk.Now().Add(-time.Minute).Format(time.RFC3339), "end": r.clk.Now().Add(48 * time.Hour).Format(time.RFC3339)}}}
		}
	})
}

func (r *rig) setActive(id string, active bool) {
	r.editRole(id, func(m map[string]any) { m["active"] = active })
}

func (r *rig) invariants() error {
	teams := map[string]map[string]string{} // by patient
	for _, ct := range r.search("CareTeam") {
		if ct["status"] == "proposed" {
			continue
		}
		teams[s(ct, "subject", "reference")] = members(ct)
	}
	for _, t := range r.search("Task") {
		id, status := t["id"].(string), t["status"].(string)
		owner := s(t, "owner", "reference")
		role := code(t, "performerType")
		switch status {
		case "requested", "accepted", "in-progress":
			if owner == "" {
				return fmt.Errorf("open task %s (%s) has no owner", id, code(t, "code"))
			}
		case "rejected":
			if owner == "" && len(r.search("Task", refParam("focus", "Task/"+id))) == 0 {
				return fmt.Errorf("task %s (%s) rejected with nobody left and no escalation", id, code(t, "code"))
			}
		}
		if role == "" || !strings.HasPrefix(owner, "PractitionerRole/") {
			continue
		}
		team := teams[s(t, "for", "reference")]
		if _, ok := team[owner]; !ok {
			return fmt.Errorf("task %s (%s, %s) owned by %s, not on the team %v", id, code(t, "code"), status, owner, team)
		}
	}
	seen := map[string]bool{}
	for _, n := range r.notif.all() {
		if seen[n.ID] {
			return fmt.Errorf("notification %s sent twice", n.ID)
		}
		seen[n.ID] = true
	}
	return nil
}
