package ui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/clock"
	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/fhir"
	"github.com/passerelle-sante/passerelle/pkg/store"
	"github.com/passerelle-sante/passerelle/services/worklist"
)

// The FHIR shapes the pages read: only the elements they show.

type fRef struct {
	Reference string `json:"reference"`
	Display   string `json:"display"`
}

type fCoding struct {
	System  string `json:"system"`
	Code    string `json:"code"`
	Display string `json:"display"`
}

type fConcept struct {
	Coding []fCoding `json:"coding"`
	Text   string    `json:"text"`
}

// label is the concept's text, or its first display, or its first code.
func (c fConcept) label() string {
	if c.Text != "" {
		return c.Text
	}
	for _, cd := range c.Coding {
		if cd.Display != "" {
			return cd.Display
		}
	}
	if len(c.Coding) > 0 {
		return c.Coding[0].Code
	}
	return ""
}

func (c fConcept) code(system string) string {
	for _, cd := range c.Coding {
		if system == "" || cd.System == system {
			return cd.Code
		}
	}
	return ""
}

type fPeriod struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

type fTask struct {
	ID             string     `json:"id"`
	Status         string     `json:"status"`
	BusinessStatus fConcept   `json:"businessStatus"`
	Code           fConcept   `json:"code"`
	Description    string     `json:"description"`
	For            fRef       `json:"for"`
	Focus          fRef       `json:"focus"`
	Owner          fRef       `json:"owner"`
	PerformerType  []fConcept `json:"performerType"`
	Restriction    struct {
		Period fPeriod `json:"period"`
	} `json:"restriction"`
}

// parseTime reads a FHIR date or dateTime; a date is its first instant in
// Europe/Paris. Unreadable or empty: the zero time.
func parseTime(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t
	}
	for _, layout := range []string{"2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02", "2006-01", "2006"} {
		if t, err := time.ParseInLocation(layout, s, clock.Paris); err == nil {
			return t
		}
	}
	return time.Time{}
}

// openStatuses are a task's statuses while someone still has to act.
var openStatuses = []string{"requested", "accepted", "in-progress", "on-hold"}

// taskView is one task as the pages show it.
type taskView struct {
	ID, Status, Title  string
	Version            int64
	Start, Due         time.Time
	Overdue            bool
	Patient            string // "Patient/<id>"
	PatientName        string
	PatientBirth       time.Time
	Owner, Role        string
	Flag               string // "Flag/<id>" when the task is about an alert
	Code               string // the pathway-action code
	PatientAddress     string
	PatientCity        string
	BusinessStatus     string
	Actions            []string
	Candidates         []directory.Member // coordination: who the task may go to
	OwnerName, Problem string
	// Filled by localize for the lists: texts in the page's language,
	// computed once rather than by the template for every task.
	StatusLabel, DueText, DueISO, BirthText string
	Buttons                                 []button
}

type button struct{ Value, Label string }

// StatusKey is the message key of the task's status: a task recorded
// missed (its window passed before the discharge was notified,
// docs/domain.md) says so rather than "cancelled".
func (t taskView) StatusKey() string {
	if t.Status == "cancelled" && t.BusinessStatus == "missed" {
		return "st_missed"
	}
	return "st_" + t.Status
}

// localize sets the texts a list shows of each task.
func localize(ts []taskView, lang string) {
	for i := range ts {
		t := &ts[i]
		t.StatusLabel = translate(lang, t.StatusKey())
		t.DueText, t.DueISO = formatDate(t.Due), t.Due.In(clock.Paris).Format("2006-01-02")
		if !t.PatientBirth.IsZero() {
			t.BirthText = formatDate(t.PatientBirth)
		}
		t.Buttons = t.Buttons[:0]
		for _, a := range t.Actions {
			t.Buttons = append(t.Buttons, button{a, translate(lang, "act_"+a)})
		}
	}
}

// taskCache keeps decoded task versions: a version never changes, and
// decoding every open task of a worklist on every view would cost more
// than the rest of the page.
type taskCache struct {
	mu sync.Mutex
	m  map[string]taskView
}

// maxCachedTasks bounds the cache; past it, it starts again empty.
const maxCachedTasks = 50000

