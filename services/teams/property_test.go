package teams_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/directory"
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

// addOutsideNurse puts a nurse whose territory is Lyon only into the
// directory: she may take Lyon patients, never a Roanne one unless a
// coordinator chooses her.
func (r *rig) addOutsideNurse() string {
	r.t.Helper()
	r.tx(func(tx store.Tx) error {
		_, err := tx.Create(r.ctx, tenant, mustJSON(map[string]any{"resourceType": "PractitionerRole", "id": "pr-ide-lyon", "active": true,
			"practitioner": map[string]any{"reference": "Practitioner/p-ide-lyon"},
			"organization": map[string]any{"reference": "Organization/" + directory.DevCPTS},
			"code":         []any{map[string]any{"coding": []any{map[string]any{"system": directory.SystemTeamRole, "code": directory.RoleNurse}}}},
			"extension": []any{map[string]any{"url": directory.ExtTerritory, "extension": []any{
				map[string]any{"url": "commune", "valueCode": "69381"}, map[string]any{"url": "postalCode", "valueString": "69001"}}}}}))
		return err
	})
	return "PractitionerRole/pr-ide-lyon"
}

func (r *rig) coordinator() directory.Actor {
	r.t.Helper()
	a, err := (&directory.Resolver{Store: r.s}).Person(r.ctx, tenant, "coord.cpts")
	if err != nil {
		r.t.Fatal(err)
	}
	return a
}

// TestReofferStaysInTerritory: a Roanne patient's nurse visit declined by
// both Roanne nurses goes to the referent as an escalation, not to the Lyon
// nurse, although a coordinator put her on the patient's team for another
// task.
func TestReofferStaysInTerritory(t *testing.T) {
	r := newRig(t, sqliteOpener(t))
	lyon := r.addOutsideNurse()
	p := r.patient(declared{}, "enc-terr")
	r.discharge(p, "enc-terr")
	e := r.episode(p)
	first := e.byCode("first-contact")[0]["id"].(string)
	if err := r.tm.Reassign(r.ctx, r.coordinator(), first, lyon); err != nil {
		t.Fatal(err)
	}
	r.pump()
	if members(r.episode(p).team)[lyon] != "nurse" {
		t.Fatal("the nurse chosen by the coordinator is not on the team")
	}
	visit := e.byCode("nurse-follow-up")[0]["id"].(string)
	for range 2 {
		owner := s(r.read("Task", visit), "owner", "reference")
		if owner == lyon {
			break
		}
		r.act(visit, "rejected")
	}
	task := r.read("Task", visit)
	if owner := s(task, "owner", "reference"); owner == lyon {
		t.Fatalf("the declined Roanne visit was offered to the Lyon nurse (status %v)", task["status"])
	}
	if task["status"] != "rejected" {
		t.Fatalf("after both Roanne nurses declined: %v owned by %q", task["status"], s(task, "owner", "reference"))
	}
	esc := r.search("Task", refParam("focus", "Task/"+visit))
	if len(esc) != 1 || s(esc[0], "owner", "reference") != "PractitionerRole/pr-idec-moreau" {
		t.Fatalf("escalation %v", esc)
	}
}

// TestPropertyReofferStaysInTerritory runs random declines, acceptance
// time-outs, acceptances and coordinator reassignments to a nurse of
// another territory, and checks after each step that she owns no task of a
// Roanne patient but those a coordinator gave her.
func TestPropertyReofferStaysInTerritory(t *testing.T) {
	seeds := []uint64{11, 12, 13, 14}
	steps := 24
	if testing.Short() {
		seeds, steps = seeds[:2], 14
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			r := newRig(t, sqliteOpener(t))
			lyon := r.addOutsideNurse()
			coord := r.coordinator()
			chosen := map[string]bool{} // tasks a coordinator gave her
			var log []string
			for step := range steps {
				var op string
				switch k := rng.IntN(10); {
				case k < 2 || step == 0:
					op = "discharge"
					enc := fmt.Sprintf("enc-t-%d-%d", seed, step)
					r.discharge(r.patient(declared{}, enc), enc)
				case k < 6:
					op = "decline"
					if id, ok := r.pick(rng, "requested"); ok {
						r.act(id, "rejected")
					}
				case k < 7:
					op = "accept"
					if id, ok := r.pick(rng, "requested"); ok {
						r.act(id, "accepted")
					}
				case k < 8:
					op = "reassign"
					if id, ok := r.pick(rng, "requested"); ok && code(r.read("Task", id), "performerType") == directory.RoleNurse {
						if err := r.tm.Reassign(r.ctx, coord, id, lyon); err != nil {
							t.Fatal(err)
						}
						chosen[id] = true
						r.pump()
					}
				default:
					op = "time"
					r.advance(time.Duration(1+rng.IntN(30)) * time.Hour)
				}
				log = append(log, op)
				for _, task := range r.search("Task", refParam("owner", lyon)) {
					if id := task["id"].(string); !chosen[id] {
						t.Fatalf("after %s: Roanne task %s (%s, %v) offered to the Lyon nurse", strings.Join(log, ", "), id, code(task, "code"), task["status"])
					}
				}
				if err := r.invariants(); err != nil {
					t.Fatalf("after %s: %v", strings.Join(log, ", "), err)
				}
			}
		})
	}
}
