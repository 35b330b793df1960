package teams_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/notify"
	"github.com/passerelle-sante/passerelle/pkg/store"
	"github.com/passerelle-sante/passerelle/services/teams"
)

// The development directory's RPPS numbers (pkg/directory DevAccounts).
const (
	rppsBernard = "10000001049" // dr.bernard, GP
	unknownRPPS = "10000000074" // valid key, nobody in the directory
)

// TestTeamFormedAndEveryTaskOwned: on both backends, with the team rules
// applied as the pathway creates the tasks (each task written once), and,
// on SQLite, from the episode's event (the path of tasks created unowned).
func TestTeamFormedAndEveryTaskOwned(t *testing.T) {
	type mode struct {
		open    func(testing.TB) func() store.Store
		byEvent bool
	}
	for name, m := range map[string]mode{"sqlite": {open: sqliteOpener}, "postgres": {open: postgresOpener}, "sqlite by event": {open: sqliteOpener, byEvent: true}} {
		t.Run(name, func(t *testing.T) {
			r := newRigWith(t, m.open(t), m.byEvent)
			p := r.patient(declared{gpRPPS: rppsBernard, nurseRPPS: unknownRPPS, pharmacyFINESS: directory.DevPharmacyFINESS}, "enc-1")
			r.discharge(p, "enc-1")
			e := r.episode(p)
			if e.team == nil {
				t.Fatal("no CareTeam")
			}
			if e.team["status"] != "active" || s(e.team, "subject", "reference") != "Patient/"+p {
				t.Fatalf("team %v", e.team)
			}
			got := members(e.team)
			want := map[string]string{
				"PractitionerRole/pr-dr-bernard":    "gp",                 // declared médecin traitant
				"PractitionerRole/pr-pharma-durand": "pharmacist",         // the declared pharmacy's pharmacist
				"external:" + unknownRPPS:           "external",           // declared, not a member
				"PractitionerRole/pr-ide-leroy":     "nurse",              // lowest load, then id
				"PractitionerRole/pr-dr-petit":      "cardiologist",       // the only one
				"PractitionerRole/pr-idec-moreau":   "coordinating-nurse", // the referent
			}
			for who, role := range want {
				if got[who] != role {
					t.Errorf("team member %s: role %q, want %q (team %v)", who, got[who], role, got)
				}
			}
			if len(got) != len(want) {
				t.Errorf("team %v, want %v", got, want)
			}
			owned := 0
			for _, task := range e.tasks {
				owner := s(task, "owner", "reference")
				role := code(task, "performerType")
				if task["status"] != "requested" {
					t.Errorf("task %s: status %v", code(task, "code"), task["status"])
				}
				if role == "" {
					if owner != "Patient/"+p {
						t.Errorf("patient task %s owned by %q", code(task, "code"), owner)
					}
					continue
				}
				if got[owner] != role {
					t.Errorf("task %s (role %s) owned by %q, team role %q", code(task, "code"), role, owner, got[owner])
				}
				owned++
			}
			if owned < 10 {
				t.Fatalf("only %d professional tasks", owned)
			}
			// Staffed as created, each task was written once; from the
			// event, twice (created, then owned).
			wantVersion := "1"
			if m.byEvent {
				wantVersion = "2"
			}
			for _, task := range e.tasks {
				if v := s(task, "meta", "versionId"); v != wantVersion {
					t.Errorf("task %s at version %s, want %s", code(task, "code"), v, wantVersion)
				}
				if role := code(task, "performerType"); role != "" {
					if _, err := r.s.Timers().Pending(r.ctx, teams.TimerAccept+":"+tenant+":"+task["id"].(string)); err != nil {
						t.Errorf("task %s (role %s): no acceptance deadline: %v", code(task, "code"), role, err)
					}
				}
			}
			// Each owner told once, about all their tasks.
			owners := map[string]bool{}
			for _, task := range e.tasks {
				if o := s(task, "owner", "reference"); strings.HasPrefix(o, "PractitionerRole/") {
					owners[o] = true
				}
			}
			n := r.notif.all()
			if len(n) != len(owners) {
				t.Fatalf("%d notifications for %d owners", len(n), len(owners))
			}
			about := 0
			for _, c := range r.search("Communication") {
				about += len(c["about"].([]any))
			}
			if about != owned {
				t.Fatalf("notifications about %d tasks, %d owned", about, owned)
			}
			for _, x := range n {
				if x.Kind != "assignment" || !strings.HasPrefix(x.To.Ref, "PractitionerRole/") || x.Link != "http://localhost:8080/worklist" {
					t.Fatalf("notification %+v", x)
				}
				if strings.Contains(x.Body, "TESTDURAND") || strings.Contains(x.Subject, "TESTDURAND") {
					t.Fatalf("a notification names the patient: %+v", x)
				}
			}
			// Communications record the delivery.
			for _, c := range r.search("Communication") {
				if c["status"] != "completed" || s(c, "sent") == "" {
					t.Fatalf("communication not recorded as delivered: %v", c)
				}
			}
			// A redelivered episode event changes nothing.
			before := len(r.search("Communication"))
			rows, _ := r.s.Outbox().Pending(r.ctx, 10)
			if len(rows) != 0 {
				t.Fatalf("%d events left", len(rows))
			}
			r.pump()
			if after := len(r.search("Communication")); after != before {
				t.Fatalf("communications %d → %d", before, after)
			}
		})
	}
}

