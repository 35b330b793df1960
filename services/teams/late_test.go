package teams_test

import (
	"strings"
	"testing"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/directory"
)

// TestLateDischargeTellsTheReferentOnce: a discharge notified 20 days late
// opens its episode without the storm of a late one — no overdue reminder,
// no escalation — and its referent coordinating nurse gets one notice,
// titled, that does not name the patient.
func TestLateDischargeTellsTheReferentOnce(t *testing.T) {
	r := newRig(t, sqliteOpener(t))
	p := r.patient(declared{gpRPPS: rppsBernard, pharmacyFINESS: directory.DevPharmacyFINESS}, "enc-late")
	r.dischargeAt(p, "enc-late", r.clk.Now().AddDate(0, 0, -20))
	r.advance(2 * time.Hour)

	e := r.episode(p)
	if e.team == nil {
		t.Fatal("no CareTeam")
	}
	referent := ""
	for who, role := range members(e.team) {
		if role == directory.RoleCoordinatingNurse {
			referent = who
		}
	}
	if referent == "" {
		t.Fatalf("no referent coordinating nurse in %v", members(e.team))
	}
	var notices int
	for _, n := range r.notif.all() {
		switch n.Kind {
		case "late-inclusion":
			notices++
			if n.To.Ref != referent {
				t.Errorf("late-inclusion notice to %s, want the referent %s", n.To.Ref, referent)
			}
			if n.Subject != "Passerelle — Inclusion tardive" {
				t.Errorf("subject %q", n.Subject)
			}
			if strings.Contains(n.Body, "TESTDURAND") || strings.Contains(n.Subject, "TESTDURAND") {
				t.Errorf("the notice names the patient: %+v", n)
			}
		case "overdue", "escalation":
			t.Errorf("a late discharge set off a %s notification to %s", n.Kind, n.To.Ref)
		}
	}
	if notices != 1 {
		t.Errorf("%d late-inclusion notices, want 1", notices)
	}
}
