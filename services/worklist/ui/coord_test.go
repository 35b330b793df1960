package ui

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/pathway"
)

// nurseRole is a nurse of the directory covering one commune (INSEE code,
// postal code), away over the rig's now when away is set.
func nurseRole(id, family, commune, postal string, away bool) []obj {
	role := obj{"resourceType": "PractitionerRole", "id": id, "active": true,
		"practitioner": obj{"reference": "Practitioner/p-" + id},
		"organization": obj{"reference": "Organization/" + directory.DevCPTS},
		"code":         []any{obj{"coding": []any{obj{"system": directory.SystemTeamRole, "code": "nurse"}}}},
		"extension": []any{obj{"url": directory.ExtTerritory, "extension": []any{
			obj{"url": "commune", "valueCode": commune}, obj{"url": "postalCode", "valueString": postal}}}}}
	if away {
		role["notAvailable"] = []any{obj{"description": "Congés", "during": obj{"start": day(-2, 0), "end": day(6, 0)}}}
	}
	return []obj{{"resourceType": "Practitioner", "id": "p-" + id, "active": true,
		"name": []any{obj{"family": family, "given": []any{"Anne"}}}}, role}
}

// coordRig is the rig plus what the to-do list sorts: a first contact and
// an alert review past their due, a nurse of another territory, an absent
// Roanne nurse, and tasks of finished episodes (one of another patient,
// one of the rig's patient's earlier stay).
func coordRig(t *testing.T) *rig {
	r := newRig(t, openSQLite(t))
	for _, m := range append(nurseRole("pr-ide-lyon", "LYONNAIS", "69381", "69001", false),
		nurseRole("pr-ide-absente", "ABSENTE", "42187", "42300", true)...) {
		r.create(m)
	}
	fc := task("t-fc", "PractitionerRole/pr-ide-leroy", "nurse", "requested", "Premier contact", day(-2, 23))
	fc["code"] = obj{"coding": []any{obj{"system": "https://passerelle.health/fhir/CodeSystem/pathway-action", "code": "first-contact"}}}
	r.create(fc)
	alert := task("t-alert", "PractitionerRole/pr-dr-bernard", "gp", "requested", "Revoir l'alerte de poids", day(0, 8))
	alert["focus"] = obj{"reference": "Flag/f1"}
	alert["code"] = obj{"coding": []any{obj{"system": "https://passerelle.health/fhir/CodeSystem/pathway-action", "code": "alert-review"}}}
	r.create(alert)
	// Rejected by the teams service: with nobody available (nobody owns
	// it), and after every candidate declined.
	r.create(task("t-nobody", "", "nurse", "rejected", "Visite sans professionnel disponible", day(2, 23)))
	all := task("t-all-declined", "", "nurse", "rejected", "Visite refusée par tous", day(2, 23))
	all["extension"] = []any{obj{"url": pathway.ExtTaskAssignment, "extension": []any{
		obj{"url": "tried", "valueReference": obj{"reference": "PractitionerRole/pr-ide-leroy"}},
		obj{"url": "tried", "valueReference": obj{"reference": "PractitionerRole/pr-ide-martin"}}}}}
	r.create(all)
	// The referent's late escalation of t-declined: the list shows
	// t-declined itself.
	esc := task("t-esc", "PractitionerRole/pr-idec-moreau", "coordinating-nurse", "requested", "Escalade : visite refusée", day(-1, 8))
	esc["code"] = obj{"coding": []any{obj{"system": "https://passerelle.health/fhir/CodeSystem/pathway-action", "code": "escalation"}}}
	esc["focus"] = obj{"reference": "Task/t-declined"}
	r.create(esc)
	// A declined task of an earlier, finished episode of the same patient:
	// its CarePlan names the finished episode.
	r.create(obj{"resourceType": "EpisodeOfCare", "id": "ep-old", "status": "finished", "patient": obj{"reference": "Patient/p1"},
		"period": obj{"start": "2026-03-01T10:00:00+01:00", "end": "2026-06-01T10:00:00+02:00"}})
	r.create(obj{"resourceType": "CarePlan", "id": "cp-old", "status": "completed", "intent": "plan", "subject": obj{"reference": "Patient/p1"},
		"supportingInfo": []any{obj{"reference": "EpisodeOfCare/ep-old"}}})
	old := task("t-old-declined", "", "nurse", "rejected", "Visite d'un ancien épisode", day(-60, 23))
	old["basedOn"] = []any{obj{"reference": "CarePlan/cp-old"}}
	r.create(old)
	// Another patient whose only episode is cancelled.
	r.create(obj{"resourceType": "Patient", "id": "p2", "name": []any{obj{"family": "TESTANCIEN", "given": []any{"PAUL"}}},
		"address": []any{obj{"postalCode": "42300", "city": "Roanne"}}})
	r.create(obj{"resourceType": "EpisodeOfCare", "id": "ep-p2", "status": "cancelled", "patient": obj{"reference": "Patient/p2"}})
	gone := task("t-cancelled-ep", "", "nurse", "requested", "Visite d'un épisode annulé", day(1, 23))
	gone["for"] = obj{"reference": "Patient/p2"}
	r.create(gone)
	return r
}

// card returns the to-do card of a task: from its start to the next card
// or the end of its group.
func card(t *testing.T, body, id string) string {
	t.Helper()
	i := strings.Index(body, `<li class="todo-card" data-task-id="`+id+`"`)
	if i < 0 {
		t.Fatalf("no card for %s", id)
	}
	rest := body[i+1:]
	end := len(rest)
	for _, stop := range []string{`<li class="todo-card"`, "</section>"} {
		if k := strings.Index(rest, stop); k >= 0 && k < end {
			end = k
		}
	}
	return body[i : i+1+end]
}

