package ui

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html/template"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/passerelle-sante/passerelle/pkg/clock"
	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/fhir"
	"github.com/passerelle-sante/passerelle/pkg/fhirapi"
	"github.com/passerelle-sante/passerelle/pkg/store"
	"github.com/passerelle-sante/passerelle/services/worklist"
)

type worklistData struct {
	L     map[string]string
	Tasks []taskView
	// Groups are the page's tasks as a round: overdue, today, then each of
	// the next days, by commune; Later the rest, behind "Plus tard".
	Groups           []taskGroup
	Later            []taskView
	Total            int
	Page, Pages      int
	PrevURL, NextURL string
	Overdue          int
	Reasons          []string
}

// taskGroup is a part of the day's round: a title, the tasks by commune.
type taskGroup struct {
	Title    string
	Kind     string // overdue, today, day
	Communes []communeGroup
}

type communeGroup struct {
	City  string
	Tasks []taskView
}

// roundDays is how many days after today the list shows open, day by day.
const roundDays = 6

// round sorts tasks (already by due date) into the day's round: overdue
// first, then today, then each of the next days, each grouped by the
// patient's commune; the rest comes back apart, for "Plus tard".
func round(ts []taskView, now time.Time, lang string) ([]taskGroup, []taskView) {
	y, m, dd := now.In(clock.Paris).Date()
	today := time.Date(y, m, dd, 0, 0, 0, 0, clock.Paris)
	var groups []taskGroup
	var later []taskView
	group := func(kind, title string) *taskGroup {
		for i := range groups {
			if groups[i].Title == title {
				return &groups[i]
			}
		}
		groups = append(groups, taskGroup{Title: title, Kind: kind})
		return &groups[len(groups)-1]
	}
	for _, t := range ts {
		var g *taskGroup
		switch {
		case t.Overdue:
			g = group("overdue", translate(lang, "grp_overdue"))
		case t.Due.IsZero() || t.Due.Before(today.AddDate(0, 0, 1)):
			g = group("today", translate(lang, "grp_today"))
		case t.Due.Before(today.AddDate(0, 0, roundDays+1)):
			g = group("day", dayTitle(t.Due, lang))
		default:
			later = append(later, t)
			continue
		}
		city := t.PatientCity
		i := slices.IndexFunc(g.Communes, func(c communeGroup) bool { return c.City == city })
		if i < 0 {
			g.Communes = append(g.Communes, communeGroup{City: city})
			i = len(g.Communes) - 1
		}
		g.Communes[i].Tasks = append(g.Communes[i].Tasks, t)
	}
	// Overdue then today come first whatever the due dates say.
	slices.SortStableFunc(groups, func(a, b taskGroup) int { return kindRank(a.Kind) - kindRank(b.Kind) })
	return groups, later
}

func kindRank(k string) int {
	switch k {
	case "overdue":
		return 0
	case "today":
		return 1
	}
	return 2
}

// dayTitle is "mardi 7 octobre" (French) or "Tuesday 7 October".
func dayTitle(t time.Time, lang string) string {
	t = t.In(clock.Paris)
	if lang == "en" {
		return t.Format("Monday 2 January")
	}
	days := []string{"dimanche", "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi"}
	months := []string{"janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre", "novembre", "décembre"}
	return days[t.Weekday()] + " " + strconv.Itoa(t.Day()) + " " + months[t.Month()-1]
}

