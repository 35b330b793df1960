package teams_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/bus/event"
	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/intake"
	"github.com/passerelle-sante/passerelle/pkg/store"
	"github.com/passerelle-sante/passerelle/services/pathway"
)

// admit announces a new full hospitalisation of the patient, as intake
// does for an A01 from any hospital of the territory, and pumps its events.
func (r *rig) admit(patient, enc string) {
	r.t.Helper()
	encounter := map[string]any{"resourceType": "Encounter", "id": enc, "status": "in-progress",
		"class":   map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
		"subject": map[string]any{"reference": "Patient/" + patient},
		"period":  map[string]any{"start": r.clk.Now().Format(time.RFC3339)},
		"serviceProvider": map[string]any{"reference": "Organization/" + directory.DevHospital,
			"identifier": map[string]any{"system": directory.SystemFINESS, "value": directory.DevHospitalFINES}}}
	r.tx(func(tx store.Tx) error {
		if _, err := tx.Read(r.ctx, "Encounter", enc); err == nil {
			return nil // the same stay announced again
		}
		_, err := tx.Create(r.ctx, tenant, mustJSON(encounter))
		return err
	})
	m := bus.Msg{Subject: bus.ResourceSubject(tenant, "Encounter", bus.OpCreated), Data: mustJSON(map[string]any{
		"resourceType": "Bundle", "type": "history", "entry": []any{map[string]any{"resource": encounter}}}),
		Header: map[string]string{bus.HeaderMsgID: "Encounter/" + enc + "/" + uuid.NewString(), bus.HeaderTenant: tenant,
			bus.HeaderIntakeEvent: intake.KindAdmit}}
	if err := event.Inbox(r.s, pathway.DurableEncounter, r.pw.HandleEncounter)(r.ctx, m); err != nil {
		r.t.Fatal(err)
	}
	r.pump()
}

func TestReadmissionNoticesTheTeam(t *testing.T) {
	r := newRig(t, sqliteOpener(t))
	p := r.patient(declared{gpRPPS: rppsBernard, pharmacyFINESS: directory.DevPharmacyFINESS}, "enc-1")
	r.discharge(p, "enc-1")
	r.clk.Advance(48 * time.Hour)
	r.admit(p, "enc-2")
	e := r.episode(p)
	var team []string
	for who := range members(e.team) {
		if strings.HasPrefix(who, "PractitionerRole/") {
			team = append(team, who)
		}
	}
	if len(team) < 3 {
		t.Fatalf("team %v", team)
	}
	check := func(when string) {
		t.Helper()
		for _, who := range team {
			if n := notifications(r.notif.all(), who, "hospitalisation"); n != 1 {
				t.Errorf("%s: %s got %d hospitalisation notices, want 1", when, who, n)
			}
		}
	}
	check("after the admission")
	// The visits wait: on hold, as the worklist shows them.
	held := 0
	for _, task := range e.byCode("nurse-follow-up") {
		if task["status"] == "on-hold" {
			held++
		}
	}
	if held == 0 {
		t.Error("no visit on hold during the stay")
	}
	// Another event of the episode during the same stay tells nobody again.
	r.admit(p, "enc-2")
	r.tx(func(tx store.Tx) error {
		res, err := tx.Read(r.ctx, "EpisodeOfCare", e.id)
		if err != nil {
			return err
		}
		// A new version, as the pathway writes when the stay's dates move.
		if res, err = tx.Update(r.ctx, tenant, res.Body, res.Version); err != nil {
			return err
		}
		return created(r.ctx, tx, res)
	})
	r.pump()
	check("after another event of the episode")
}