func TestCoordinationToDoList(t *testing.T) {
	r := coordRig(t)
	status, body := r.get(r.client("coord.cpts"), "/coordination")
	if status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	// Grouped, in the order a person must act.
	var order []string
	for _, m := range regexp.MustCompile(`<section class="todo-group" id="g-([a-z_]+)"`).FindAllStringSubmatch(body, -1) {
		order = append(order, m[1])
	}
	if want := "unassigned declined first_contact_late visit_late alert_late"; strings.Join(order, " ") != want {
		t.Errorf("groups %v, want %s", order, want)
	}
	for id, group := range map[string]string{"t-free": "unassigned", "t-nobody": "unassigned", "t-declined": "declined", "t-all-declined": "declined", "t-fc": "first_contact_late",
		"t-late": "visit_late", "t-alert": "alert_late"} {
		contains(t, id, body, `data-task-id="`+id+`" data-problem="`+group+`"`)
	}
	// Nothing from finished or cancelled episodes; nothing on time.
	lacks(t, "to-do", body, `data-task-id="t-old-declined"`, `data-task-id="t-cancelled-ep"`, `data-task-id="t-esc"`, `data-task-id="t-first"`, `data-task-id="t-gp"`, "TESTANCIEN")
	// Each card: the patient's commune, the problem's age, the candidates.
	late := card(t, body, "t-late")
	contains(t, "overdue visit", late, "TESTDURAND Marie Claire", "Roanne (42300)", "depuis 11 h", "Claire MARTIN",
		"Julien LEROY", "IDE coordinatrice référente", "Anne ABSENTE", "absent(e) jusqu&#39;au 11/10/2026")
	// A nurse whose territory does not cover Roanne is no candidate.
	lacks(t, "overdue visit", body, "LYONNAIS")
	// The current owner is not offered the task again.
	lacks(t, "overdue visit", late, `value="PractitionerRole/pr-ide-martin"`)
	// Load: Claire MARTIN holds t-first and t-late.
	declined := card(t, body, "t-declined")
	if !regexp.MustCompile(`Claire MARTIN</span>\s*<span class="meta">Infirmier\(e\) · tâches en cours : 2`).MatchString(declined) {
		t.Errorf("Claire MARTIN's load not shown as 2:\n%s", declined)
	}
	// The absent nurse cannot be chosen.
	if !regexp.MustCompile(`value="PractitionerRole/pr-ide-absente" required disabled`).MatchString(declined) {
		t.Errorf("the absent nurse may be chosen:\n%s", declined)
	}
	// No preselected person, and a confirmation to tick.
	lacks(t, "no preselection", body, "checked", "selected", "<select")
	contains(t, "confirmation", declined, `type="radio" name="to"`, `name="confirm" value="yes" required`)
	// The unassigned pharmacist task: the pharmacist of the territory.
	contains(t, "unassigned", card(t, body, "t-free"), "Hélène DURAND", "Pharmacien(ne)")
}

func TestReassignAsksForConfirmation(t *testing.T) {
	r := coordRig(t)
	c := r.client("coord.cpts")
	// Without the confirmation: a page that names the task and the person,
	// and nothing changes.
	_, body, first := r.post(c, "coord.cpts", "/tasks/t-declined/reassign", url.Values{"to": {"PractitionerRole/pr-ide-martin"}, "back": {"/coordination"}})
	if first.StatusCode != http.StatusOK {
		t.Fatalf("without confirmation: %d", first.StatusCode)
	}
	contains(t, "confirm step", body, "Confirmer la réattribution", "Visite infirmière semaine 2", "Claire MARTIN",
		`<input type="hidden" name="to" value="PractitionerRole/pr-ide-martin">`, `<input type="hidden" name="confirm" value="yes">`)
	if got := r.read("Task", "t-declined"); got["status"] != "rejected" || got["owner"].(obj)["reference"] != "PractitionerRole/pr-ide-leroy" {
		t.Fatalf("task changed before confirmation: %v %v", got["status"], got["owner"])
	}
	// Confirmed: done.
	_, body, first = r.post(c, "coord.cpts", "/tasks/t-declined/reassign", url.Values{"to": {"PractitionerRole/pr-ide-martin"}, "confirm": {"yes"}})
	if first == nil || first.StatusCode != http.StatusSeeOther {
		t.Fatalf("confirmed reassignment not done:\n%s", body)
	}
	contains(t, "done", body, "Tâche réassignée.")
	if got := r.read("Task", "t-declined")["owner"].(obj)["reference"]; got != "PractitionerRole/pr-ide-martin" {
		t.Errorf("owner %v", got)
	}
}

func TestDirectorySearch(t *testing.T) {
	r := coordRig(t)
	c := r.client("coord.cpts")
	for _, tc := range []struct {
		q          string
		want, lack []string
	}{
		{"", []string{"Claire MARTIN", "Anne LYONNAIS", `type="search"`}, nil},
		{"martin", []string{"Claire MARTIN", `value="martin"`}, []string{"Julien LEROY", "Anne LYONNAIS"}},
		{"helene", []string{"Hélène DURAND"}, []string{"Claire MARTIN"}},
		{"infirmier 69001", []string{"Anne LYONNAIS"}, []string{"Claire MARTIN", "Hélène DURAND"}},
		{"personne-inconnue", []string{"Aucun membre ne correspond."}, []string{"Claire MARTIN"}},
	} {
		status, body := r.get(c, "/directory?q="+url.QueryEscape(tc.q))
		if status != http.StatusOK {
			t.Fatalf("%q: %d", tc.q, status)
		}
		contains(t, "directory "+tc.q, body, tc.want...)
		lacks(t, "directory "+tc.q, body, append(tc.lack, "<table")...)
	}
}