func (u *UI) worklist(w http.ResponseWriter, r *http.Request, p *page) {
	ctx := r.Context()
	tasks, err := u.myTasks(ctx, p.Actor)
	if err != nil {
		u.failErr(w, r, p, err)
		return
	}
	d := worklistData{Total: len(tasks), Page: 1}
	for _, t := range tasks {
		if t.Overdue {
			d.Overdue++
		}
	}
	d.Pages = max(1, (len(tasks)+u.d.PageSize-1)/u.d.PageSize)
	if n, err := strconv.Atoi(r.URL.Query().Get("page")); err == nil && n >= 1 && n <= d.Pages {
		d.Page = n
	}
	lo := (d.Page - 1) * u.d.PageSize
	d.Tasks = tasks[lo:min(len(tasks), lo+u.d.PageSize)]
	if d.Page > 1 {
		d.PrevURL = "/worklist?page=" + strconv.Itoa(d.Page-1)
	}
	if d.Page < d.Pages {
		d.NextURL = "/worklist?page=" + strconv.Itoa(d.Page+1)
	}
	if err := u.patients(p.Actor).fill(ctx, d.Tasks); err != nil {
		u.failErr(w, r, p, err)
		return
	}
	localize(d.Tasks, p.Lang)
	d.Groups, d.Later = round(d.Tasks, p.Now, p.Lang)
	d.L = labels(p.Lang, "born", "due", "overdue", "alerts", "reason", "no_city")
	// The list offers the usual reasons as suggestions of one text field
	// (a select and an "other" field for each of 50 tasks would weigh more
	// than the rest of the page).
	d.Reasons = declineReasons[:len(declineReasons)-1]
	u.audit(r, p, "E", "Task?owner=me&page="+strconv.Itoa(d.Page), shownPatients(d.Tasks))
	p.Title, p.Live, p.Data = p.T("my_tasks"), u.d.Feed != nil, d
	if d.Page > 1 {
		p.Path = "/worklist?page=" + strconv.Itoa(d.Page)
	}
	u.render(w, r, p, http.StatusOK, "worklist")
}

// labels translates keys once for a list's template.
func labels(lang string, keys ...string) map[string]string {
	m := make(map[string]string, len(keys))
	for _, k := range keys {
		m[k] = translate(lang, k)
	}
	return m
}

// shownPatients lists the patients whose names a list of tasks shows.
func shownPatients(ts []taskView) []string {
	var out []string
	for _, t := range ts {
		if t.PatientName != "" && !slices.Contains(out, t.Patient) {
			out = append(out, t.Patient)
		}
	}
	return out
}

type taskData struct {
	Task        taskView
	Mine        bool
	Patient     patientView
	Diagnoses   []string
	Episode     *episodeView
	Letters     []letterView
	Team        []teamMember
	Weight      template.HTML
	Weights     []weightPoint
	WeightDesc  string
	Flags       []flagView
	Back        string
	NYHAClasses []string
	Severities  []string
	// Visit: the page opens on the visit form, whose submit records the
	// visit and completes the task.
	Visit bool
	// VisitRequired: closing the task without a visit asks for a reason.
	VisitRequired bool
	// VisitForm: the page shows the visit form (every open task of the
	// actor but an alert's review).
	VisitForm bool
	// Values are the visit form's fields as typed, when sent back.
	Values                       map[string]string
	DeclineReasons, CloseReasons []string
	Visits                       []visitRow
	Vitals                       template.HTML
	Decisions                    []string
}

type episodeView struct {
	ID, Status, Pathway string
	Start               time.Time
}

type letterView struct {
	ID, Title, Text string
	Date            time.Time
	Downloadable    bool
}

type teamMember struct {
	Name, Role, Phone, Email string
}

// readTask reads a task of the actor's tenant and asks the access policy
// about its patient.
func (u *UI) readTask(ctx context.Context, a directory.Actor, id string) (taskView, error) {
	res, err := u.d.Store.Read(ctx, "Task", id)
	if err != nil {
		return taskView{}, err
	}
	if res.Tenant != a.Tenant {
		return taskView{}, store.ErrNotFound
	}
	t, err := u.tasks.view(res, u.d.Clock.Now())
	if err != nil {
		return taskView{}, err
	}
	if err := u.policy().Patient(ctx, u.d.Store, a, t.Patient); err != nil {
		return taskView{}, err
	}
	return t, nil
}

func (u *UI) task(w http.ResponseWriter, r *http.Request, p *page) {
	u.showTask(w, r, p, r.PathValue("id"), nil, http.StatusOK)
}

