package pathway_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/passerelle-sante/passerelle/pkg/intake"
	"github.com/passerelle-sante/passerelle/services/pathway"
)

// TestPropertyLifeEvents plays random sequences of discharges,
// cancellations, readmissions, deaths, refusals and observations, and
// checks after each step that the episodes and their tasks are consistent:
// no orphan task, no task due before its discharge, no open task on a
// closed episode, no open task on a held episode, no held task on an
// active one, a timer exactly for the open tasks, one running episode per
// pathway at most.
func TestPropertyLifeEvents(t *testing.T) {
	r := newRig(t)
	sequences := 300
	if testing.Short() || raceEnabled {
		sequences = 50
	}
	rng := rand.New(rand.NewPCG(20250314, 4))
	for seq := range sequences {
		p := r.patient("1948-03-15")
		now := paris("2025-01-06T09:00").Add(time.Duration(rng.IntN(300*24)) * time.Hour)
		var discharges, admits []string
		var log []string
		steps := 2 + rng.IntN(7)
		for range steps {
			now = now.Add(time.Duration(1+rng.IntN(6*24)) * time.Hour)
			r.clk.Set(now)
			switch k := rng.IntN(8); {
			case k <= 1:
				enc := uuid.NewString()
				if len(admits) > 0 && rng.IntN(2) == 0 {
					enc = admits[len(admits)-1] // the readmission ends
				}
				st := hfDischarge(p, enc, now)
				if rng.IntN(4) == 0 {
					st.diagnoses = nil // an inclusion to confirm
				}
				r.encounter(st)
				discharges = append(discharges, enc)
				log = append(log, "discharge")
			case k == 2 && len(discharges) > 0:
				enc := discharges[rng.IntN(len(discharges))]
				r.encounter(stay{patient: p, enc: enc, kind: intake.KindCancelDischarge})
				log = append(log, "cancel-discharge")
			case k == 3:
				enc := uuid.NewString()
				r.encounter(stay{patient: p, enc: enc, kind: intake.KindAdmit, start: now})
				admits = append(admits, enc)
				log = append(log, "admit")
			case k == 4 && len(admits) > 0:
				r.encounter(stay{patient: p, enc: admits[len(admits)-1], kind: intake.KindCancelAdmit})
				log = append(log, "cancel-admit")
			case k == 5 && rng.IntN(3) == 0:
				r.encounter(stay{patient: p, enc: uuid.NewString(), kind: intake.KindDeath, end: now, disposition: "exp"})
				log = append(log, "death")
			case k == 6:
				r.observe(p, now, "88020-3", nyha([]string{"420913000", "421704003"}[rng.IntN(2)]))
				log = append(log, "nyha")
			default:
				// The owner answers an open task: a refusal at first
				// contact, a confirmation, or plain completion.
				log = append(log, r.answerSomething(p, rng))
			}
			if err := r.consistent(p); err != nil {
				t.Fatalf("sequence %d %v: %v", seq, log, err)
			}
		}
	}
}

func (r *rig) answerSomething(p string, rng *rand.Rand) string {
	for _, v := range r.episodes(p) {
		for _, tk := range v.tasks {
			if tk["status"] != "requested" {
				continue
			}
			var bs string
			switch code(tk) {
			case "first-contact":
				bs = []string{"", "refused"}[rng.IntN(2)]
			case pathway.CodeConfirmInclusion:
				bs = []string{"include", "exclude"}[rng.IntN(2)]
			}
			r.updateTask(tk, func(m map[string]any) {
				m["status"] = "completed"
				if bs != "" {
					m["businessStatus"] = map[string]any{"coding": []any{map[string]any{"system": pathway.SystemBusinessStatus, "code": bs}}}
				}
			})
			return "complete " + code(tk) + " " + bs
		}
	}
	return "nothing to answer"
}

var openStatus = map[string]bool{"requested": true, "received": true, "accepted": true, "ready": true, "in-progress": true}

func (r *rig) consistent(p string) error {
	running := map[string]int{}
	episodes := r.episodes(p)
	for _, v := range episodes {
		st := v.ep["status"].(string)
		start, err := time.Parse(time.RFC3339, s(v.ep, "period", "start"))
		if err != nil {
			return fmt.Errorf("episode without a start: %v", v.ep)
		}
		if si := v.cp["supportingInfo"].([]any)[0].(map[string]any)["reference"]; si != "EpisodeOfCare/"+v.ep["id"].(string) {
			return fmt.Errorf("care plan of another episode: %v", si)
		}
		switch st {
		case "planned", "active", "onhold":
			running[v.cp["instantiatesCanonical"].([]any)[0].(string)]++
		}
		for _, tk := range v.tasks {
			ts := tk["status"].(string)
			end, err := time.Parse(time.RFC3339, due(tk))
			if err != nil || end.Before(start) {
				return fmt.Errorf("task %s due %s before the discharge %s", code(tk), due(tk), start)
			}
			if ws, _ := time.Parse(time.RFC3339, s(tk, "restriction", "period", "start")); ws.Before(start) || ws.After(end) {
				return fmt.Errorf("task %s window %v", code(tk), tk["restriction"])
			}
			switch {
			case (st == "finished" || st == "cancelled" || st == "entered-in-error") && (openStatus[ts] || ts == "on-hold"):
				return fmt.Errorf("%s task %s on a %s episode", ts, code(tk), st)
			case st == "onhold" && openStatus[ts]:
				return fmt.Errorf("%s task %s on a held episode", ts, code(tk))
			case st == "active" && ts == "on-hold":
				return fmt.Errorf("held task %s on an active episode", code(tk))
			}
			if openStatus[ts] != r.pendingTimer(tk["id"].(string)) {
				return fmt.Errorf("task %s (%s): timer pending = %v", code(tk), ts, !openStatus[ts])
			}
		}
	}
	for c, n := range running {
		if n > 1 {
			return fmt.Errorf("%d running episodes of %s", n, c)
		}
	}
	// No task outside an episode's care plan.
	all := r.search("Task", refParam("patient", "Patient/"+p))
	seen := 0
	for _, v := range episodes {
		seen += len(v.tasks)
	}
	if len(all) != seen {
		return fmt.Errorf("%d tasks for the patient, %d in care plans", len(all), seen)
	}
	return nil
}