func TestDeclineGoesToTheNextCandidateThenEscalates(t *testing.T) {
	r := newRig(t, sqliteOpener(t))
	p := r.patient(declared{gpRPPS: rppsBernard}, "enc-2")
	r.discharge(p, "enc-2")
	e := r.episode(p)
	first := e.byCode("first-contact")[0]
	id := first["id"].(string)
	if s(first, "owner", "reference") != "PractitionerRole/pr-ide-leroy" {
		t.Fatalf("first contact owner %q", s(first, "owner", "reference"))
	}
	r.act(id, "rejected")
	task := r.read("Task", id)
	if task["status"] != "requested" || s(task, "owner", "reference") != "PractitionerRole/pr-ide-martin" {
		t.Fatalf("after decline: %v owned by %q", task["status"], s(task, "owner", "reference"))
	}
	prov := r.search("Provenance", refParam("target", "Task/"+id))
	if len(prov) != 1 || !strings.Contains(s(prov[0], "reason", "text"), "refusée") {
		t.Fatalf("provenance %v", prov)
	}
	n := r.notif.all()
	if notifications(n, "PractitionerRole/pr-ide-leroy", "unassignment") != 1 || notifications(n, "PractitionerRole/pr-ide-martin", "assignment") != 1 {
		t.Fatalf("notifications %+v", n)
	}
	team := members(r.episode(p).team)
	if team["PractitionerRole/pr-ide-martin"] != "nurse" || team["PractitionerRole/pr-ide-leroy"] != "nurse" {
		t.Fatalf("team %v: both nurses (leroy still owns the follow-ups)", team)
	}

	// The second nurse declines too: nobody is left.
	r.act(id, "rejected")
	task = r.read("Task", id)
	if task["status"] != "rejected" || s(task, "owner", "reference") != "" {
		t.Fatalf("after the last decline: %v owned by %q", task["status"], s(task, "owner", "reference"))
	}
	var esc []map[string]any
	for _, x := range r.search("Task", refParam("focus", "Task/"+id)) {
		esc = append(esc, x)
	}
	if len(esc) != 1 || code(esc[0], "code") != "escalation" || s(esc[0], "owner", "reference") != "PractitionerRole/pr-idec-moreau" {
		t.Fatalf("escalation %v", esc)
	}
	if notifications(r.notif.all(), "PractitionerRole/pr-idec-moreau", "escalation") != 1 {
		t.Fatal("the referent was not told")
	}
	// A redelivered decline does nothing more.
	r.act(id, "rejected")
	if got := len(r.search("Task", refParam("focus", "Task/"+id))); got != 1 {
		t.Fatalf("%d escalations", got)
	}
}

func TestAcceptanceDeadlineSurvivesARestart(t *testing.T) {
	r := newRig(t, sqliteOpener(t))
	p := r.patient(declared{}, "enc-3")
	r.discharge(p, "enc-3")
	e := r.episode(p)
	first := e.byCode("first-contact")[0]["id"].(string)
	gp := e.byCode("gp-visit")[0]["id"].(string)
	r.act(gp, "accepted")

	// The process stops before the deadline and starts again after it.
	r.stop()
	r.clk.Advance(11 * time.Hour)
	r.start()
	r.advance(0)
	if got := s(r.read("Task", first), "owner", "reference"); got != "PractitionerRole/pr-ide-leroy" {
		t.Fatalf("reassigned before the 12 h deadline: %q", got)
	}
	r.advance(2 * time.Hour)
	task := r.read("Task", first)
	if task["status"] != "requested" || s(task, "owner", "reference") != "PractitionerRole/pr-ide-martin" {
		t.Fatalf("after the 12 h deadline: %v %q", task["status"], s(task, "owner", "reference"))
	}
	prov := r.search("Provenance", refParam("target", "Task/"+first))
	if len(prov) != 1 || !strings.Contains(s(prov[0], "reason", "text"), "Délai") {
		t.Fatalf("provenance %v", prov)
	}
	// Other tasks have 24 h; the accepted one never times out.
	r.advance(12 * time.Hour)
	if got := s(r.read("Task", gp), "owner", "reference"); got != "PractitionerRole/pr-dr-bernard" {
		t.Fatalf("accepted task reassigned to %q", got)
	}
}

