package access

import (
	"context"
	"encoding/json"
	"sort"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/clock"
	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// Patient tells whether a may read and write the data of patient
// ("Patient/<id>"): the coordinator and the referent coordinating nurse of
// the tenant; a professional while an active participant of one of the
// patient's active CareTeams or the owner of one of the patient's tasks.
// Systems and administrators never. Every caller that shows or changes one
// patient's data asks here.
func (p Policy) Patient(ctx context.Context, st Searcher, a directory.Actor, patient string) error {
	if patient == "" {
		return forbidden("Patient inconnu", "Unknown patient")
	}
	v, err := common(a, "Patient", "read")
	if err != nil || v == allowed {
		return err
	}
	ok, err := InCareRelationship(ctx, st, a, patient, p.now())
	if err != nil {
		return err
	}
	if ok {
		return nil
	}
	return forbidden("Vous ne faites pas partie de l'équipe de soins de ce patient", "You are not in this patient's care team")
}

// roleRefs returns a's PractitionerRoles as search values and as a set.
func roleRefs(a directory.Actor) ([]store.Value, map[string]bool) {
	var refs []store.Value
	mine := map[string]bool{}
	for _, r := range a.Roles {
		ref := "PractitionerRole/" + r.ID
		refs = append(refs, store.Value{Ref: ref})
		mine[ref] = true
	}
	return refs, mine
}

// InCareRelationship tells whether one of a's PractitionerRoles is an active
// participant of an active CareTeam of the patient at now, or owns one of
// the patient's tasks.
func InCareRelationship(ctx context.Context, st Searcher, a directory.Actor, patient string, now time.Time) (bool, error) {
	if len(a.Roles) == 0 {
		return false, nil
	}
	refs, mine := roleRefs(a)
	subject := store.Param{Name: "patient", Kind: store.KindReference, Values: []store.Value{{Ref: patient}}}
	found := false
	err := each(ctx, st, store.Query{Tenant: a.Tenant, Type: "CareTeam", Params: []store.Param{
		subject, {Name: "participant", Kind: store.KindReference, Values: refs}}}, func(res store.Resource) bool {
		found = activeParticipant(res.Body, mine, now)
		return !found
	})
	if err != nil || found {
		return found, err
	}
	page, err := st.Search(ctx, store.Query{Tenant: a.Tenant, Type: "Task", Count: 1, Params: []store.Param{
		subject, {Name: "owner", Kind: store.KindReference, Values: refs}}})
	if err != nil {
		return false, err
	}
	return len(page.Resources) > 0, nil
}

// CarePatients returns the patients ("Patient/<id>", sorted) a is in care
// relationship with at now: the same rule as InCareRelationship, for a whole
// search at once.
func CarePatients(ctx context.Context, st Searcher, a directory.Actor, now time.Time) ([]string, error) {
	if len(a.Roles) == 0 {
		return nil, nil
	}
	refs, mine := roleRefs(a)
	set := map[string]bool{}
	err := each(ctx, st, store.Query{Tenant: a.Tenant, Type: "CareTeam", Params: []store.Param{
		{Name: "participant", Kind: store.KindReference, Values: refs}}}, func(res store.Resource) bool {
		if activeParticipant(res.Body, mine, now) {
			if p := PatientOf(res); p != "" {
				set[p] = true
			}
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	err = each(ctx, st, store.Query{Tenant: a.Tenant, Type: "Task", Params: []store.Param{
		{Name: "owner", Kind: store.KindReference, Values: refs}}}, func(res store.Resource) bool {
		if p := PatientOf(res); p != "" {
			set[p] = true
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out, nil
}

// each calls fn on every match of q, page after page, until fn returns false.
func each(ctx context.Context, st Searcher, q store.Query, fn func(store.Resource) bool) error {
	q.Count = 1000
	for {
		page, err := st.Search(ctx, q)
		if err != nil {
			return err
		}
		for _, res := range page.Resources {
			if !fn(res) {
				return nil
			}
		}
		if page.Next == "" {
			return nil
		}
		q.Cursor = page.Next
	}
}

// activeParticipant tells whether the CareTeam is active and one of refs
// takes part in it at now: its period has not ended (no end, or one still
// to come). The start is not checked: the teams service adds a member when
// they join, so a member is in the team from the moment they are listed.
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
		if end, ok := fhirEnd(p.Period.End); ok && end.After(now) {
			return true
		}
	}
	return false
}

// fhirEnd reads the end of a Period: FHIR counts a date end inclusively, so
// "2026-11-20" ends when 21 November begins.
func fhirEnd(s string) (time.Time, bool) {
	t, span, ok := parseFHIRTime(s)
	return span(t), ok
}

func parseFHIRTime(s string) (time.Time, func(time.Time) time.Time, bool) {
	same := func(t time.Time) time.Time { return t }
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, same, true
	}
	spans := []struct {
		layout string
		next   func(time.Time) time.Time
	}{
		{"2006-01-02T15:04:05", same}, // no zone: read in Paris
		{"2006-01-02", func(t time.Time) time.Time { return t.AddDate(0, 0, 1) }},
		{"2006-01", func(t time.Time) time.Time { return t.AddDate(0, 1, 0) }},
		{"2006", func(t time.Time) time.Time { return t.AddDate(1, 0, 0) }},
	}
	for _, sp := range spans {
		if t, err := time.ParseInLocation(sp.layout, s, clock.Paris); err == nil {
			return t, sp.next, true
		}
	}
	return time.Time{}, same, false
}
