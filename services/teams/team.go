package teams

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/bus/event"
	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/fhir/model"
	"github.com/passerelle-sante/passerelle/pkg/pathway"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// team is an episode's CareTeam being read or changed in one transaction.
type team struct {
	res     store.Resource
	ct      *model.CareTeam
	created bool
	changed bool
}

func teamID(episodeID string) string { return "ct-" + episodeID }

func (t *team) status() string { return t.ct.Status }

// current returns the members holding role now (no period end), in the
// order they joined.
func (t *team) current(role string) []string {
	var out []string
	for i := range t.ct.Participant {
		p := &t.ct.Participant[i]
		if !p.Current() {
			continue
		}
		if p.TeamRole() == role {
			if r := p.Member.String(); r != "" {
				out = append(out, r)
			}
		}
	}
	return out
}

// active tells whether ref is a current participant.
func (t *team) active(ref string) bool {
	for i := range t.ct.Participant {
		if p := &t.ct.Participant[i]; p.Member.String() == ref && p.Current() {
			return true
		}
	}
	return false
}

func (t *team) add(m directory.Member, role string, now time.Time) {
	if t.active(m.Ref()) {
		return
	}
	t.ct.Participant = append(t.ct.Participant, model.CareTeamParticipant{
		Role:   []model.CodeableConcept{*model.Codeable(directory.SystemTeamRole, role, "")},
		Member: &model.Reference{Reference: m.Ref(), Display: m.Name},
		Period: &model.Period{Start: fmtTime(now)},
	})
	t.changed = true
}

// end closes ref's participation.
func (t *team) end(ref string, now time.Time) {
	for i := range t.ct.Participant {
		p := &t.ct.Participant[i]
		if p.Member.String() == ref && p.Current() {
			if p.Period == nil {
				p.Period = &model.Period{}
			}
			p.Period.End = fmtTime(now)
			t.changed = true
		}
	}
}

// referent is the team's coordinating nurse.
func (t *team) referent() string {
	if c := t.current(directory.RoleCoordinatingNurse); len(c) > 0 {
		return c[0]
	}
	return ""
}

// plan is the work of one handler: the directory as read once, loads as
// counted plus what this transaction assigned, teams and patients read.
type plan struct {
	s      *Service
	ctx    context.Context
	tx     store.Tx
	tenant string
	now    time.Time
	trace  string
	dir    memberCache
	load   map[string]int
	teams  map[string]*team // by episode id
	addr   map[string][2]string
	events []store.Resource // written resources to announce, in order
	ops    map[string]string
	notes  []*note
	// prefetch holds tasks as an event carried them.
	prefetch map[string]task
	// canonical is each episode's template, as read once.
	canonical map[string]string
	// declaredBy is, by episode|patient, the members the hospital
	// declared, as read once (declaredMembers).
	declaredBy map[string]map[string]bool
}

func (s *Service) newPlan(ctx context.Context, tx store.Tx, tenant, trace string) (*plan, error) {
	dir, err := s.directoryOf(ctx, tenant, false)
	if err != nil {
		return nil, err
	}
	return &plan{s: s, ctx: ctx, tx: tx, tenant: tenant, now: s.d.Clock.Now(), trace: trace, dir: dir,
		load: map[string]int{}, teams: map[string]*team{}, addr: map[string][2]string{}, ops: map[string]string{}, canonical: map[string]string{}}, nil
}

// memberByRef finds a member in the directory as read.
func (p *plan) memberByRef(ref string) (directory.Member, bool) { return p.dir.byRef(ref) }

// loadCap bounds the count of a member's open tasks.
const loadCap = 100

// openLoad counts ref's open tasks (up to loadCap).
func (p *plan) openLoad(ref string) (int, error) {
	if n, ok := p.load[ref]; ok {
		return n, nil
	}
	if n, ok := p.s.cachedLoad(p.tenant, ref); ok {
		p.load[ref] = n
		return n, nil
	}
	// Counted up to loadCap: past it a member is full whatever the exact
	// figure. Handlers that need the same count at once share one search.
	n, err := p.s.countLoad(p.tenant, ref, func() (int, error) {
		page, err := p.s.d.Store.Search(p.ctx, store.Query{Tenant: p.tenant, Type: "Task", Count: loadCap, Params: []store.Param{
			{Name: "owner", Kind: store.KindReference, Values: []store.Value{{Ref: ref}}},
			{Name: "status", Kind: store.KindToken, Values: []store.Value{{Code: "requested"}, {Code: "accepted"}, {Code: "in-progress"}}},
		}})
		if err != nil {
			return 0, fmt.Errorf("load of %s: %w", ref, err)
		}
		p.s.storeLoad(p.tenant, ref, len(page.Resources))
		return len(page.Resources), nil
	})
	if err != nil {
		return 0, err
	}
	p.load[ref] = n
	return n, nil
}

