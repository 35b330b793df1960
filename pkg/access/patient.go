package access

import (
	"context"
	"encoding/json"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// Patient tells whether a may read and write the data of patient
// ("Patient/<id>"): the coordinator and the referent coordinating nurse of
// the tenant; a professional while an active participant of one of the
// patient's active CareTeams or the owner of one of the patient's tasks.
// Systems and administrators never. Every caller that shows or changes one
// patient's data asks here.
func (Policy) Patient(ctx context.Context, st store.Store, a directory.Actor, patient string) error {
	if patient == "" {
		return forbidden("Patient inconnu", "Unknown patient")
	}
	v, err := common(a, "Patient", "read")
	if err != nil || v == allowed {
		return err
	}
	ok, err := InCareRelationship(ctx, st, a, patient, time.Now())
	if err != nil {
		return err
	}
	if ok {
		return nil
	}
	return forbidden("Vous ne faites pas partie de l'équipe de soins de ce patient", "You are not in this patient's care team")
}

// InCareRelationship tells whether one of a's PractitionerRoles is an active
// participant of an active CareTeam of the patient at now, or owns one of
// the patient's tasks.
func InCareRelationship(ctx context.Context, st store.Store, a directory.Actor, patient string, now time.Time) (bool, error) {
	if len(a.Roles) == 0 {
		return false, nil
	}
	var refs []store.Value
	mine := map[string]bool{}
	for _, r := range a.Roles {
		ref := "PractitionerRole/" + r.ID
		refs = append(refs, store.Value{Ref: ref})
		mine[ref] = true
	}
	subject := store.Param{Name: "patient", Kind: store.KindReference, Values: []store.Value{{Ref: patient}}}
	page, err := st.Search(ctx, store.Query{Tenant: a.Tenant, Type: "CareTeam", Count: 50, Params: []store.Param{
		subject, {Name: "participant", Kind: store.KindReference, Values: refs}}})
	if err != nil {
		return false, err
	}
	for _, res := range page.Resources {
		if activeParticipant(res.Body, mine, now) {
			return true, nil
		}
	}
	page, err = st.Search(ctx, store.Query{Tenant: a.Tenant, Type: "Task", Count: 1, Params: []store.Param{
		subject, {Name: "owner", Kind: store.KindReference, Values: refs}}})
	if err != nil {
		return false, err
	}
	return len(page.Resources) > 0, nil
}

// activeParticipant tells whether the CareTeam is active and one of refs
// takes part in it at now (no period end, or one still to come).
func activeParticipant(body []byte, refs map[string]bool, now time.Time) bool {
	var ct struct {
		Status      string `json:"status"`
		Participant []struct {
			Member struct{ Reference string } `json:"member"`
			Period struct{ End string }       `json:"period"`
		} `json:"participant"`
	}
	if json.Unmarshal(body, &ct) != nil || ct.Status != "active" {
		return false
	}
	for _, p := range ct.Participant {
		if !refs[p.Member.Reference] {
			continue
		}
		if p.Period.End == "" {
			return true
		}
		if end, err := time.Parse(time.RFC3339, p.Period.End); err == nil && end.After(now) {
			return true
		}
	}
	return false
}
