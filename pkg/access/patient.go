package access

import (
	"context"
	"encoding/json"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/clock"
	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/pathway"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// Reach is how far an actor reaches one patient's data.
type Reach int

const (
	// NoReach: nothing of the patient.
	NoReach Reach = iota
	// GraceReach: read only, for Policy.Grace after the care relationship
	// ended (the last task closed, the team left or ended), so that a
	// professional can still look up what she did; each such read is
	// audited as a grace read (AuditGrace).
	GraceReach
	// CareReach: read and write — the coordinator and the referent
	// coordinating nurse, or a professional in care relationship now.
	CareReach
)

// AuditGrace is the Detail of an audit record of a read made under the
// grace period, so that the patient's trail tells it from a read in care.
const AuditGrace = "grace-period"

// Patient tells whether a may read and write the data of patient
// ("Patient/<id>") now: the coordinator and the referent coordinating
// nurse of the tenant; a professional while in care relationship with the
// patient (Relation). The grace period never opens a write: every caller
// that changes a patient's data asks here. Systems and administrators
// never.
func (p Policy) Patient(ctx context.Context, st Searcher, a directory.Actor, patient string) error {
	r, err := p.ReadPatient(ctx, st, a, patient)
	if err != nil {
		return err
	}
	if r != CareReach {
		return forbidden("La relation de soin avec ce patient est terminée : consultation seule, pendant le délai de grâce",
			"The care relationship with this patient has ended: read only, during the grace period")
	}
	return nil
}

// ReadPatient tells whether a may read the data of patient now, and how:
// CareReach as Patient, or GraceReach within Policy.Grace after the care
// relationship ended. A caller that shows data read under GraceReach
// records it with AuditGrace.
func (p Policy) ReadPatient(ctx context.Context, st Searcher, a directory.Actor, patient string) (Reach, error) {
	if patient == "" {
		return NoReach, forbidden("Patient inconnu", "Unknown patient")
	}
	v, err := common(a, "Patient", "read")
	if err != nil {
		return NoReach, err
	}
	if v == allowed {
		return CareReach, nil
	}
	r, err := Relation(ctx, st, a, patient, p.now(), p.Grace)
	if err != nil {
		return NoReach, err
	}
	if r == NoReach {
		return NoReach, forbidden("Vous ne faites pas partie de l'équipe de soins de ce patient", "You are not in this patient's care team")
	}
	return r, nil
}

// Task statuses (FHIR R4 task-status). Open: the task is still to be done
// by its owner (on-hold: the patient is readmitted, the task resumes at the
// next discharge). Closed: done with, by its owner or by the system; the
// time it closed is Task.lastModified, which every service sets on a
// change of status. rejected and entered-in-error are neither: a declined
// task is no care given, an erroneous one no care at all.
var (
	openTasks   = []string{"requested", "received", "accepted", "ready", "in-progress", "on-hold"}
	closedTasks = []string{"completed", "failed", "cancelled"}
)

// runningEpisodes are the EpisodeOfCare statuses of a pathway under way
// (planned: inclusion to confirm; onhold: readmitted). finished,
// cancelled and entered-in-error end everything.
var runningEpisodes = []string{"planned", "waitlist", "active", "onhold"}

func tokens(name string, codes []string) store.Param {
	p := store.Param{Name: name, Kind: store.KindToken}
	for _, c := range codes {
		p.Values = append(p.Values, store.Value{Code: c})
	}
	return p
}

func refParam(name string, refs ...string) store.Param {
	p := store.Param{Name: name, Kind: store.KindReference}
	for _, r := range refs {
		p.Values = append(p.Values, store.Value{Ref: r})
	}
	return p
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

// Relation tells how one of a's PractitionerRoles stands with the patient
// at now:
//
//   - CareReach while an active participant of an active CareTeam of the
//     patient (no period end, or one still to come), or the owner of an
//     open task of a running episode of the patient (the episode whose
//     CarePlan the task is based on; a task based on no CarePlan counts
//     while the patient has a running episode);
//   - GraceReach, for grace after the relationship ended: a participant's
//     period or an inactive team's period ended, or a task she owned
//     closed (Task.lastModified), less than grace ago;
//   - NoReach otherwise: owning a task once, or having been in a team, is
//     no access. A task reassigned away is no longer hers at all.
//
// At most four indexed searches, each narrowed to the patient and to a's
// roles: care teams, open tasks, running episodes (only when she owns an
// open task), closed tasks (only when nothing else answered).
func Relation(ctx context.Context, st Searcher, a directory.Actor, patient string, now time.Time, grace time.Duration) (Reach, error) {
	if len(a.Roles) == 0 {
		return NoReach, nil
	}
	refs, mine := roleRefs(a)
	subject := refParam("patient", patient)
	owner := store.Param{Name: "owner", Kind: store.KindReference, Values: refs}
	since := now.Add(-grace)
	best := NoReach
	err := each(ctx, st, store.Query{Tenant: a.Tenant, Type: "CareTeam", Params: []store.Param{
		subject, {Name: "participant", Kind: store.KindReference, Values: refs}}}, func(res store.Resource) bool {
		_, r := teamReach(res.Body, mine, now, since)
		best = max(best, r)
		return best != CareReach
	})
	if err != nil || best == CareReach {
		return best, err
	}
	var open []task
	err = each(ctx, st, store.Query{Tenant: a.Tenant, Type: "Task", Params: []store.Param{
		subject, owner, tokens("status", openTasks)}}, func(res store.Resource) bool {
		if t, ok := taskOf(res.Body); ok {
			open = append(open, t)
		}
		return true
	})
	if err != nil {
		return NoReach, err
	}
	if len(open) > 0 {
		running, err := runningCarePlans(ctx, st, a.Tenant, []string{patient})
		if err != nil {
			return NoReach, err
		}
		for _, t := range open {
			if t.inRunningEpisode(running[patient]) {
				return CareReach, nil
			}
		}
	}
	if best == GraceReach || grace <= 0 {
		return best, nil
	}
	page, err := st.Search(ctx, store.Query{Tenant: a.Tenant, Type: "Task", Count: 1, Params: []store.Param{
		subject, owner, tokens("status", closedTasks), dateFrom("modified", since)}})
	if err != nil {
		return NoReach, err
	}
	if len(page.Resources) > 0 {
		return GraceReach, nil
	}
	return NoReach, nil
}

// dateFrom selects resources whose date parameter name is since or later
// (a task's modified: when it closed; a team's date: when it ended).
func dateFrom(name string, since time.Time) store.Param {
	return store.Param{Name: name, Kind: store.KindDate, Values: []store.Value{{Prefix: "ge", Lo: since, Hi: since.Add(time.Second)}}}
}

// running is the set of CarePlans ("CarePlan/<id>") of one patient's
// running episodes; a nil set: no running episode.
type running map[string]bool

// runningCarePlans returns, for each patient, the CarePlans of their
// running episodes: one search over all of them.
func runningCarePlans(ctx context.Context, st Searcher, tenant string, patients []string) (map[string]running, error) {
	out := map[string]running{}
	err := each(ctx, st, store.Query{Tenant: tenant, Type: "EpisodeOfCare", Params: []store.Param{
		refParam("patient", patients...), tokens("status", runningEpisodes)}}, func(res store.Resource) bool {
		var ep struct {
			Patient   struct{ Reference string } `json:"patient"`
			Extension []struct {
				URL            string
				ValueReference struct{ Reference string } `json:"valueReference"`
			} `json:"extension"`
		}
		if json.Unmarshal(res.Body, &ep) != nil {
			return true
		}
		set := out[ep.Patient.Reference]
		if set == nil {
			set = running{}
			out[ep.Patient.Reference] = set
		}
		for _, x := range ep.Extension {
			if x.URL == pathway.ExtEpisodeCarePlan && x.ValueReference.Reference != "" {
				set[x.ValueReference.Reference] = true
			}
		}
		return true
	})
	return out, err
}

// task is what the policy reads of a Task, decoded once.
type task struct {
	For          struct{ Reference string }   `json:"for"`
	Status       string                       `json:"status"`
	LastModified string                       `json:"lastModified"`
	BasedOn      []struct{ Reference string } `json:"basedOn"`
}

func taskOf(body []byte) (task, bool) {
	var t task
	return t, json.Unmarshal(body, &t) == nil
}

// inRunningEpisode tells whether an open task belongs to a running episode
// of its patient: its basedOn names one of the running CarePlans; a task
// based on no CarePlan (an alert review raised outside one) belongs to
// whatever episode is running.
func (t task) inRunningEpisode(plans running) bool {
	if plans == nil {
		return false
	}
	based := false
	for _, b := range t.BasedOn {
		if strings.HasPrefix(b.Reference, "CarePlan/") {
			based = true
			if plans[b.Reference] {
				return true
			}
		}
	}
	return !based
}

// CarePatients returns the patients ("Patient/<id>") a reaches at now, and
// how (Relation's rule, for a whole search at once): a search is narrowed
// to them, so results and totals show no one else.
//
// Four indexed searches at most: her active care teams, her teams ended
// within grace (neither grows with her past), her tasks (as before: the
// owner index), the running episodes of the patients of her open tasks.
func CarePatients(ctx context.Context, st Searcher, a directory.Actor, now time.Time, grace time.Duration) (map[string]Reach, error) {
	out := map[string]Reach{}
	if len(a.Roles) == 0 {
		return out, nil
	}
	refs, mine := roleRefs(a)
	since := now.Add(-grace)
	raise := func(p string, r Reach) {
		if p != "" && r > out[p] {
			out[p] = r
		}
	}
	participant := store.Param{Name: "participant", Kind: store.KindReference, Values: refs}
	owner := store.Param{Name: "owner", Kind: store.KindReference, Values: refs}
	teams := []store.Query{{Tenant: a.Tenant, Type: "CareTeam", Params: []store.Param{participant, tokens("status", []string{"active"})}}}
	if grace > 0 {
		// An ended team counts only within grace of its end: its period
		// says when (the teams service ends it with its episode).
		teams = append(teams, store.Query{Tenant: a.Tenant, Type: "CareTeam", Params: []store.Param{participant,
			tokens("status", []string{"inactive"}), dateFrom("date", since)}})
	}
	for _, q := range teams {
		if err := each(ctx, st, q, func(res store.Resource) bool {
			p, r := teamReach(res.Body, mine, now, since)
			raise(p, r)
			return true
		}); err != nil {
			return nil, err
		}
	}
	// One search for all her tasks, sorted here: a status condition costs
	// the store one index probe per value and per task, more than reading
	// the tasks themselves.
	open := map[string][]task{}
	if err := each(ctx, st, store.Query{Tenant: a.Tenant, Type: "Task", Params: []store.Param{owner}}, func(res store.Resource) bool {
		t, ok := taskOf(res.Body)
		p := t.For.Reference
		if !ok || !strings.HasPrefix(p, "Patient/") || out[p] == CareReach {
			return true
		}
		switch {
		case slices.Contains(openTasks, t.Status):
			open[p] = append(open[p], t)
		case grace > 0 && slices.Contains(closedTasks, t.Status):
			if at, ok := fhirEnd(t.LastModified); ok && at.After(since) {
				raise(p, GraceReach)
			}
		}
		return true
	}); err != nil {
		return nil, err
	}
	if len(open) > 0 {
		patients := make([]string, 0, len(open))
		for p := range open {
			patients = append(patients, p)
		}
		sort.Strings(patients)
		running, err := runningCarePlans(ctx, st, a.Tenant, patients)
		if err != nil {
			return nil, err
		}
		for p, ts := range open {
			for _, t := range ts {
				if t.inRunningEpisode(running[p]) {
					raise(p, CareReach)
					break
				}
			}
		}
	}
	for p, r := range out {
		if r == NoReach {
			delete(out, p)
		}
	}
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

// teamReach tells how a CareTeam lets one of refs reach its patient (its
// subject, returned) at
// now: CareReach when the team is active and one of refs takes part in it
// (no period end, or one still to come); GraceReach when her part ended
// after since — her participant period ended, or the team became inactive
// (its period's end, set by the teams service when the episode ends). The
// start is not checked: the teams service adds a member when they join,
// so a member is in the team from the moment they are listed. An inactive
// team without an end date gives nothing: nothing says when it ended.
func teamReach(body []byte, refs map[string]bool, now, since time.Time) (patient string, _ Reach) {
	var ct struct {
		Subject     struct{ Reference string } `json:"subject"`
		Status      string                     `json:"status"`
		Period      struct{ End string }       `json:"period"`
		Participant []struct {
			Member struct{ Reference string } `json:"member"`
			Period struct{ End string }       `json:"period"`
		} `json:"participant"`
	}
	if json.Unmarshal(body, &ct) != nil {
		return "", NoReach
	}
	var teamEnd time.Time
	switch ct.Status {
	case "active":
	case "inactive":
		end, ok := fhirEnd(ct.Period.End)
		if !ok {
			return "", NoReach
		}
		teamEnd = end
	default:
		return "", NoReach
	}
	best := NoReach
	for _, p := range ct.Participant {
		if !refs[p.Member.Reference] {
			continue
		}
		end, ok := fhirEnd(p.Period.End)
		if p.Period.End != "" && !ok {
			continue // an unreadable end: not a member we can vouch for
		}
		if ct.Status == "active" {
			if p.Period.End == "" || end.After(now) {
				return ct.Subject.Reference, CareReach
			}
		} else if p.Period.End == "" || teamEnd.Before(end) {
			// An ended team: nobody is in it any longer.
			end = teamEnd
		}
		if end.After(since) {
			best = GraceReach
		}
	}
	return ct.Subject.Reference, best
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