// usable tells whether m can take one more task now.
func (p *plan) usable(m directory.Member) (bool, error) {
	if !m.AvailableAt(p.now) {
		return false, nil
	}
	if m.Capacity <= 0 {
		return true, nil
	}
	n, err := p.openLoad(m.Ref())
	return n < m.Capacity, err
}

// patientAddress returns the INSEE commune and postal code of the patient's
// home.
func (p *plan) patientAddress(patient string) ([2]string, error) {
	if a, ok := p.addr[patient]; ok {
		return a, nil
	}
	var a [2]string
	id := strings.TrimPrefix(patient, "Patient/")
	if id != patient {
		r, err := readObj(p.ctx, p.tx, "Patient", id)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return a, err
		}
		if err == nil {
			for _, ad := range list(r.m["address"]) {
				ao := asObj(ad)
				if u := str(ao, "use"); u != "" && u != "home" {
					continue
				}
				a[1] = str(ao, "postalCode")
				for _, e := range list(ao["extension"]) {
					if strings.HasSuffix(str(asObj(e), "url"), "fr-core-address-insee-code") {
						a[0] = str(asObj(e), "valueCoding", "code")
					}
				}
				break
			}
		}
	}
	p.addr[patient] = a
	return a, nil
}

// candidates lists who may own a task of role for patient, best first: the
// team's current members of that role, then the directory's members of the
// role whose territory covers the patient's home (any member when the
// address is unknown), by lowest load then id. Nobody in exclude, nobody
// away or full.
func (p *plan) candidates(t *team, role, patient string, exclude []string) ([]directory.Member, error) {
	var out []directory.Member
	seen := map[string]bool{}
	for _, e := range exclude {
		seen[e] = true
	}
	if t != nil {
		for _, r := range t.current(role) {
			m, ok := p.memberByRef(r)
			if !ok || seen[r] || m.Code != role {
				continue
			}
			ok, err := p.usable(m)
			if err != nil {
				return nil, err
			}
			if ok {
				out = append(out, m)
				seen[r] = true
			}
		}
	}
	addr, err := p.patientAddress(patient)
	if err != nil {
		return nil, err
	}
	var pool []directory.Member
	for _, m := range p.dir.list {
		if m.Code != role || seen[m.Ref()] {
			continue
		}
		if (addr[0] != "" || addr[1] != "") && !m.Covers(addr[0], addr[1]) && role != directory.RoleCoordinator {
			continue
		}
		ok, err := p.usable(m)
		if err != nil {
			return nil, err
		}
		if ok {
			pool = append(pool, m)
		}
	}
	if err := p.byLoad(pool); err != nil {
		return nil, err
	}
	return append(out, pool...), nil
}

// byLoad sorts members by open tasks, then id.
func (p *plan) byLoad(ms []directory.Member) error {
	loads := map[string]int{}
	for _, m := range ms {
		n, err := p.openLoad(m.Ref())
		if err != nil {
			return err
		}
		loads[m.ID] = n
	}
	sort.SliceStable(ms, func(i, j int) bool {
		if loads[ms[i].ID] != loads[ms[j].ID] {
			return loads[ms[i].ID] < loads[ms[j].ID]
		}
		return ms[i].ID < ms[j].ID
	})
	return nil
}

// escalationChain lists who an escalation goes to: the team's referent
// coordinating nurse, then the CPTS's coordinators.
func (p *plan) escalationChain(t *team, exclude []string) ([]directory.Member, error) {
	var out []directory.Member
	if t != nil {
		if r := t.referent(); r != "" && !slices.Contains(exclude, r) {
			if m, ok := p.memberByRef(r); ok && m.AvailableAt(p.now) {
				out = append(out, m)
			}
		}
	}
	var coords []directory.Member
	for _, m := range p.dir.list {
		if m.Code == directory.RoleCoordinator && m.AvailableAt(p.now) && !slices.Contains(exclude, m.Ref()) {
			coords = append(coords, m)
		}
	}
	if err := p.byLoad(coords); err != nil {
		return nil, err
	}
	return append(out, coords...), nil
}