func TestOverdueRemindsThenEscalates(t *testing.T) {
	r := newRig(t, sqliteOpener(t))
	p := r.patient(declared{}, "enc-4")
	r.discharge(p, "enc-4")
	e := r.episode(p)
	first := e.byCode("first-contact")[0]
	id := first["id"].(string)
	r.act(id, "accepted")
	due, _ := time.Parse(time.RFC3339, s(first, "restriction", "period", "end"))
	r.advance(due.Sub(r.clk.Now()) + time.Minute)
	task := r.read("Task", id)
	if code(task, "businessStatus") != "overdue" {
		t.Fatalf("not overdue: %v", task["businessStatus"])
	}
	if notifications(r.notif.all(), "PractitionerRole/pr-ide-leroy", "overdue") != 1 {
		t.Fatal("owner not reminded")
	}
	if esc := r.search("Task", refParam("focus", "Task/"+id)); len(esc) != 0 {
		t.Fatal("escalated before the delay")
	}
	r.advance(25 * time.Hour)
	esc := r.search("Task", refParam("focus", "Task/"+id))
	if len(esc) != 1 || s(esc[0], "owner", "reference") != "PractitionerRole/pr-idec-moreau" {
		t.Fatalf("escalation %v", esc)
	}
	// The escalation itself, left unanswered, goes to the coordinator.
	escID := esc[0]["id"].(string)
	r.advance(25 * time.Hour)
	esc2 := r.read("Task", escID)
	if s(esc2, "owner", "reference") != "PractitionerRole/pr-coord-cpts" {
		t.Fatalf("unanswered escalation owned by %q", s(esc2, "owner", "reference"))
	}
}

func TestAbsentMemberIsNotAssigned(t *testing.T) {
	r := newRig(t, sqliteOpener(t))
	// ide.leroy is away this week.
	r.tx(func(tx store.Tx) error {
		res, err := tx.Read(r.ctx, "PractitionerRole", "pr-ide-leroy")
		if err != nil {
			return err
		}
		m := map[string]any{}
		_ = jsonUnmarshal(res.Body, &m)
		m["notAvailable"] = []any{map[string]any{"description": "Congés", "during": map[string]any{
			"start": r.clk.Now().Add(-time.Hour).Format(time.RFC3339), "end": r.clk.Now().AddDate(0, 0, 7).Format(time.RFC3339)}}}
		delete(m, "meta")
		_, err = tx.Update(r.ctx, tenant, mustJSON(m), res.Version)
		return err
	})
	p := r.patient(declared{}, "enc-5")
	r.discharge(p, "enc-5")
	e := r.episode(p)
	for _, task := range e.tasks {
		if s(task, "owner", "reference") == "PractitionerRole/pr-ide-leroy" {
			t.Fatalf("task %s given to an absent nurse", code(task, "code"))
		}
	}
	if members(e.team)["PractitionerRole/pr-ide-martin"] != "nurse" {
		t.Fatalf("team %v", members(e.team))
	}
}

func TestPatientOutsideEveryTerritory(t *testing.T) {
	r := newRig(t, sqliteOpener(t))
	p := r.patient(declared{postal: "69001", commune: "69381"}, "enc-6")
	r.discharge(p, "enc-6")
	e := r.episode(p)
	for _, task := range e.tasks {
		if code(task, "performerType") == "" {
			continue
		}
		if code(task, "code") == "escalation" {
			// Nobody coordinates in Lyon either: the coordinator has it.
			if s(task, "owner", "reference") != "PractitionerRole/pr-coord-cpts" {
				t.Fatalf("escalation owned by %q", s(task, "owner", "reference"))
			}
			continue
		}
		if task["status"] != "rejected" {
			t.Fatalf("task %s: %v owned by %q although nobody covers Lyon", code(task, "code"), task["status"], s(task, "owner", "reference"))
		}
		esc := r.search("Task", refParam("focus", "Task/"+task["id"].(string)))
		if len(esc) != 1 {
			t.Fatalf("task %s: %d escalations", code(task, "code"), len(esc))
		}
	}
}

