package ui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/pathway"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// coordinates tells whether the actor sees the whole CPTS; otherwise it
// answers 403.
func (u *UI) coordinates(w http.ResponseWriter, r *http.Request, p *page) bool {
	if p.Coordinates() {
		return true
	}
	u.fail(w, r, p, http.StatusForbidden, "err_forbidden", nil)
	return false
}

// coordData is the coordination page: a to-do list of what needs a
// person now, in groups by kind, then the CPTS's open episodes.
type coordData struct {
	Groups   []todoGroup
	Count    int
	Episodes []episodeRow
	More     bool
}

// todoGroup is one kind of problem; Key names its heading ("todo_<key>").
type todoGroup struct {
	Key   string
	Items []todoItem
}

// todoItem is a task that needs someone, with what the coordinator needs
// to decide who: where the patient lives, how long the problem has lasted
// and who could take it.
type todoItem struct {
	taskView
	Commune     string // "Roanne (42300)"
	Since       time.Time
	AgeText     string
	RoleLabel   string
	Candidates  []candidate
	Best        *candidate // the least loaded candidate present now
	Territory   bool       // the patient's home is known: candidates are filtered by it
	Unreachable bool       // nobody of the role covers the patient's home
}

// candidate is a member who could take a task, with their load and
// absences.
type candidate struct {
	Ref, Name, RoleLabel string
	Load, Capacity       int
	Away                 string // absent now: until when
	Soon                 string // an absence starting in the next two weeks
	Full                 bool
}

type episodeRow struct {
	ID, Status, Pathway, Patient, PatientName string
	Start                                     time.Time
	OpenTasks                                 int
}

// maxCoordRows bounds what the coordination page reads of each list.
const maxCoordRows = 2000

// The to-do groups, in the order a coordinator must act on them: a task
// nobody owns or everybody declined may never be done; a late first
// contact is the pathway's most time-critical step; then late visits and
// alerts nobody reviewed within the template's delay.
const (
	todoUnassigned   = "unassigned"
	todoDeclined     = "declined"
	todoFirstContact = "first_contact_late"
	todoVisit        = "visit_late"
	todoAlert        = "alert_late"
)

var todoOrder = []string{todoUnassigned, todoDeclined, todoFirstContact, todoVisit, todoAlert}

// fCoordTask is what the to-do list reads of a task beyond taskView.
type fCoordTask struct {
	Code         fConcept `json:"code"`
	AuthoredOn   string   `json:"authoredOn"`
	LastModified string   `json:"lastModified"`
	BasedOn      []fRef   `json:"basedOn"`
	Focus        fRef     `json:"focus"`
	Extension    []struct {
		URL       string `json:"url"`
		Extension []struct {
			URL string `json:"url"`
		} `json:"extension"`
	} `json:"extension"`
}

// declinedBySomeone tells whether anyone declined the task or let its
// acceptance time run out: a task rejected by the teams service with
// nobody ever offered it is a task nobody owns, not one everybody refused.
func (t fCoordTask) declinedBySomeone() bool {
	for _, e := range t.Extension {
		if e.URL != pathway.ExtTaskAssignment {
			continue
		}
		for _, x := range e.Extension {
			if x.URL == "tried" {
				return true
			}
		}
	}
	return false
}

// homeAddress is where a patient lives, as the territory rule reads it.
type homeAddress struct{ City, Postal, Commune string }

func (h homeAddress) label() string {
	switch {
	case h.City != "" && h.Postal != "":
		return h.City + " (" + h.Postal + ")"
	case h.City != "":
		return h.City
	case h.Postal != "":
		return h.Postal
	}
	return h.Commune
}