// showTask renders a task's page; values, when not nil, are a visit form
// sent back to be corrected, every field as it was typed.
func (u *UI) showTask(w http.ResponseWriter, r *http.Request, p *page, id string, values url.Values, status int) {
	ctx := r.Context()
	t, err := u.readTask(ctx, p.Actor, id)
	if err != nil {
		u.failErr(w, r, p, err)
		return
	}
	d := taskData{Task: t, Back: "/tasks/" + t.ID, NYHAClasses: []string{"I", "II", "III", "IV"}, Severities: severities,
		Values: map[string]string{}, DeclineReasons: declineReasons, CloseReasons: closeReasons, Decisions: decisions}
	for k := range values {
		d.Values[k] = values.Get(k)
	}
	for _, role := range p.Actor.Roles {
		if t.Owner == "PractitionerRole/"+role.ID {
			d.Mine = true
		}
	}
	if t.Status == "in-progress" && d.Mine {
		d.Task.Actions = append(d.Task.Actions, "fail")
	}
	if !d.Mine {
		d.Task.Actions = nil
	}
	open := slices.Contains([]string{"requested", "accepted", "in-progress"}, t.Status)
	d.Visit = d.Mine && open && worklist.IsVisitCode(t.Code)
	d.VisitRequired = d.Visit && worklist.VisitRequired(t.Code)
	d.VisitForm = d.Mine && open && t.Flag == ""
	if values == nil && d.VisitForm {
		if kept := u.takeKept(w, r, t.ID, d.Mine); kept != nil {
			for k := range kept {
				d.Values[k] = kept.Get(k)
			}
			p.Flash = msg("kept_after_login")
		}
	}
	pid := strings.TrimPrefix(t.Patient, "Patient/")
	pres, err := u.d.Store.Read(ctx, "Patient", pid)
	if err != nil {
		u.failErr(w, r, p, err)
		return
	}
	d.Patient = parsePatient(t.Patient, pres.Body)
	byPatient := func(typ string, extra ...store.Param) ([]store.Resource, error) {
		q := store.Query{Tenant: p.Actor.Tenant, Type: typ, Count: 200, Params: append([]store.Param{
			{Name: "patient", Kind: store.KindReference, Values: []store.Value{{Ref: t.Patient}}}}, extra...)}
		page, err := u.d.Store.Search(ctx, q)
		return page.Resources, err
	}
	steps := []func() error{
		func() error { // diagnosis
			res, err := byPatient("Condition")
			for _, c := range res {
				var cond struct {
					Code fConcept `json:"code"`
				}
				_ = json.Unmarshal(c.Body, &cond)
				label := cond.Code.label()
				if code := cond.Code.code("http://hl7.org/fhir/sid/icd-10"); code != "" && code != label {
					label = code + " — " + label
				}
				if label != "" && !slices.Contains(d.Diagnoses, label) {
					d.Diagnoses = append(d.Diagnoses, label)
				}
			}
			return err
		},
		func() error { // episode
			res, err := byPatient("EpisodeOfCare")
			for _, e := range res {
				var ep struct {
					Status    string  `json:"status"`
					Period    fPeriod `json:"period"`
					Type      []fConcept
					Extension []struct {
						URL            string `json:"url"`
						ValueCanonical string `json:"valueCanonical"`
					} `json:"extension"`
				}
				_ = json.Unmarshal(e.Body, &ep)
				v := &episodeView{ID: e.ID, Status: ep.Status, Start: parseTime(ep.Period.Start)}
				for _, x := range ep.Extension {
					if strings.HasSuffix(x.URL, "episode-pathway") {
						v.Pathway = pathwayName(x.ValueCanonical)
					}
				}
				if d.Episode == nil || ep.Status == "active" {
					d.Episode = v
				}
			}
			return err
		},
		func() error { // lettre de liaison
			res, err := byPatient("DocumentReference")
			for _, doc := range res {
				d.Letters = append(d.Letters, parseLetter(doc))
			}
			slices.SortFunc(d.Letters, func(a, b letterView) int { return b.Date.Compare(a.Date) })
			return err
		},
		func() error { // team
			res, err := byPatient("CareTeam")
			if err != nil {
				return err
			}
			d.Team = u.team(ctx, res)
			return nil
		},
		func() error { // weight curve
			res, err := byPatient("Observation", store.Param{Name: "code", Kind: store.KindToken, Values: []store.Value{{Code: codeWeight}}})
			d.Weights = weights(res)
			d.Weight = u.weightSVG(d.Weights, p.Lang)
			d.WeightDesc = strings.Replace(p.T("weight_desc"), "%s", formatNumber(p.Lang, u.d.WeightGain), 1)
			d.WeightDesc = strings.Replace(d.WeightDesc, "%d", strconv.Itoa(u.d.WeightDays), 1)
			return err
		},
		func() error { // the visits: measurements, symptoms and notes, by whom
			res, err := byPatient("QuestionnaireResponse")
			d.Visits = u.visitRows(ctx, res, 10)
			d.Vitals = vitalsSVG(d.Visits, p.Lang)
			return err
		},
		func() error { // alerts
			res, err := byPatient("Flag")
			for _, f := range res {
				fv := parseFlag(f)
				if fv.Status == "active" {
					d.Flags = append(d.Flags, fv)
				}
			}
			return err
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			u.failErr(w, r, p, err)
			return
		}
	}
	u.audit(r, p, "R", "Task/"+t.ID, []string{t.Patient})
	p.Title, p.Data = t.Title+" — "+d.Patient.Name, d
	u.render(w, r, p, status, "task")
}