// teamOf returns the CareTeam of an episode, nil when there is none.
func (p *plan) teamOf(episodeID string) (*team, error) {
	if t, ok := p.teams[episodeID]; ok {
		return t, nil
	}
	r, ct, err := readTeam(p.ctx, p.tx, teamID(episodeID))
	if errors.Is(err, store.ErrNotFound) {
		p.teams[episodeID] = nil
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	t := &team{res: r, ct: ct}
	p.teams[episodeID] = t
	return t, nil
}

// form creates the episode's CareTeam: the professionals the hospital
// declared, matched to the directory (a declared pharmacy → its member
// pharmacist; a declared professional who is not a member stays external),
// then a member for each missing role and the referent coordinating nurse.
// preOwned are owners already set on the episode's tasks (a coordinating
// nurse owning the inclusion to confirm becomes the referent).
func (p *plan) form(ep episode, roles []string, preOwned map[string]string) (*team, error) {
	patient := ep.ep.Patient.String()
	t := &team{created: true, changed: true, ct: &model.CareTeam{
		ResourceType: "CareTeam", ID: teamID(ep.res.ID), Status: "active",
		Name:        "Équipe de soins du parcours",
		Subject:     model.Ref(patient),
		Period:      &model.Period{Start: fmtTime(p.now)},
		Extension:   []model.Extension{{URL: ExtEpisode, ValueReference: model.Ref("EpisodeOfCare/" + ep.res.ID)}},
		Participant: []model.CareTeamParticipant{},
	}}
	if org := ep.ep.ManagingOrganization.String(); org != "" {
		t.ct.ManagingOrganization = []model.Reference{*model.Ref(org)}
	}
	p.teams[ep.res.ID] = t
	// Declared professionals.
	declared, err := p.declared(ep, patient)
	if err != nil {
		return nil, err
	}
	for _, d := range declared {
		m, ok := p.match(d)
		if !ok {
			member := &model.Reference{Display: d.name}
			if d.system != "" {
				member.Identifier = &model.Identifier{System: d.system, Value: d.value}
			}
			t.ct.Participant = append(t.ct.Participant, model.CareTeamParticipant{
				Role:   []model.CodeableConcept{*model.Codeable(directory.SystemTeamRole, directory.RoleExternal, "")},
				Member: member, Period: &model.Period{Start: fmtTime(p.now)},
			})
			continue
		}
		t.add(m, m.Code, p.now)
	}
	// Owners already set (the referent chosen for an inclusion to confirm).
	for _, owner := range preOwned {
		if m, ok := p.memberByRef(owner); ok {
			t.add(m, m.Code, p.now)
		}
	}
	// Each missing role, and the referent coordinating nurse.
	need := append(slices.Clone(roles), directory.RoleCoordinatingNurse)
	for _, role := range need {
		cur := t.current(role)
		usable := false
		for _, r := range cur {
			if m, ok := p.memberByRef(r); ok && m.AvailableAt(p.now) {
				usable = true
			}
		}
		if usable {
			continue
		}
		cands, err := p.candidates(nil, role, patient, cur)
		if err != nil {
			return nil, err
		}
		if len(cands) > 0 {
			t.add(cands[0], role, p.now)
		}
	}
	return t, nil
}

type declaredPro struct {
	kind, system, value, role, name string
}

// declared lists the professionals the hospital declared with the stay
// that opened the episode: the proposed CareTeam and the patient's
// médecin traitant.
func (p *plan) declared(ep episode, patient string) ([]declaredPro, error) {
	var out []declaredPro
	for i := range ep.ep.Extension {
		e := &ep.ep.Extension[i]
		if !strings.HasSuffix(e.URL, "/index-encounter") {
			continue
		}
		enc := strings.TrimPrefix(e.Ref(), "Encounter/")
		if enc == "" {
			continue
		}
		_, ct, err := readTeam(p.ctx, p.tx, "declared-"+enc)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		if err == nil {
			for i := range ct.Participant {
				pt := &ct.Participant[i]
				d := declaredPro{role: pt.TeamRole()}
				if mem := pt.Member; mem != nil {
					d.kind, d.name = mem.Type, mem.Display
					if mem.Identifier != nil {
						d.system, d.value = mem.Identifier.System, mem.Identifier.Value
					}
				}
				out = append(out, d)
			}
		}
	}
	if id := strings.TrimPrefix(patient, "Patient/"); id != patient {
		pr, err := readObj(p.ctx, p.tx, "Patient", id)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		if err == nil {
			for _, g := range list(pr.m["generalPractitioner"]) {
				go_ := asObj(g)
				d := declaredPro{kind: "Practitioner", system: str(go_, "identifier", "system"), value: str(go_, "identifier", "value"),
					role: directory.RoleGP, name: str(go_, "display")}
				dup := false
				for _, o := range out {
					dup = dup || (o.system == d.system && o.value == d.value)
				}
				if !dup && d.value != "" {
					out = append(out, d)
				}
			}
		}
	}
	return out, nil
}

// match finds the member a declared professional is: by RPPS (or
// idNat_PS), or for an organisation by FINESS, its member of the declared
// role (a pharmacy → its pharmacist). Away or inactive members still match:
// the team says who the patient's professionals are; assignment skips
// whoever is away.
func (p *plan) match(d declaredPro) (directory.Member, bool) {
	var found []directory.Member
	switch d.system {
	case directory.SystemRPPS, directory.SystemIDNPS:
		rpps := d.value
		if d.system == directory.SystemIDNPS {
			rpps = strings.TrimPrefix(d.value, "8")
		}
		for _, m := range p.dir.list {
			if m.RPPS == rpps && m.RPPS != "" && m.Active {
				found = append(found, m)
			}
		}
	case directory.SystemFINESS:
		org := p.dir.orgs[d.value]
		role := d.role
		if role == "" || role == directory.RoleExternal {
			role = directory.RolePharmacist
		}
		for _, m := range p.dir.list {
			if org != "" && m.Organization == org && m.Code == role && m.Active {
				found = append(found, m)
			}
		}
	}
	if len(found) == 0 {
		return directory.Member{}, false
	}
	for _, m := range found {
		if m.Code == d.role {
			return m, true
		}
	}
	return found[0], true
}

// save writes the changed teams.
func (p *plan) save() error {
	ids := make([]string, 0, len(p.teams))
	for id := range p.teams {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		t := p.teams[id]
		if t == nil || !t.changed {
			continue
		}
		t.ct.Meta = nil
		var res store.Resource
		var err error
		op := "updated"
		if t.created {
			op = "created"
			res, err = p.tx.Create(p.ctx, p.tenant, mustJSON(t.ct))
		} else {
			res, err = p.tx.Update(p.ctx, p.tenant, mustJSON(t.ct), t.res.Version)
		}
		if err != nil {
			return fmt.Errorf("CareTeam %s: %w", id, err)
		}
		t.res, t.created, t.changed = res, false, false
		p.announce(res, op)
	}
	return nil
}

func (p *plan) announce(res store.Resource, op string) {
	key := res.Type + "/" + res.ID
	if _, ok := p.ops[key]; !ok {
		p.events = append(p.events, res)
		p.ops[key] = op
	} else {
		for i, e := range p.events {
			if e.Type+"/"+e.ID == key {
				p.events[i] = res
			}
		}
		if p.ops[key] != "created" {
			p.ops[key] = op
		}
	}
}

// commit saves the teams, records the notifications and announces what
// was written: each CareTeam and Provenance on its own, the tasks together
// in one event, the notifications together in another, so that one change
// costs each consumer one delivery.
func (p *plan) commit() error {
	if err := p.save(); err != nil {
		return err
	}
	notes, err := p.flushNotes()
	if err != nil {
		return err
	}
	var tasks []store.Resource
	taskOp := bus.OpCreated
	for _, res := range p.events {
		op := p.ops[res.Type+"/"+res.ID]
		if res.Type == "Task" {
			tasks = append(tasks, res)
			if op != bus.OpCreated {
				taskOp = bus.OpUpdated
			}
			continue
		}
		if err := event.Emit(p.ctx, p.tx, event.New(p.tenant, op, p.trace, res)); err != nil {
			return err
		}
	}
	if err := p.emitBatch(taskOp, tasks); err != nil {
		return err
	}
	return p.emitBatch(bus.OpCreated, notes)
}

// emitBatch announces resources of one type in one event (pkg/bus/event
// encodes several as a history Bundle with a batch id).
func (p *plan) emitBatch(op string, rs []store.Resource) error {
	if len(rs) == 0 {
		return nil
	}
	return event.Emit(p.ctx, p.tx, event.New(p.tenant, op, p.trace, rs...))
}

// delays are a template's acceptance and escalation delays for one action.
type delays struct{ accept, escalate time.Duration }

// Templates is the pathway templates as the services share them
// (pathway.Library): teams reads the delays of the version an episode
// was opened with.
type Templates interface {
	At(ctx context.Context, tenant, canonical string) (*pathway.Template, error)
}

// delaysFor returns the delays for an action of the episode's template.
func (p *plan) delaysFor(episodeID, action string) (delays, error) {
	d := delays{DefaultAcceptance, DefaultEscalation}
	if episodeID == "" {
		return d, nil
	}
	canonical, ok := p.canonical[episodeID]
	if !ok {
		ep, err := readEpisode(p.ctx, p.tx, episodeID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return d, err
		}
		if err == nil {
			if x := ep.ep.GetExtension(pathway.ExtEpisodePathway); x != nil {
				canonical = val(x.ValueCanonical)
			}
		}
		p.canonical[episodeID] = canonical
	}
	if canonical == "" {
		return d, nil
	}
	t, err := p.s.templates.At(p.ctx, p.tenant, canonical)
	switch {
	case errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrGone) || pathway.IsInvalid(err):
		// A template gone or unreadable (stored around the upload's
		// checks, logged by the library) must not stop the assignment:
		// the default delays apply.
		return d, nil
	case err != nil:
		return d, err
	}
	got := t.Delays(action, pathway.Delays{Acceptance: d.accept, Escalation: d.escalate})
	return delays{got.Acceptance, got.Escalation}, nil
}
