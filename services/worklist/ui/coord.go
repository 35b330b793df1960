package ui

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/directory"
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

type coordData struct {
	Episodes []episodeRow
	Tasks    []taskView
	More     bool
}

type episodeRow struct {
	ID, Status, Pathway, Patient, PatientName string
	Start                                     time.Time
	OpenTasks                                 int
}

// maxCoordRows bounds what the coordination page reads of each list.
const maxCoordRows = 2000

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
	openBy := map[string]int{}
	tasks, err := all(ctx, u.d.Store, store.Query{Tenant: p.Actor.Tenant, Type: "Task", Params: []store.Param{
		{Name: "status", Kind: store.KindToken, Values: tokens("requested", "accepted", "in-progress", "rejected")}}}, maxCoordRows)
	if err != nil {
		u.failErr(w, r, p, err)
		return
	}
	d.More = d.More || len(tasks) >= maxCoordRows
	var members []directory.Member
	for _, res := range tasks {
		t, err := u.tasks.view(res, p.Now)
		if err != nil {
			continue
		}
		if t.Status != "rejected" {
			openBy[t.Patient]++
		}
		switch {
		case t.Status == "rejected":
			t.Problem = "declined"
		case t.Owner == "":
			t.Problem = "unassigned"
		case t.Overdue:
			t.Problem = "overdue"
		default:
			continue
		}
		d.Tasks = append(d.Tasks, t)
	}
	if len(d.Tasks) > 0 {
		if members, err = directory.LoadMembers(ctx, u.d.Store, p.Actor.Tenant); err != nil {
			u.failErr(w, r, p, err)
			return
		}
	}
	byRef := map[string]directory.Member{}
	for _, m := range members {
		byRef[m.Ref()] = m
	}
	for i := range d.Tasks {
		t := &d.Tasks[i]
		if m, ok := byRef[t.Owner]; ok {
			t.OwnerName = m.Name
		}
		for _, m := range members {
			// The referent coordinating nurse may take any task herself.
			if m.Active && m.Ref() != t.Owner && (t.Role == "" || m.Code == t.Role || m.Code == directory.RoleCoordinatingNurse) {
				t.Candidates = append(t.Candidates, m)
			}
		}
	}
	slices.SortFunc(d.Tasks, byDue)
	if err := ps.fill(ctx, d.Tasks); err != nil {
		u.failErr(w, r, p, err)
		return
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
	shown := shownPatients(d.Tasks)
	for _, e := range d.Episodes {
		if e.PatientName != "" && !slices.Contains(shown, e.Patient) {
			shown = append(shown, e.Patient)
		}
	}
	u.audit(r, p, "E", "EpisodeOfCare?status=planned,active,onhold", shown)
	p.Title, p.Data = p.T("coordination"), d
	u.render(w, r, p, http.StatusOK, "coordination")
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
	if err := u.d.Reassigner.Reassign(r.Context(), p.Actor, r.PathValue("id"), to); err != nil {
		u.backErr(w, r, "/coordination", err)
		return
	}
	u.back(w, r, "/coordination", msg("done_reassign"))
}

type directoryData struct {
	Members []memberRow
}

type memberRow struct {
	directory.Member
	OrgName string
}

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
	var d directoryData
	for _, m := range members {
		d.Members = append(d.Members, memberRow{Member: m, OrgName: orgs[m.Organization].Name})
	}
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