func TestFailedDeliveryIsVisible(t *testing.T) {
	r := newRig(t, sqliteOpener(t))
	r.notif.fails, r.notif.err = 1000, errors.New("relay down")
	p := r.patient(declared{}, "enc-7")
	r.discharge(p, "enc-7")
	for range 3 {
		r.redeliver()
	}
	cs := r.search("Communication", store.Param{Name: "status", Kind: store.KindToken, Values: []store.Value{{Code: "not-done"}}})
	if len(cs) == 0 {
		t.Fatal("no failed notification recorded")
	}
	if !strings.Contains(s(cs[0], "statusReason", "text"), "relay down") {
		t.Fatalf("reason %v", cs[0]["statusReason"])
	}
	// The failure is the notifier's write: in the audit trail as the
	// teams service's, with its cause.
	recs, err := r.s.AuditLog().Find(r.ctx, store.AuditFilter{Tenant: "demo"})
	if err != nil {
		t.Fatal(err)
	}
	audited := false
	for _, rec := range recs {
		if strings.HasPrefix(rec.Entity, "Communication/"+s(cs[0], "id")) && rec.Agent == "System/teams" && strings.Contains(rec.Detail, "delivery failed") {
			audited = true
		}
	}
	if !audited {
		t.Errorf("no audit record of the failed delivery among %d records", len(recs))
	}
	// Undeliverable (no address): recorded at once, not retried.
	r2 := newRig(t, sqliteOpener(t))
	r2.notif.fails, r2.notif.err = 1, notify.ErrUndeliverable
	p2 := r2.patient(declared{}, "enc-8")
	r2.discharge(p2, "enc-8")
	if len(r2.dead) != 0 {
		t.Fatalf("undeliverable notification retried: %d", len(r2.dead))
	}
	if got := r2.search("Communication", store.Param{Name: "status", Kind: store.KindToken, Values: []store.Value{{Code: "not-done"}}}); len(got) != 1 {
		t.Fatalf("%d not-done", len(got))
	}
}

func TestCoordinatorReassigns(t *testing.T) {
	r := newRig(t, sqliteOpener(t))
	p := r.patient(declared{}, "enc-9")
	r.discharge(p, "enc-9")
	id := r.episode(p).byCode("first-contact")[0]["id"].(string)
	coord, err := (&directory.Resolver{Store: r.s}).Person(r.ctx, tenant, "coord.cpts")
	if err != nil {
		t.Fatal(err)
	}
	nurse, err := (&directory.Resolver{Store: r.s}).Person(r.ctx, tenant, "ide.martin")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.tm.Reassign(r.ctx, nurse, id, "PractitionerRole/pr-ide-martin"); err == nil {
		t.Fatal("a nurse reassigned a task")
	}
	if err := r.tm.Reassign(r.ctx, coord, id, "PractitionerRole/pr-dr-petit"); err == nil || !strings.Contains(err.Error(), "nurse") {
		t.Fatalf("wrong role accepted: %v", err)
	}
	if err := r.tm.Reassign(r.ctx, coord, id, "PractitionerRole/pr-ide-martin"); err != nil {
		t.Fatal(err)
	}
	r.pump()
	task := r.read("Task", id)
	if s(task, "owner", "reference") != "PractitionerRole/pr-ide-martin" || task["status"] != "requested" {
		t.Fatalf("task %v", task)
	}
	n := r.notif.all()
	if notifications(n, "PractitionerRole/pr-ide-martin", "assignment") != 1 || notifications(n, "PractitionerRole/pr-ide-leroy", "unassignment") != 1 {
		t.Fatalf("notifications %+v", n)
	}
	if members(r.episode(p).team)["PractitionerRole/pr-ide-martin"] != "nurse" {
		t.Fatal("new owner not on the team")
	}
}

func TestAlertTaskGoesToTheTeamsGP(t *testing.T) {
	r := newRig(t, sqliteOpener(t))
	p := r.patient(declared{gpRPPS: rppsBernard}, "enc-10")
	r.discharge(p, "enc-10")
	e := r.episode(p)
	cp := s(e.tasks[0], "basedOn", "reference")
	before := len(r.notif.all())
	// The worklist raises an alert: a review task for the GP, no owner.
	r.tx(func(tx store.Tx) error {
		res, err := tx.Create(r.ctx, tenant, mustJSON(map[string]any{"resourceType": "Task", "id": "alert-1", "status": "requested", "intent": "order",
			"code":          map[string]any{"coding": []any{map[string]any{"system": "https://passerelle.health/fhir/CodeSystem/pathway-action", "code": "alert-review"}}},
			"description":   "Alerte : prise de poids rapide",
			"for":           map[string]any{"reference": "Patient/" + p},
			"basedOn":       []any{map[string]any{"reference": cp}},
			"performerType": []any{map[string]any{"coding": []any{map[string]any{"system": directory.SystemTeamRole, "code": "gp"}}}}}))
		if err != nil {
			return err
		}
		return created(r.ctx, tx, res)
	})
	r.pump()
	if got := s(r.read("Task", "alert-1"), "owner", "reference"); got != "PractitionerRole/pr-dr-bernard" {
		t.Fatalf("alert owned by %q", got)
	}
	n := r.notif.all()[before:]
	if len(n) != 1 || n[0].Kind != "alert" || n[0].To.Ref != "PractitionerRole/pr-dr-bernard" {
		t.Fatalf("notifications %+v", n)
	}
}