// pathwayName is the template's id from its canonical url|version.
func pathwayName(canonical string) string {
	c, _, _ := strings.Cut(canonical, "|")
	return c[strings.LastIndex(c, "/")+1:]
}

func parseLetter(res store.Resource) letterView {
	var doc struct {
		Type    fConcept `json:"type"`
		Date    string   `json:"date"`
		Content []struct {
			Attachment struct {
				ContentType string `json:"contentType"`
				Data        string `json:"data"`
				Title       string `json:"title"`
			} `json:"attachment"`
		} `json:"content"`
	}
	_ = json.Unmarshal(res.Body, &doc)
	v := letterView{ID: res.ID, Title: doc.Type.label(), Date: parseTime(doc.Date)}
	for _, c := range doc.Content {
		a := c.Attachment
		if a.Title != "" {
			v.Title = a.Title
		}
		if a.Data == "" {
			continue
		}
		v.Downloadable = true
		if strings.HasPrefix(a.ContentType, "text/plain") {
			if b, err := base64.StdEncoding.DecodeString(a.Data); err == nil && utf8.Valid(b) {
				v.Text = string(b)
			}
		}
	}
	return v
}

// team lists the participants of the patient's current care teams.
func (u *UI) team(ctx context.Context, teams []store.Resource) []teamMember {
	var out []teamMember
	seen := map[string]bool{}
	for _, res := range teams {
		var ct struct {
			Status      string `json:"status"`
			Participant []struct {
				Role   []fConcept `json:"role"`
				Member fRef       `json:"member"`
				Period fPeriod    `json:"period"`
			} `json:"participant"`
		}
		_ = json.Unmarshal(res.Body, &ct)
		if ct.Status != "active" && ct.Status != "proposed" {
			continue
		}
		for _, pt := range ct.Participant {
			if seen[pt.Member.Reference] {
				continue
			}
			if end := parseTime(pt.Period.End); !end.IsZero() && end.Before(u.d.Clock.Now()) {
				continue
			}
			seen[pt.Member.Reference] = true
			m := teamMember{Name: pt.Member.Display}
			for _, role := range pt.Role {
				if c := role.code(directory.SystemTeamRole); c != "" {
					m.Role = c
				}
			}
			typ, id, _ := strings.Cut(pt.Member.Reference, "/")
			switch typ {
			case "PractitionerRole":
				if mem, ok := u.member(ctx, pt.Member.Reference); ok {
					m.Name, m.Phone, m.Email = mem.Name, mem.Phone, mem.Email
					if m.Role == "" {
						m.Role = mem.Code
					}
				}
			case "Practitioner", "Organization", "RelatedPerson":
				if res, err := u.d.Store.Read(ctx, typ, id); err == nil {
					name, phone, email := contactOf(res.Body)
					if name != "" {
						m.Name = name
					}
					m.Phone, m.Email = phone, email
				}
			}
			if m.Name == "" {
				m.Name = pt.Member.Reference
			}
			out = append(out, m)
		}
	}
	return out
}

// contactOf reads a name and contacts from a Practitioner, Organization or
// RelatedPerson.
func contactOf(body []byte) (name, phone, email string) {
	var x struct {
		Name    json.RawMessage `json:"name"`
		Telecom []struct {
			System, Value string
		} `json:"telecom"`
	}
	_ = json.Unmarshal(body, &x)
	var s string
	if json.Unmarshal(x.Name, &s) == nil {
		name = s
	} else {
		var hn []struct {
			Family string   `json:"family"`
			Given  []string `json:"given"`
			Prefix []string `json:"prefix"`
		}
		if json.Unmarshal(x.Name, &hn) == nil && len(hn) > 0 {
			name = strings.TrimSpace(strings.Join(hn[0].Prefix, " ") + " " + titleCase(strings.Join(hn[0].Given, " ")) + " " + hn[0].Family)
		}
	}
	for _, t := range x.Telecom {
		switch {
		case t.System == "phone" && phone == "":
			phone = t.Value
		case t.System == "email" && email == "":
			email = t.Value
		}
	}
	return name, phone, email
}