func (c *taskCache) view(res store.Resource, now time.Time) (taskView, error) {
	key := res.Tenant + "/" + res.ID + "@" + strconv.FormatInt(res.Version, 10)
	c.mu.Lock()
	v, ok := c.m[key]
	c.mu.Unlock()
	if !ok {
		var err error
		if v, err = decodeTask(res); err != nil {
			return taskView{}, err
		}
		c.mu.Lock()
		if c.m == nil || len(c.m) >= maxCachedTasks {
			c.m = map[string]taskView{}
		}
		c.m[key] = v
		c.mu.Unlock()
	}
	v.Actions = slices.Clone(v.Actions)
	v.Overdue = slices.Contains(openStatuses, v.Status) && (v.BusinessStatus == "overdue" || (!v.Due.IsZero() && v.Due.Before(now)))
	return v, nil
}

// decodeTask reads what the pages show of a task; the actions are those
// its status allows.
func decodeTask(res store.Resource) (taskView, error) {
	var t fTask
	if err := json.Unmarshal(res.Body, &t); err != nil {
		return taskView{}, fmt.Errorf("Task/%s: %w", res.ID, err)
	}
	v := taskView{ID: res.ID, Version: res.Version, Status: t.Status, Title: t.Description,
		Start: parseTime(t.Restriction.Period.Start), Due: parseTime(t.Restriction.Period.End),
		Patient: t.For.Reference, Owner: t.Owner.Reference, BusinessStatus: t.BusinessStatus.code(""),
		Code: t.Code.code(worklist.SystemAction)}
	if v.Title == "" {
		v.Title = t.Code.label()
	}
	if len(t.PerformerType) > 0 {
		v.Role = t.PerformerType[0].code(directory.SystemTeamRole)
	}
	if strings.HasPrefix(t.Focus.Reference, "Flag/") {
		v.Flag = t.Focus.Reference
	}
	switch t.Status {
	case "requested":
		v.Actions = []string{"accept", "decline"}
	case "accepted":
		v.Actions = []string{"start", "decline"}
	case "in-progress":
		v.Actions = []string{"complete"}
	}
	return v, nil
}

// byDue sorts tasks by due date (none last), then id.
func byDue(a, b taskView) int {
	switch {
	case a.Due.IsZero() && !b.Due.IsZero():
		return 1
	case !a.Due.IsZero() && b.Due.IsZero():
		return -1
	}
	if c := a.Due.Compare(b.Due); c != 0 {
		return c
	}
	return strings.Compare(a.ID, b.ID)
}

func roleRefs(a directory.Actor) []store.Value {
	var refs []store.Value
	for _, r := range a.Roles {
		refs = append(refs, store.Value{Ref: "PractitionerRole/" + r.ID})
	}
	return refs
}

func tokens(codes ...string) []store.Value {
	out := make([]store.Value, len(codes))
	for i, c := range codes {
		out[i] = store.Value{Code: c}
	}
	return out
}

// all runs q page by page, at most limit resources.
func all(ctx context.Context, st store.Store, q store.Query, limit int) ([]store.Resource, error) {
	if q.Count == 0 {
		q.Count = 1000
	}
	var out []store.Resource
	for {
		page, err := st.Search(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("search %s: %w", q.Type, err)
		}
		out = append(out, page.Resources...)
		if page.Next == "" || len(out) >= limit {
			return out, nil
		}
		q.Cursor = page.Next
	}
}

// myTasks returns the actor's open tasks, sorted by due date.
func (u *UI) myTasks(ctx context.Context, a directory.Actor) ([]taskView, error) {
	refs := roleRefs(a)
	if len(refs) == 0 {
		return nil, nil
	}
	res, err := all(ctx, u.d.Store, store.Query{Tenant: a.Tenant, Type: "Task", Params: []store.Param{
		{Name: "owner", Kind: store.KindReference, Values: refs},
		{Name: "status", Kind: store.KindToken, Values: tokens(openStatuses...)},
	}}, 10000)
	if err != nil {
		return nil, err
	}
	now := u.d.Clock.Now()
	out := make([]taskView, 0, len(res))
	for _, r := range res {
		v, err := u.tasks.view(r, now)
		if err != nil {
			u.d.Log.WarnContext(ctx, "unreadable task", "task_id", r.ID, "error", err)
			continue
		}
		out = append(out, v)
	}
	slices.SortFunc(out, byDue)
	return out, nil
}

// patientView is the summary of a patient.
type patientView struct {
	Ref, Name, Gender, Phone, Address, City string
	BirthDate                               time.Time
}