func (u *UI) coordination(w http.ResponseWriter, r *http.Request, p *page) {
	if !u.coordinates(w, r, p) {
		return
	}
	ctx := r.Context()
	var d coordData
	ps := u.patients(p.Actor)
	eps, err := all(ctx, u.d.Store, store.Query{Tenant: p.Actor.Tenant, Type: "EpisodeOfCare", Params: []store.Param{
		{Name: "status", Kind: store.KindToken, Values: tokens("planned", "active", "onhold")}}}, maxCoordRows)
	if err != nil {
		u.failErr(w, r, p, err)
		return
	}
	d.More = len(eps) >= maxCoordRows
	openEpisode := map[string]bool{} // by id
	patientOpen := map[string]bool{} // patients with an open episode
	for _, res := range eps {
		openEpisode[res.ID] = true
		var ep struct {
			Patient fRef `json:"patient"`
		}
		_ = json.Unmarshal(res.Body, &ep)
		patientOpen[ep.Patient.Reference] = true
	}
	tasks, err := all(ctx, u.d.Store, store.Query{Tenant: p.Actor.Tenant, Type: "Task", Params: []store.Param{
		{Name: "status", Kind: store.KindToken, Values: tokens("requested", "accepted", "in-progress", "rejected")}}}, maxCoordRows)
	if err != nil {
		u.failErr(w, r, p, err)
		return
	}
	d.More = d.More || len(tasks) >= maxCoordRows
	openBy := map[string]int{}
	load := map[string]int{}
	episodeOf := map[string]string{} // CarePlan id → EpisodeOfCare id
	var items []todoItem
	for _, res := range tasks {
		t, err := u.tasks.view(res, p.Now)
		if err != nil {
			continue
		}
		if t.Status != "rejected" {
			openBy[t.Patient]++
			if t.Owner != "" {
				load[t.Owner]++
			}
		}
		var ft fCoordTask
		_ = json.Unmarshal(res.Body, &ft)
		code := ft.Code.code("")
		it := todoItem{taskView: t}
		switch {
		case code == "escalation":
			// An escalation is about a task the list already shows (nobody
			// owns it, everybody declined it, or it is late).
			continue
		case t.Status == "rejected" && (t.Owner != "" || ft.declinedBySomeone()):
			it.Problem, it.Since = todoDeclined, parseTime(ft.LastModified)
		case t.Status == "rejected":
			// Nobody was available: the teams service rejected it at once.
			it.Problem, it.Since = todoUnassigned, parseTime(firstOf(ft.LastModified, ft.AuthoredOn))
		case t.Owner == "" && t.Role != "":
			it.Problem, it.Since = todoUnassigned, parseTime(firstOf(ft.LastModified, ft.AuthoredOn))
		case t.Overdue && t.Flag != "":
			it.Problem, it.Since = todoAlert, t.Due
		case t.Overdue && code == "first-contact":
			it.Problem, it.Since = todoFirstContact, t.Due
		case t.Overdue && t.Role != "":
			it.Problem, it.Since = todoVisit, t.Due
		default:
			continue
		}
		if it.Since.IsZero() {
			it.Since = t.Start
		}
		// Nothing from a finished or cancelled episode: a task belongs to
		// the episode its CarePlan supports, or, without one, to its
		// patient's open episode.
		ep, err := u.carePlanEpisode(ctx, episodeOf, append(ft.BasedOn, ft.Focus))
		if err != nil {
			u.failErr(w, r, p, err)
			return
		}
		if ep != "" && !openEpisode[ep] || ep == "" && !patientOpen[t.Patient] {
			continue
		}
		items = append(items, it)
	}
	var members []directory.Member
	if len(items) > 0 {
		if members, err = directory.LoadMembers(ctx, u.d.Store, p.Actor.Tenant); err != nil {
			u.failErr(w, r, p, err)
			return
		}
	}
	views := make([]taskView, len(items))
	for i := range items {
		views[i] = items[i].taskView
	}
	if err := ps.fill(ctx, views); err != nil {
		u.failErr(w, r, p, err)
		return
	}
	homes, err := u.homes(ctx, p.Actor.Tenant, ps, views)
	if err != nil {
		u.failErr(w, r, p, err)
		return
	}
	byRef := map[string]directory.Member{}
	for _, m := range members {
		byRef[m.Ref()] = m
	}
	groups := map[string][]todoItem{}
	for i := range items {
		it := items[i]
		it.taskView = views[i]
		if it.PatientName == "" {
			continue // a patient the actor may not see
		}
		if m, ok := byRef[it.Owner]; ok {
			it.OwnerName = m.Name
		}
		home := homes[it.Patient]
		it.Commune = home.label()
		it.Territory = home.Commune != "" || home.Postal != ""
		it.RoleLabel = translate(p.Lang, "role_"+it.Role)
		it.AgeText = ageText(p.Lang, p.Now.Sub(it.Since))
		it.Candidates, it.Unreachable = candidatesFor(p.Lang, p.Now, members, it.taskView, home, load)
		if len(it.Candidates) > 0 && it.Candidates[0].Away == "" && !it.Unreachable {
			it.Best = &it.Candidates[0]
		}
		groups[it.Problem] = append(groups[it.Problem], it)
	}
	for _, k := range todoOrder {
		g := groups[k]
		if len(g) == 0 {
			continue
		}
		// The oldest problem first.
		slices.SortFunc(g, func(a, b todoItem) int {
			if c := a.Since.Compare(b.Since); c != 0 {
				return c
			}
			return strings.Compare(a.ID, b.ID)
		})
		d.Groups = append(d.Groups, todoGroup{Key: k, Items: g})
		d.Count += len(g)
	}
	for _, res := range eps {
		var ep struct {
			Status    string  `json:"status"`
			Patient   fRef    `json:"patient"`
			Period    fPeriod `json:"period"`
			Extension []struct {
				URL            string `json:"url"`
				ValueCanonical string `json:"valueCanonical"`
			} `json:"extension"`
		}
		_ = json.Unmarshal(res.Body, &ep)
		row := episodeRow{ID: res.ID, Status: ep.Status, Patient: ep.Patient.Reference, Start: parseTime(ep.Period.Start), OpenTasks: openBy[ep.Patient.Reference]}
		for _, x := range ep.Extension {
			if strings.HasSuffix(x.URL, "episode-pathway") {
				row.Pathway = pathwayName(x.ValueCanonical)
			}
		}
		pv, err := ps.get(ctx, row.Patient)
		if err != nil {
			u.failErr(w, r, p, err)
			return
		}
		if pv != nil {
			row.PatientName = pv.Name
		}
		d.Episodes = append(d.Episodes, row)
	}
	slices.SortFunc(d.Episodes, func(a, b episodeRow) int {
		if c := b.Start.Compare(a.Start); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	var shown []string
	for _, g := range d.Groups {
		for _, it := range g.Items {
			if !slices.Contains(shown, it.Patient) {
				shown = append(shown, it.Patient)
			}
		}
	}
	for _, e := range d.Episodes {
		if e.PatientName != "" && !slices.Contains(shown, e.Patient) {
			shown = append(shown, e.Patient)
		}
	}
	u.audit(r, p, "E", "EpisodeOfCare?status=planned,active,onhold", shown)
	p.Title, p.Data = p.T("coordination"), d
	u.render(w, r, p, http.StatusOK, "coordination")
}

func firstOf(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// carePlanEpisode returns the episode the first of refs that is a CarePlan
// supports ("" when none names one), remembering CarePlans in seen.
func (u *UI) carePlanEpisode(ctx context.Context, seen map[string]string, refs []fRef) (string, error) {
	for _, ref := range refs {
		id, ok := strings.CutPrefix(ref.Reference, "CarePlan/")
		if !ok || id == "" {
			continue
		}
		if ep, ok := seen[id]; ok {
			return ep, nil
		}
		res, err := u.d.Store.Read(ctx, "CarePlan", id)
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrGone) {
			seen[id] = ""
			continue
		}
		if err != nil {
			return "", fmt.Errorf("CarePlan/%s: %w", id, err)
		}
		var cp struct {
			SupportingInfo []fRef `json:"supportingInfo"`
		}
		_ = json.Unmarshal(res.Body, &cp)
		seen[id] = ""
		for _, si := range cp.SupportingInfo {
			if ep, ok := strings.CutPrefix(si.Reference, "EpisodeOfCare/"); ok {
				seen[id] = ep
				return ep, nil
			}
		}
	}
	return "", nil
}

// homes reads the home address of the tasks' patients the actor may see
// (ps has checked them).
func (u *UI) homes(ctx context.Context, tenant string, ps *patients, ts []taskView) (map[string]homeAddress, error) {
	var ids []store.Value
	for _, t := range ts {
		if ps.cache[t.Patient] != nil && !slices.ContainsFunc(ids, func(v store.Value) bool { return "Patient/"+v.Code == t.Patient }) {
			ids = append(ids, store.Value{Code: strings.TrimPrefix(t.Patient, "Patient/")})
		}
	}
	out := map[string]homeAddress{}
	for len(ids) > 0 {
		n := min(len(ids), 100)
		page, err := u.d.Store.Search(ctx, store.Query{Tenant: tenant, Type: "Patient", Count: n,
			Params: []store.Param{{Name: "_id", Kind: store.KindToken, Values: ids[:n]}}})
		if err != nil {
			return nil, fmt.Errorf("read patients' addresses: %w", err)
		}
		for _, res := range page.Resources {
			var pt struct {
				Address []struct {
					Use        string `json:"use"`
					City       string `json:"city"`
					PostalCode string `json:"postalCode"`
					Extension  []struct {
						URL         string `json:"url"`
						ValueCoding struct {
							Code string `json:"code"`
						} `json:"valueCoding"`
					} `json:"extension"`
				} `json:"address"`
			}
			_ = json.Unmarshal(res.Body, &pt)
			// The home address, as the teams service reads it for the
			// territory rule: the first without a use, or of use home.
			for _, a := range pt.Address {
				if a.Use != "" && a.Use != "home" {
					continue
				}
				h := homeAddress{City: a.City, Postal: a.PostalCode}
				for _, e := range a.Extension {
					if strings.HasSuffix(e.URL, "fr-core-address-insee-code") {
						h.Commune = e.ValueCoding.Code
					}
				}
				out["Patient/"+res.ID] = h
				break
			}
		}
		ids = ids[n:]
	}
	return out, nil
}

// candidatesFor lists who may take t: active members of its role whose
// territory covers the patient's home (the rule of automatic assignment),
// then the referent coordinating nurses of that territory, who may take
// any task themselves; least loaded first. unreachable is true when nobody
// of the role covers the home.
func candidatesFor(lang string, now time.Time, members []directory.Member, t taskView, home homeAddress, load map[string]int) ([]candidate, bool) {
	var role, coord []candidate
	covers := func(m directory.Member) bool {
		return (home.Commune == "" && home.Postal == "") || m.Code == directory.RoleCoordinator || m.Covers(home.Commune, home.Postal)
	}
	for _, m := range members {
		if !m.Active || m.Ref() == t.Owner || !covers(m) {
			continue
		}
		if t.Role != "" && m.Code != t.Role && m.Code != directory.RoleCoordinatingNurse {
			continue
		}
		c := candidate{Ref: m.Ref(), Name: m.Name, RoleLabel: translate(lang, "role_"+m.Code), Load: load[m.Ref()], Capacity: m.Capacity}
		c.Full = m.Capacity > 0 && c.Load >= m.Capacity
		for _, a := range m.NotAvailable {
			switch {
			case a.Contains(now):
				c.Away = translate(lang, "away_open")
				if !a.End.IsZero() {
					c.Away = fmt.Sprintf(translate(lang, "away_until"), formatDate(a.End))
				}
			case a.Start.After(now) && a.Start.Before(now.AddDate(0, 0, 14)) && c.Soon == "":
				c.Soon = fmt.Sprintf(translate(lang, "away_from"), formatDate(a.Start))
			}
		}
		if m.Code == t.Role || t.Role == "" {
			role = append(role, c)
		} else {
			coord = append(coord, c)
		}
	}
	byLoad := func(a, b candidate) int {
		if (a.Away != "") != (b.Away != "") {
			if a.Away != "" {
				return 1
			}
			return -1
		}
		if a.Load != b.Load {
			return a.Load - b.Load
		}
		return strings.Compare(a.Name, b.Name)
	}
	slices.SortFunc(role, byLoad)
	slices.SortFunc(coord, byLoad)
	return append(role, coord...), len(role) == 0
}

// ageText says how long a problem has lasted: "depuis 3 j", "depuis 5 h".
func ageText(lang string, d time.Duration) string {
	switch {
	case d < time.Hour:
		return translate(lang, "age_now")
	case d < 48*time.Hour:
		return fmt.Sprintf(translate(lang, "age_hours"), int(d.Hours()))
	}
	return fmt.Sprintf(translate(lang, "age_days"), int(d.Hours()/24))
}

// reassignData is the confirmation step of a reassignment.
type reassignData struct {
	Task taskView
	To   directory.Member
	Back string
}

func (u *UI) reassign(w http.ResponseWriter, r *http.Request, p *page) {
	if !u.coordinates(w, r, p) {
		return
	}
	if u.d.Reassigner == nil {
		u.fail(w, r, p, http.StatusNotImplemented, "err_unavailable", nil)
		return
	}
	to := r.PostFormValue("to")
	if !strings.HasPrefix(to, "PractitionerRole/") {
		u.back(w, r, "/coordination", msgErr("err_no_member", "to"))
		return
	}
	// Giving a patient's task to someone is confirmed: without the
	// confirmation (a browser that ignores the required checkbox, a stray
	// submit) the page asks again, naming the task and the person.
	if r.PostFormValue("confirm") != "yes" {
		t, err := u.readTask(r.Context(), p.Actor, r.PathValue("id"))
		if err != nil {
			u.failErr(w, r, p, err)
			return
		}
		members, err := directory.LoadMembers(r.Context(), u.d.Store, p.Actor.Tenant)
		if err != nil {
			u.failErr(w, r, p, err)
			return
		}
		i := slices.IndexFunc(members, func(m directory.Member) bool { return m.Ref() == to })
		if i < 0 {
			u.back(w, r, "/coordination", msgErr("err_no_member", "to"))
			return
		}
		back := r.PostFormValue("back")
		if !localPath(back) {
			back = "/coordination"
		}
		p.Title, p.Data = p.T("reassign_confirm_title"), reassignData{Task: t, To: members[i], Back: back}
		u.render(w, r, p, http.StatusOK, "reassign")
		return
	}
	if err := u.d.Reassigner.Reassign(r.Context(), p.Actor, r.PathValue("id"), to); err != nil {
		u.backErr(w, r, "/coordination", err)
		return
	}
	u.back(w, r, "/coordination", msg("done_reassign"))
}

type directoryData struct {
	Members []memberRow
	Query   string
	Total   int
}

type memberRow struct {
	directory.Member
	OrgName, RoleLabel string
}

// matches tells whether every one of words (folded) is found, accents and
// case aside, in the member's name, role, organisation, territory, phone or
// e-mail.
func (m memberRow) matches(words []string) bool {
	hay := fold(strings.Join(append(append([]string{m.Name, m.Code, m.RoleLabel, m.OrgName, m.Phone, m.Email, m.RPPS},
		m.Communes...), m.PostalCodes...), " "))
	for _, w := range words {
		if !strings.Contains(hay, w) {
			return false
		}
	}
	return true
}

// accents maps the French accented letters to plain ones.
var accents = strings.NewReplacer("é", "e", "è", "e", "ê", "e", "ë", "e", "à", "a", "â", "a", "ä", "a", "î", "i", "ï", "i",
	"ô", "o", "ö", "o", "ù", "u", "û", "u", "ü", "u", "ç", "c", "œ", "oe", "æ", "ae")

// fold lowers s and strips the French accents, so that "helene" finds
// "Hélène".
func fold(s string) string { return accents.Replace(strings.ToLower(s)) }

func (u *UI) directory(w http.ResponseWriter, r *http.Request, p *page) {
	if !u.coordinates(w, r, p) {
		return
	}
	ctx := r.Context()
	members, err := directory.LoadMembers(ctx, u.d.Store, p.Actor.Tenant)
	if err != nil {
		u.failErr(w, r, p, err)
		return
	}
	orgs, err := u.organizations(r)
	if err != nil {
		u.failErr(w, r, p, err)
		return
	}
	d := directoryData{Query: strings.TrimSpace(r.URL.Query().Get("q"))}
	words := strings.Fields(fold(d.Query))
	for _, m := range members {
		row := memberRow{Member: m, OrgName: orgs[m.Organization].Name, RoleLabel: translate(p.Lang, "role_"+m.Code)}
		if len(words) > 0 && !row.matches(words) {
			continue
		}
		d.Members = append(d.Members, row)
	}
	d.Total = len(members)
	slices.SortFunc(d.Members, func(a, b memberRow) int {
		if c := strings.Compare(a.Code, b.Code); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	p.Title, p.Data = p.T("directory"), d
	u.render(w, r, p, http.StatusOK, "directory")
}

type orgView struct {
	Ref, Name, FINESS string
}

// organizations reads the tenant's Organizations by reference.
func (u *UI) organizations(r *http.Request) (map[string]orgView, error) {
	a := actorOf(r)
	res, err := all(r.Context(), u.d.Store, store.Query{Tenant: a.Tenant, Type: "Organization"}, 5000)
	if err != nil {
		return nil, err
	}
	out := map[string]orgView{}
	for _, o := range res {
		var org struct {
			Name       string `json:"name"`
			Identifier []struct {
				System, Value string
			} `json:"identifier"`
			PartOf *fRef `json:"partOf"`
		}
		_ = json.Unmarshal(o.Body, &org)
		v := orgView{Ref: "Organization/" + o.ID, Name: org.Name}
		for _, id := range org.Identifier {
			if id.System == directory.SystemFINESS {
				v.FINESS = id.Value
			}
		}
		out[v.Ref] = v
	}
	return out, nil
}

type templatesData struct {
	Templates []templateRow
}

type templateRow struct {
	ID, Title, Version, Status, URL string
	Date                            time.Time
	Actions                         []actionRow
}

type actionRow struct {
	Title, Role, Timing string
}

func (u *UI) templates(w http.ResponseWriter, r *http.Request, p *page) {
	if !u.coordinates(w, r, p) {
		return
	}
	res, err := all(r.Context(), u.d.Store, store.Query{Tenant: p.Actor.Tenant, Type: "PlanDefinition"}, 1000)
	if err != nil {
		u.failErr(w, r, p, err)
		return
	}
	var d templatesData
	for _, pd := range res {
		var def struct {
			Title, Name, Version, Status, URL, Date string
			Action                                  []struct {
				Title       string `json:"title"`
				Participant []struct {
					Type string    `json:"type"`
					Role *fConcept `json:"role"`
				} `json:"participant"`
				TimingDuration *struct {
					Value float64 `json:"value"`
					Unit  string  `json:"unit"`
				} `json:"timingDuration"`
				TimingRange *struct {
					Low, High *struct {
						Value float64 `json:"value"`
						Unit  string  `json:"unit"`
					}
				} `json:"timingRange"`
			} `json:"action"`
		}
		_ = json.Unmarshal(pd.Body, &def)
		row := templateRow{ID: pd.ID, Title: def.Title, Version: def.Version, Status: def.Status, URL: def.URL, Date: parseTime(def.Date)}
		if row.Title == "" {
			row.Title = def.Name
		}
		for _, a := range def.Action {
			ar := actionRow{Title: a.Title}
			for _, pt := range a.Participant {
				if pt.Role != nil {
					ar.Role = pt.Role.code(directory.SystemTeamRole)
				} else if ar.Role == "" {
					ar.Role = pt.Type
				}
			}
			if tr := a.TimingRange; tr != nil && tr.Low != nil && tr.High != nil {
				ar.Timing = "D+" + formatNumber(p.Lang, tr.Low.Value) + " … D+" + formatNumber(p.Lang, tr.High.Value) + " " + tr.High.Unit
			} else if td := a.TimingDuration; td != nil {
				ar.Timing = "D+" + formatNumber(p.Lang, td.Value) + " " + td.Unit
			}
			row.Actions = append(row.Actions, ar)
		}
		d.Templates = append(d.Templates, row)
	}
	slices.SortFunc(d.Templates, func(a, b templateRow) int { return strings.Compare(a.Title, b.Title) })
	p.Title, p.Data = p.T("templates"), d
	u.render(w, r, p, http.StatusOK, "templates")
}