var actionNames = []string{"accept", "decline", "start", "complete", "fail", "review"}

// decisions are the choices of an alert's review, in the order shown.
var decisions = []string{"treatment-adjustment", "consultation", "hospitalisation", "monitoring", "no-action"}

func (u *UI) transition(w http.ResponseWriter, r *http.Request, p *page) {
	id := r.PathValue("id")
	action := r.PostFormValue("action")
	if !slices.Contains(actionNames, action) {
		u.back(w, r, "/worklist", msgErr("err_action", "action"))
		return
	}
	version, err := strconv.ParseInt(r.PostFormValue("version"), 10, 64)
	if err != nil || version < 0 {
		u.back(w, r, "/worklist", msgErr("err_version", "version"))
		return
	}
	if action == "review" {
		d := r.PostFormValue("decision")
		if !slices.Contains(decisions, d) {
			f := msgErr("err_decision", "decision")
			f.Task = id
			u.back(w, r, "/worklist", f)
			return
		}
		if _, err := u.d.Actions.Review(r.Context(), p.Actor, id, version, d, strings.TrimSpace(r.PostFormValue("note"))); err != nil {
			u.backErr(w, r, "/worklist", err)
			return
		}
		u.back(w, r, "/alerts", msg("done_review"))
		return
	}
	reason, ok := formReason(r)
	if !ok || (action == "decline" && reason == "") {
		// Answered at the field, on the list as on the task page.
		f := msgErr("err_reason", "reason")
		f.Task = id
		u.back(w, r, "/worklist", f)
		return
	}
	if action != "decline" && action != "complete" && action != "fail" {
		reason = ""
	}
	if _, err := u.d.Actions.Transition(r.Context(), p.Actor, id, version, action, reason); err != nil {
		fe := fhir.FromError(err)
		if fhirapi.ServerFault(fe.Kind) {
			u.d.Log.ErrorContext(r.Context(), "action failed", "path", r.URL.Path, "error", err)
		}
		f := fromFHIR(fe)
		if slices.Contains(f.Where, "reason") || slices.Contains(f.Where, "Task.statusReason.text") {
			f.Where, f.Task = []string{"reason"}, id
		}
		u.back(w, r, "/worklist", f)
		return
	}
	u.back(w, r, "/worklist", msg("done_"+action))
}

// declineReasons and closeReasons are the usual reasons a page offers, as
// choices; "other" asks for the words in reason-other.
var (
	declineReasons = []string{"absent", "out-of-area", "capacity", "other"}
	closeReasons   = []string{"absent", "hospitalised", "refused", "other"}
)

// formReason reads the reason of a form: a usual reason (its French label
// is what the task keeps, as a person would write it) or the words typed
// for "other". ok is false for "other" without words or an unknown choice.
func formReason(r *http.Request) (string, bool) {
	c := strings.TrimSpace(r.PostFormValue("reason"))
	switch {
	case c == "":
		return "", true
	case c == "other":
		t := strings.TrimSpace(r.PostFormValue("reason-other"))
		return t, t != ""
	case slices.Contains(declineReasons, c) || slices.Contains(closeReasons, c):
		return translate("fr", "why_"+c), true
	}
	// A free text sent as the reason itself (the API's way, an older page).
	return c, true
}

// FieldError is the message to show next to a field of a task's form, when
// the last action on it was refused there.
func (p *page) FieldError(task, field string) string {
	if p.Flash == nil || !p.Flash.Error || !slices.Contains(p.Flash.Where, field) || (p.Flash.Task != "" && p.Flash.Task != task) {
		return ""
	}
	return p.Flash.Text(p.Lang)
}

// visitField is one numeric field of the visit form with its plausible range.
type visitField struct {
	name, key string
	lo, hi    float64
}

var visitFields = []visitField{
	{"weight-kg", "weight_kg", 20, 300},
	{"systolic", "systolic", 40, 300},
	{"diastolic", "diastolic", 20, 200},
	{"heart-rate", "heart_rate", 20, 250},
}