type fPatient struct {
	Name []struct {
		Use    string   `json:"use"`
		Family string   `json:"family"`
		Given  []string `json:"given"`
		Text   string   `json:"text"`
	} `json:"name"`
	Gender    string `json:"gender"`
	BirthDate string `json:"birthDate"`
	Telecom   []struct {
		System string `json:"system"`
		Value  string `json:"value"`
	} `json:"telecom"`
	Address []struct {
		Line       []string `json:"line"`
		PostalCode string   `json:"postalCode"`
		City       string   `json:"city"`
	} `json:"address"`
}

func parsePatient(ref string, body []byte) patientView {
	var p fPatient
	_ = json.Unmarshal(body, &p)
	v := patientView{Ref: ref, Gender: p.Gender, BirthDate: parseTime(p.BirthDate)}
	for _, n := range p.Name {
		if n.Text != "" && n.Family == "" {
			v.Name = n.Text
		} else {
			v.Name = strings.TrimSpace(strings.ToUpper(n.Family) + " " + titleCase(strings.Join(n.Given, " ")))
		}
		if n.Use == "usual" || n.Use == "official" {
			break
		}
	}
	for _, t := range p.Telecom {
		if t.System == "phone" && v.Phone == "" {
			v.Phone = t.Value
		}
	}
	if len(p.Address) > 0 {
		a := p.Address[0]
		v.City = strings.TrimSpace(a.City)
		v.Address = strings.TrimSpace(strings.Join(a.Line, ", ") + ", " + a.PostalCode + " " + a.City)
		v.Address = strings.Trim(v.Address, ", ")
	}
	return v
}

// titleCase turns "MARIE CLAIRE" into "Marie Claire".
func titleCase(s string) string {
	words := strings.Fields(strings.ToLower(s))
	for i, w := range words {
		r := []rune(w)
		r[0] = []rune(strings.ToUpper(string(r[0])))[0]
		words[i] = string(r)
	}
	return strings.Join(words, " ")
}

// patients reads patients for one request, asking the access policy once
// per patient.
type patients struct {
	u     *UI
	a     directory.Actor
	key   string
	cache map[string]*patientView
}

func (u *UI) patients(a directory.Actor) *patients {
	// The cache key names the actor by everything the policy looks at.
	var key strings.Builder
	key.WriteString(a.Tenant + "|" + a.Practitioner + "|" + a.System + "|")
	for _, r := range a.Roles {
		key.WriteString(r.ID + ":" + r.Code + ",")
	}
	key.WriteString("|")
	return &patients{u: u, a: a, key: key.String(), cache: map[string]*patientView{}}
}

// allowed asks the access policy about one patient, or recalls its answer
// of less than Deps.AccessTTL ago.
func (ps *patients) allowed(ctx context.Context, ref string) (bool, error) {
	if !strings.HasPrefix(ref, "Patient/") {
		return false, nil
	}
	key := ps.key + ref
	if ok, hit := ps.u.access.get(key, ps.u.d.Clock.Now()); hit {
		return ok, nil
	}
	err := ps.u.policy().Patient(ctx, ps.u.d.Store, ps.a, ref)
	if err != nil && !isForbidden(err) {
		return false, err
	}
	if err != nil {
		// A refusal is not remembered: a new task may open the access at
		// any moment, and the page must then show it.
		return false, nil
	}
	ps.u.access.put(key, true, ps.u.d.Clock.Now().Add(ps.u.d.AccessTTL))
	return true, nil
}

// accessCache remembers the access policy's grants for a short time, as
// the directory remembers who a login is: a page refreshed by live updates
// does not ask again for each of its 50 patients every time. A change of
// care team takes effect within Deps.AccessTTL.
type accessCache struct {
	mu sync.Mutex
	m  map[string]accessAnswer
}

type accessAnswer struct {
	ok    bool
	until time.Time
}

// maxCachedAnswers bounds the cache; past it, it starts again empty.
const maxCachedAnswers = 100000

func (c *accessCache) get(key string, now time.Time) (ok, hit bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a, found := c.m[key]
	if !found || !now.Before(a.until) {
		return false, false
	}
	return a.ok, true
}

func (c *accessCache) put(key string, ok bool, until time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxCachedAnswers {
		c.m = map[string]accessAnswer{}
	}
	c.m[key] = accessAnswer{ok, until}
}

// get returns the patient, or nil when the actor may not see them.
func (ps *patients) get(ctx context.Context, ref string) (*patientView, error) {
	if err := ps.load(ctx, []string{ref}); err != nil {
		return nil, err
	}
	return ps.cache[ref], nil
}