func (u *UI) visit(w http.ResponseWriter, r *http.Request, p *page) {
	ctx := r.Context()
	id := r.PathValue("id")
	fallback := "/tasks/" + id
	// refuse shows the page again with every field as typed and the
	// message next to the field at fault.
	refuse := func(f *flash) {
		p.Flash = f
		u.showTask(w, r, p, id, r.PostForm, http.StatusBadRequest)
	}
	t, err := u.readTask(ctx, p.Actor, id)
	if err != nil {
		u.backErr(w, r, fallback, err)
		return
	}
	v := worklist.Visit{TaskID: t.ID, Patient: t.Patient, NYHA: r.PostFormValue("nyha"),
		Oedema: r.PostFormValue("oedema"), Breathlessness: r.PostFormValue("breathlessness"),
		Symptoms: strings.TrimSpace(r.PostFormValue("symptoms")), Note: strings.TrimSpace(r.PostFormValue("note")),
		Complete: r.PostFormValue("action") == "record-visit"}
	targets := []**float64{&v.WeightKg, &v.Systolic, &v.Diastolic, &v.HeartRate}
	for i, f := range visitFields {
		s := strings.TrimSpace(r.PostFormValue(f.name))
		if s == "" {
			continue
		}
		x, err := strconv.ParseFloat(strings.Replace(s, ",", ".", 1), 64)
		// ParseFloat also reads "NaN", "Inf" and hexadecimal: not a measure.
		if err != nil || math.IsNaN(x) || math.IsInf(x, 0) || strings.ContainsAny(s, "xXpP_") {
			refuse(fieldErr("err_number", f))
			return
		}
		if x < f.lo || x > f.hi {
			refuse(fieldErr("err_range", f))
			return
		}
		*targets[i] = &x
	}
	if v.NYHA != "" && !slices.Contains([]string{"I", "II", "III", "IV"}, v.NYHA) {
		refuse(fieldErr("err_range", visitField{name: "nyha", key: "nyha"}))
		return
	}
	for _, f := range []struct{ name, value string }{{"oedema", v.Oedema}, {"breathlessness", v.Breathlessness}} {
		if f.value != "" && !slices.Contains(severities, f.value) {
			refuse(fieldErr("err_range", visitField{name: f.name, key: f.name}))
			return
		}
	}
	if v.WeightKg == nil && v.Systolic == nil && v.Diastolic == nil && v.HeartRate == nil && v.NYHA == "" && v.Oedema == "" &&
		v.Breathlessness == "" && v.Symptoms == "" && v.Note == "" {
		refuse(msgErr("err_empty_visit", "weight-kg"))
		return
	}
	out, err := u.d.Actions.RecordVisit(ctx, p.Actor, v)
	if err != nil {
		fe := fhir.FromError(err)
		if fe.Kind == fhir.Invalid {
			refuse(fromFHIR(fe))
			return
		}
		u.backErr(w, r, fallback, err)
		return
	}
	done, to := "done_visit", fallback
	if v.Complete {
		// The task is closed: the next one is on the list, whatever page
		// the form came from.
		done, to = "done_visit_completed", "/worklist"
		r.PostForm.Del("back")
	}
	for _, res := range out {
		if res.Type == "Flag" {
			f := parseFlag(res)
			who := u.alertRecipients(ctx, p.Actor.Tenant, t.Patient, out)
			if who == "" {
				who = translate("fr", "the_team")
			}
			m := msg(done)
			a := msg("done_visit_alert", f.Text, who)
			m.FR, m.EN = m.FR+" "+a.FR, m.EN+" "+a.EN
			u.back(w, r, to, m)
			return
		}
	}
	u.back(w, r, to, msg(done))
}

// doctor names a physician as the team addresses them ("Dr …").
func doctor(name, role string) string {
	if (role == directory.RoleGP || role == directory.RoleCardiologist) && !strings.HasPrefix(name, "Dr") {
		return "Dr " + name
	}
	return name
}