// policyWorkers bounds the access checks of one page run at once: each is
// a database round trip or two, and a page of 50 tasks may name 50
// patients.
const policyWorkers = 8

// load asks the policy about each patient not seen yet, then reads those
// allowed in one search.
func (ps *patients) load(ctx context.Context, refs []string) error {
	var todo []string
	for _, ref := range refs {
		if _, seen := ps.cache[ref]; !seen && !slices.Contains(todo, ref) {
			todo = append(todo, ref)
		}
	}
	ok := make([]bool, len(todo))
	errs := make([]error, len(todo))
	var wg sync.WaitGroup
	sem := make(chan struct{}, policyWorkers)
	for i, ref := range todo {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			ok[i], errs[i] = ps.allowed(ctx, ref)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	var ids []store.Value
	for i, ref := range todo {
		ps.cache[ref] = nil // refused, or until read
		if ok[i] {
			ids = append(ids, store.Value{Code: strings.TrimPrefix(ref, "Patient/")})
		}
	}
	for len(ids) > 0 {
		n := min(len(ids), 100)
		page, err := ps.u.d.Store.Search(ctx, store.Query{Tenant: ps.a.Tenant, Type: "Patient", Count: n,
			Params: []store.Param{{Name: "_id", Kind: store.KindToken, Values: ids[:n]}}})
		if err != nil {
			return fmt.Errorf("read patients: %w", err)
		}
		for _, res := range page.Resources {
			v := parsePatient("Patient/"+res.ID, res.Body)
			ps.cache[v.Ref] = &v
		}
		ids = ids[n:]
	}
	return nil
}

func isForbidden(err error) bool {
	var fe *fhir.Error
	return errors.As(err, &fe) && (fe.Kind == fhir.Forbidden || fe.Kind == fhir.NotFound)
}

// fill adds the patients' names to tasks, leaving out those the actor may
// not see.
func (ps *patients) fill(ctx context.Context, tasks []taskView) error {
	refs := make([]string, 0, len(tasks))
	for _, t := range tasks {
		refs = append(refs, t.Patient)
	}
	if err := ps.load(ctx, refs); err != nil {
		return err
	}
	for i := range tasks {
		if p := ps.cache[tasks[i].Patient]; p != nil {
			tasks[i].PatientName, tasks[i].PatientBirth = p.Name, p.BirthDate
			tasks[i].PatientAddress, tasks[i].PatientCity = p.Address, p.City
		}
	}
	return nil
}

// flagView is one alert.
type flagView struct {
	ID, Status, Text, Patient, PatientName string
	Date                                   time.Time
	Task                                   string
	// CanAck: the page offers to acknowledge it (a coordinator's view of
	// an alert nobody reviews from a task); one she reviews opens on its
	// task, which asks for a decision; another's is only shown.
	CanAck bool
}

type fFlag struct {
	Status   string   `json:"status"`
	Code     fConcept `json:"code"`
	Subject  fRef     `json:"subject"`
	Period   fPeriod  `json:"period"`
	Category []fConcept
}

func parseFlag(res store.Resource) flagView {
	var f fFlag
	_ = json.Unmarshal(res.Body, &f)
	v := flagView{ID: res.ID, Status: f.Status, Text: f.Code.label(), Patient: f.Subject.Reference, Date: parseTime(f.Period.Start)}
	if v.Date.IsZero() {
		v.Date = res.LastUpdated
	}
	return v
}

// member reads a PractitionerRole with its Practitioner.
func (u *UI) member(ctx context.Context, ref string) (directory.Member, bool) {
	id, ok := strings.CutPrefix(ref, "PractitionerRole/")
	if !ok {
		return directory.Member{}, false
	}
	role, err := u.d.Store.Read(ctx, "PractitionerRole", id)
	if err != nil {
		return directory.Member{}, false
	}
	var head struct {
		Practitioner fRef `json:"practitioner"`
	}
	_ = json.Unmarshal(role.Body, &head)
	var pb []byte
	if pid, ok := strings.CutPrefix(head.Practitioner.Reference, "Practitioner/"); ok {
		if p, err := u.d.Store.Read(ctx, "Practitioner", pid); err == nil {
			pb = p.Body
		}
	}
	m, ok, err := directory.ParseMember(role.Body, pb)
	return m, ok && err == nil
}