// alertRecipients names who reviews the alerts a visit raised: the members
// of the patient's care team in the roles of the review tasks.
func (u *UI) alertRecipients(ctx context.Context, tenant, patient string, written []store.Resource) string {
	var roles []string
	for _, res := range written {
		if res.Type != "Task" {
			continue
		}
		var t fTask
		_ = json.Unmarshal(res.Body, &t)
		if !strings.HasPrefix(t.Focus.Reference, "Flag/") {
			continue
		}
		if t.Owner.Reference != "" {
			if m, ok := u.member(ctx, t.Owner.Reference); ok {
				roles = append(roles, "="+doctor(m.Name, m.Code))
				continue
			}
		}
		for _, pt := range t.PerformerType {
			if c := pt.code(directory.SystemTeamRole); c != "" {
				roles = append(roles, c)
			}
		}
	}
	if len(roles) == 0 {
		return ""
	}
	page, err := u.d.Store.Search(ctx, store.Query{Tenant: tenant, Type: "CareTeam", Count: 20, Params: []store.Param{
		{Name: "patient", Kind: store.KindReference, Values: []store.Value{{Ref: patient}}}}})
	if err != nil {
		return ""
	}
	var names []string
	for _, m := range u.team(ctx, page.Resources) {
		if n := doctor(m.Name, m.Role); slices.Contains(roles, m.Role) && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	for _, r := range roles {
		if n, ok := strings.CutPrefix(r, "="); ok && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return strings.Join(names, ", ")
}

// severities are the answers for oedema and breathlessness.
var severities = []string{"absent", "present", "mild", "moderate", "severe"}

func fieldErr(key string, f visitField) *flash {
	return &flash{Error: true, FR: strings.Replace(translate("fr", key), "%s", translate("fr", f.key), 1),
		EN: strings.Replace(translate("en", key), "%s", translate("en", f.key), 1), Where: []string{f.name}}
}

type alertsData struct {
	Flags []flagView
}

func (u *UI) alerts(w http.ResponseWriter, r *http.Request, p *page) {
	ctx := r.Context()
	var d alertsData
	seen := map[string]bool{}
	ps := u.patients(p.Actor)
	add := func(res store.Resource, task string) error {
		if seen[res.ID] || res.Tenant != p.Actor.Tenant {
			return nil
		}
		f := parseFlag(res)
		if f.Status != "active" {
			return nil
		}
		pv, err := ps.get(ctx, f.Patient)
		if err != nil || pv == nil {
			return err
		}
		seen[res.ID] = true
		f.PatientName, f.Task = pv.Name, task
		f.CanAck = task == "" && p.Coordinates()
		d.Flags = append(d.Flags, f)
		return nil
	}
	if refs := roleRefs(p.Actor); len(refs) > 0 {
		tasks, err := all(ctx, u.d.Store, store.Query{Tenant: p.Actor.Tenant, Type: "Task", Params: []store.Param{
			{Name: "owner", Kind: store.KindReference, Values: refs},
			{Name: "status", Kind: store.KindToken, Values: tokens(openStatuses...)},
		}}, 10000)
		if err != nil {
			u.failErr(w, r, p, err)
			return
		}
		for _, res := range tasks {
			t, err := u.tasks.view(res, p.Now)
			if err != nil || t.Flag == "" {
				continue
			}
			fr, err := u.d.Store.Read(ctx, "Flag", strings.TrimPrefix(t.Flag, "Flag/"))
			if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrGone) {
				continue
			}
			if err == nil {
				err = add(fr, t.ID)
			}
			if err != nil {
				u.failErr(w, r, p, err)
				return
			}
		}
	}
	// The open alerts of her patients too (those of her open tasks and of
	// the care teams she is in), not only those she must review: the
	// nurse who sees the patient tomorrow must know.
	mine, err := u.myPatients(ctx, p.Actor)
	if err != nil {
		u.failErr(w, r, p, err)
		return
	}
	addAll := func(flags []store.Resource) error {
		for _, res := range flags {
			if err := add(res, ""); err != nil {
				return err
			}
		}
		return nil
	}
	for len(mine) > 0 {
		n := min(len(mine), 100)
		flags, err := all(ctx, u.d.Store, store.Query{Tenant: p.Actor.Tenant, Type: "Flag", Params: []store.Param{
			{Name: "patient", Kind: store.KindReference, Values: mine[:n]}}}, 1000)
		if err != nil {
			u.failErr(w, r, p, err)
			return
		}
		if err := addAll(flags); err != nil {
			u.failErr(w, r, p, err)
			return
		}
		mine = mine[n:]
	}
	if p.Coordinates() {
		flags, err := all(ctx, u.d.Store, store.Query{Tenant: p.Actor.Tenant, Type: "Flag", Count: 200}, 1000)
		if err != nil {
			u.failErr(w, r, p, err)
			return
		}
		if err := addAll(flags); err != nil {
			u.failErr(w, r, p, err)
			return
		}
	}
	slices.SortFunc(d.Flags, func(a, b flagView) int {
		if c := b.Date.Compare(a.Date); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	var shown []string
	for _, f := range d.Flags {
		if !slices.Contains(shown, f.Patient) {
			shown = append(shown, f.Patient)
		}
	}
	u.audit(r, p, "E", "Flag?recipient=me", shown)
	p.Title, p.Live, p.Data = p.T("alerts"), u.d.Feed != nil, d
	u.render(w, r, p, http.StatusOK, "alerts")
}

// myPatients are the patients of the actor's open tasks and of the active
// care teams she is in.
func (u *UI) myPatients(ctx context.Context, a directory.Actor) ([]store.Value, error) {
	refs := roleRefs(a)
	if len(refs) == 0 {
		return nil, nil
	}
	var out []store.Value
	seen := map[string]bool{}
	addRef := func(ref string) {
		if strings.HasPrefix(ref, "Patient/") && !seen[ref] {
			seen[ref] = true
			out = append(out, store.Value{Ref: ref})
		}
	}
	tasks, err := u.myTasks(ctx, a)
	if err != nil {
		return nil, err
	}
	for _, t := range tasks {
		addRef(t.Patient)
	}
	teams, err := all(ctx, u.d.Store, store.Query{Tenant: a.Tenant, Type: "CareTeam", Params: []store.Param{
		{Name: "participant", Kind: store.KindReference, Values: refs},
		{Name: "status", Kind: store.KindToken, Values: tokens("active")}}}, 10000)
	if err != nil {
		return nil, err
	}
	for _, res := range teams {
		var ct struct {
			Subject fRef `json:"subject"`
		}
		_ = json.Unmarshal(res.Body, &ct)
		addRef(ct.Subject.Reference)
	}
	return out, nil
}

func (u *UI) acknowledge(w http.ResponseWriter, r *http.Request, p *page) {
	if err := u.d.Actions.Acknowledge(r.Context(), p.Actor, r.PathValue("id")); err != nil {
		u.backErr(w, r, "/alerts", err)
		return
	}
	u.back(w, r, "/alerts", msg("done_ack"))
}

// document serves a DocumentReference's first attachment.
func (u *UI) document(w http.ResponseWriter, r *http.Request, p *page) {
	ctx := r.Context()
	res, err := u.d.Store.Read(ctx, "DocumentReference", r.PathValue("id"))
	if err == nil && res.Tenant != p.Actor.Tenant {
		err = store.ErrNotFound
	}
	if err != nil {
		u.failErr(w, r, p, err)
		return
	}
	var doc struct {
		Subject fRef `json:"subject"`
		Content []struct {
			Attachment struct {
				ContentType string `json:"contentType"`
				Data        string `json:"data"`
			} `json:"attachment"`
		} `json:"content"`
	}
	_ = json.Unmarshal(res.Body, &doc)
	if err := u.policy().Patient(ctx, u.d.Store, p.Actor, doc.Subject.Reference); err != nil {
		u.failErr(w, r, p, err)
		return
	}
	for _, c := range doc.Content {
		b, err := base64.StdEncoding.DecodeString(c.Attachment.Data)
		if err != nil || len(b) == 0 {
			continue
		}
		// Only inert types keep theirs: a document is hospital content and
		// must never run as a page of this site.
		ct := c.Attachment.ContentType
		base, _, _ := strings.Cut(ct, ";")
		if !slices.Contains([]string{"text/plain", "application/pdf", "image/png", "image/jpeg"}, strings.TrimSpace(base)) {
			ct = "application/octet-stream"
		}
		u.audit(r, p, "R", "DocumentReference/"+res.ID, []string{doc.Subject.Reference})
		w.Header().Set("Content-Security-Policy", "sandbox")
		w.Header().Set("Content-Type", ct)
		w.Header().Set("Content-Disposition", `attachment; filename="lettre-`+res.ID+`"`)
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(b)
		return
	}
	u.failErr(w, r, p, fhir.FromError(store.ErrNotFound))
}
