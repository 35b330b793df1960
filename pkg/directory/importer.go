package directory

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/bus/event"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// ImportAgent is the audit agent of a directory import from the command line.
const ImportAgent = "System/passerelle-directory-import"

// Importer loads members into a tenant's directory from a CSV file or a
// FHIR Bundle: every row is checked first, then everything is written in
// one store transaction, or nothing is.
//
// Ids are stable, so that importing the same file again changes nothing:
// a Practitioner found by RPPS keeps its id, a new one is p-rpps-<RPPS>; a
// PractitionerRole of that Practitioner with the same team role keeps its
// id, a new one is pr-rpps-<RPPS>-<role>; an Organization found by FINESS
// keeps its id, a new one is org-finess-<FINESS>.
type Importer struct {
	Store  store.Store
	Tenant string
	// Agent is the audit agent (default ImportAgent).
	Agent string
	// DryRun checks and counts without writing.
	DryRun bool
	Now    func() time.Time
}

// Result counts what an import did. A member (one CSV row, one Bundle
// PractitionerRole) is created when its PractitionerRole is new, updated
// when its Practitioner or PractitionerRole changed, unchanged otherwise.
type Result struct {
	Members, Created, Updated, Unchanged int
	// Organizations created or updated along the way.
	Organizations int
}

// Summary is the one-line summary of the result.
func (r Result) Summary() string {
	s := fmt.Sprintf("imported %d members: %d created, %d updated, %d unchanged", r.Members, r.Created, r.Updated, r.Unchanged)
	if r.Organizations > 0 {
		s += fmt.Sprintf(" (%d organizations written)", r.Organizations)
	}
	return s
}

// SummaryFR is the summary in French.
func (r Result) SummaryFR() string {
	s := fmt.Sprintf("%d membres importés : %d créés, %d modifiés, %d inchangés", r.Members, r.Created, r.Updated, r.Unchanged)
	if r.Organizations > 0 {
		s += fmt.Sprintf(" (%d organisations écrites)", r.Organizations)
	}
	return s
}

// snapshot is the tenant's directory as read before the import.
type snapshot struct {
	res       map[string]store.Resource   // "Type/id"
	bodies    map[string]map[string]any   // "Type/id", decoded
	byRPPS    map[string]string           // RPPS → "Practitioner/id"
	byLogin   map[string]string           // login → "Practitioner/id"
	byFINESS  map[string]string           // FINESS → "Organization/id"
	rolesOf   map[string][]store.Resource // "Practitioner/id" → its roles
	cpts      string                      // "Organization/id" of the CPTS
	cptsFound bool
}

func (im *Importer) load(ctx context.Context) (*snapshot, error) {
	s := &snapshot{res: map[string]store.Resource{}, bodies: map[string]map[string]any{}, byRPPS: map[string]string{},
		byLogin: map[string]string{}, byFINESS: map[string]string{}, rolesOf: map[string][]store.Resource{}}
	var cptsIDs []string
	for _, typ := range []string{"Organization", "Practitioner", "PractitionerRole"} {
		var derr error
		err := each(ctx, im.Store, im.Tenant, typ, func(r store.Resource) {
			ref := typ + "/" + r.ID
			s.res[ref] = r
			m, err := decode(r.Body)
			if err != nil {
				derr = fmt.Errorf("%s: %w", ref, err)
				return
			}
			s.bodies[ref] = m
			switch typ {
			case "Organization":
				for _, id := range identifiers(m) {
					if id[0] == SystemFINESS {
						s.byFINESS[id[1]] = ref
					}
				}
				for _, t := range list(m["type"]) {
					if isCPTSType(t) {
						cptsIDs = append(cptsIDs, r.ID)
					}
				}
			case "Practitioner":
				for _, id := range identifiers(m) {
					switch id[0] {
					case SystemRPPS:
						s.byRPPS[id[1]] = ref
					case SystemLogin:
						s.byLogin[id[1]] = ref
					}
				}
			case "PractitionerRole":
				p := refOf(m["practitioner"])
				s.rolesOf[p] = append(s.rolesOf[p], r)
			}
		})
		if err != nil {
			return nil, err
		}
		if derr != nil {
			return nil, derr
		}
	}
	if len(cptsIDs) > 0 {
		slices.Sort(cptsIDs)
		s.cpts, s.cptsFound = "Organization/"+cptsIDs[0], true
	}
	return s, nil
}

func isCPTSType(t any) bool {
	tm, _ := t.(map[string]any)
	if str(tm["text"]) == "CPTS" {
		return true
	}
	for _, c := range list(tm["coding"]) {
		if str(asMap(c)["code"]) == "CPTS" {
			return true
		}
	}
	return false
}

// roleOf finds a practitioner's existing PractitionerRole with a team role.
func (s *snapshot) roleOf(practitioner, code string) (store.Resource, bool) {
	for _, r := range s.rolesOf[practitioner] {
		if slices.Contains(teamRoles(s.bodies["PractitionerRole/"+r.ID]), code) {
			return r, true
		}
	}
	return store.Resource{}, false
}

// write is one resource of the plan.
type write struct {
	typ, id string
	body    map[string]any
	member  int // index of the member it belongs to; -1 for an Organization
	role    bool
}

// ImportCSV imports a member CSV file (see ParseCSV).
func (im *Importer) ImportCSV(ctx context.Context, r io.Reader) (Result, error) {
	rows, errs := ParseCSV(r)
	snap, err := im.load(ctx)
	if err != nil {
		return Result{}, err
	}
	var plan []write
	orgs := map[string]string{} // FINESS → "Organization/id" planned
	for _, row := range rows {
		var rowErrs Errors
		pref, found := snap.byRPPS[row.RPPS]
		if !found {
			pref = "Practitioner/p-rpps-" + row.RPPS
		}
		if owner, taken := snap.byLogin[row.Login]; taken && owner != pref {
			rowErrs = append(rowErrs, cellErr(row.Line, "login", "identifiant déjà pris par %s", "login already taken by %s", owner))
		}
		org := ""
		switch {
		case row.OrganizationFINESS != "":
			if ref, ok := snap.byFINESS[row.OrganizationFINESS]; ok {
				org = ref
			} else if ref, ok := orgs[row.OrganizationFINESS]; ok {
				org = ref
			} else {
				org = "Organization/org-finess-" + row.OrganizationFINESS
				orgs[row.OrganizationFINESS] = org
				name := row.OrganizationName
				if name == "" {
					name = "FINESS " + row.OrganizationFINESS
				}
				plan = append(plan, write{typ: "Organization", id: strings.TrimPrefix(org, "Organization/"), member: -1, body: map[string]any{
					"resourceType": "Organization", "id": strings.TrimPrefix(org, "Organization/"), "active": true, "name": name,
					"identifier": []any{map[string]any{"system": SystemFINESS, "value": row.OrganizationFINESS}}}})
			}
		default:
			if _, ok := snap.roleOf(pref, row.Role); !ok && !snap.cptsFound {
				rowErrs = append(rowErrs, cellErr(row.Line, "organization_finess",
					"ni FINESS de structure, ni organisation CPTS dans l'annuaire", "no organization FINESS, and the directory has no CPTS Organization"))
			}
			org = snap.cpts
		}
		if len(rowErrs) > 0 {
			errs = append(errs, rowErrs...)
			continue
		}
		member := row.Line
		pid := strings.TrimPrefix(pref, "Practitioner/")
		plan = append(plan, write{typ: "Practitioner", id: pid, member: member, body: mergePractitioner(snap.bodies[pref], pid, row)})
		rid := "pr-rpps-" + row.RPPS + "-" + row.Role
		old, ok := snap.roleOf(pref, row.Role)
		var oldBody map[string]any
		if ok {
			rid, oldBody = old.ID, snap.bodies["PractitionerRole/"+old.ID]
			if row.OrganizationFINESS == "" && refOf(oldBody["organization"]) != "" {
				org = "" // keep the role's organization
			}
		}
		plan = append(plan, write{typ: "PractitionerRole", id: rid, member: member, role: true, body: mergeRole(oldBody, rid, pref, org, row)})
	}
	if len(errs) > 0 {
		slices.SortStableFunc(errs, func(a, b ImportError) int { return a.Line - b.Line })
		return Result{}, errs
	}
	return im.apply(ctx, snap, plan)
}

// apply writes the plan in one transaction (or only counts, for a dry run).
func (im *Importer) apply(ctx context.Context, snap *snapshot, plan []write) (Result, error) {
	type change struct {
		w       write
		body    []byte
		version int64 // current version; 0 to create
	}
	var changes []change
	state := map[int]string{} // member → created, updated, unchanged
	var res Result
	for _, w := range plan {
		if _, ok := state[w.member]; !ok && w.member >= 0 {
			state[w.member] = "unchanged"
		}
		ref := w.typ + "/" + w.id
		old, exists := snap.res[ref]
		body, err := withoutMeta(w.body)
		if err != nil {
			return Result{}, fmt.Errorf("%s: %w", ref, err)
		}
		if exists {
			if was, err := withoutMeta(snap.bodies[ref]); err == nil && bytes.Equal(was, body) {
				continue
			}
		}
		c := change{w: w, body: body}
		if exists {
			c.version = old.Version
		}
		changes = append(changes, c)
		switch {
		case w.member < 0:
			if w.typ == "Organization" {
				res.Organizations++
			}
		case w.role && !exists:
			state[w.member] = "created"
		case state[w.member] == "unchanged":
			state[w.member] = "updated"
		}
	}
	for _, s := range state {
		res.Members++
		switch s {
		case "created":
			res.Created++
		case "updated":
			res.Updated++
		default:
			res.Unchanged++
		}
	}
	if im.DryRun || len(changes) == 0 {
		return res, nil
	}
	agent := im.Agent
	if agent == "" {
		agent = ImportAgent
	}
	now := time.Now
	if im.Now != nil {
		now = im.Now
	}
	err := im.Store.Tx(ctx, func(tx store.Tx) error {
		at := now()
		for _, c := range changes {
			var (
				stored store.Resource
				err    error
				op     = "updated"
				action = "U"
			)
			if c.version == 0 {
				op, action = "created", "C"
				stored, err = tx.Create(ctx, im.Tenant, c.body)
				if errors.Is(err, store.ErrExists) {
					// A deleted member comes back as a new version.
					if _, rerr := tx.Read(ctx, c.w.typ, c.w.id); errors.Is(rerr, store.ErrGone) {
						op, action = "updated", "U"
						stored, err = tx.Update(ctx, im.Tenant, c.body, 0)
					}
				}
			} else {
				stored, err = tx.Update(ctx, im.Tenant, c.body, c.version)
			}
			if errors.Is(err, store.ErrExists) || errors.Is(err, store.ErrVersionConflict) {
				return fmt.Errorf("%s/%s changed during the import; nothing was written, run the import again: %w", c.w.typ, c.w.id, err)
			}
			if err != nil {
				return fmt.Errorf("write %s/%s: %w", c.w.typ, c.w.id, err)
			}
			if err := event.Emit(ctx, tx, event.New(im.Tenant, op, "", stored)); err != nil {
				return fmt.Errorf("announce %s/%s: %w", c.w.typ, c.w.id, err)
			}
			if err := tx.Audit(ctx, store.AuditRecord{Tenant: im.Tenant, Time: at, Agent: agent, Action: action, Outcome: "0",
				Entity: fmt.Sprintf("%s/%s/_history/%d", stored.Type, stored.ID, stored.Version), Detail: "directory import"}); err != nil {
				return fmt.Errorf("audit %s/%s: %w", c.w.typ, c.w.id, err)
			}
		}
		return nil
	})
	if err != nil {
		return Result{}, err
	}
	return res, nil
}

// withoutMeta is the JSON of a resource without its meta, which the store
// sets: two resources are the same when these are (object keys are sorted).
func withoutMeta(m map[string]any) ([]byte, error) {
	c := make(map[string]any, len(m))
	for k, v := range m {
		if k != "meta" {
			c[k] = v
		}
	}
	return json.Marshal(c)
}

// mergePractitioner sets what the row says on the Practitioner (existing
// or new), keeping its other identifiers, names and fields.
func mergePractitioner(old map[string]any, id string, row Row) map[string]any {
	m := clone(old)
	m["resourceType"], m["id"], m["active"] = "Practitioner", id, true
	ids := []any{
		map[string]any{"system": SystemLogin, "value": row.Login},
		map[string]any{"system": SystemRPPS, "value": row.RPPS},
		map[string]any{"system": SystemIDNPS, "value": "8" + row.RPPS},
	}
	for _, x := range list(m["identifier"]) {
		switch str(asMap(x)["system"]) {
		case SystemLogin, SystemRPPS, SystemIDNPS:
		default:
			ids = append(ids, x)
		}
	}
	m["identifier"] = ids
	names := []any{map[string]any{"family": row.Family, "given": []any{row.Given}}}
	if old := list(m["name"]); len(old) > 0 {
		// The first name is the one the import manages; keep the others.
		n := asMap(old[0])
		if str(n["family"]) == row.Family && len(list(n["given"])) == 1 && str(list(n["given"])[0]) == row.Given {
			names[0] = old[0]
		}
		names = append(names, old[1:]...)
	}
	m["name"] = names
	var tel []any
	if row.Phone != "" {
		tel = append(tel, map[string]any{"system": "phone", "value": row.Phone})
	}
	if row.Email != "" {
		tel = append(tel, map[string]any{"system": "email", "value": row.Email})
	}
	for _, t := range list(m["telecom"]) {
		if s := str(asMap(t)["system"]); s != "phone" && s != "email" {
			tel = append(tel, t)
		}
	}
	setOrDelete(m, "telecom", tel)
	q := []any{map[string]any{"code": map[string]any{"coding": []any{map[string]any{"system": SystemProfession, "code": row.Profession}}}}}
	for _, x := range list(m["qualification"]) {
		keep := true
		for _, c := range list(asMap(asMap(x)["code"])["coding"]) {
			if str(asMap(c)["system"]) == SystemProfession {
				keep = false
			}
		}
		if keep {
			q = append(q, x)
		}
	}
	m["qualification"] = q
	return m
}

// mergeRole sets what the row says on the PractitionerRole (existing or
// new); org "" keeps the existing organization.
func mergeRole(old map[string]any, id, practitioner, org string, row Row) map[string]any {
	m := clone(old)
	m["resourceType"], m["id"], m["active"] = "PractitionerRole", id, true
	m["practitioner"] = map[string]any{"reference": practitioner}
	if org != "" {
		m["organization"] = map[string]any{"reference": org}
	}
	codes := []any{map[string]any{"coding": []any{map[string]any{"system": SystemTeamRole, "code": row.Role}}}}
	for _, c := range list(m["code"]) {
		if !slices.ContainsFunc(list(asMap(c)["coding"]), func(cd any) bool { return str(asMap(cd)["system"]) == SystemTeamRole }) {
			codes = append(codes, c)
		}
	}
	m["code"] = codes
	var ext []any
	for _, e := range list(m["extension"]) {
		u := str(asMap(e)["url"])
		if u == ExtTerritory || (u == ExtCapacity && row.Has["capacity"]) {
			continue
		}
		ext = append(ext, e)
	}
	if row.Has["capacity"] && row.Capacity > 0 {
		ext = append(ext, map[string]any{"url": ExtCapacity, "valueInteger": row.Capacity})
	}
	if len(row.Communes)+len(row.PostalCodes) > 0 {
		ext = append(ext, territory(row.Communes, row.PostalCodes)...)
	}
	setOrDelete(m, "extension", ext)
	if row.Has["specialty"] {
		var sp []any
		if row.Specialty != "" {
			sp = []any{map[string]any{"coding": []any{map[string]any{"system": SystemSpecialty, "code": row.Specialty}}}}
		}
		setOrDelete(m, "specialty", sp)
	}
	if row.Has["not_available"] {
		var na []any
		for _, p := range row.NotAvailable {
			d := map[string]any{"start": p.Start.Format(time.RFC3339)}
			if !p.End.IsZero() {
				d["end"] = p.End.Format(time.RFC3339)
			}
			na = append(na, map[string]any{"description": "absent", "during": d})
		}
		setOrDelete(m, "notAvailable", na)
	}
	return m
}

func setOrDelete(m map[string]any, k string, v []any) {
	if len(v) == 0 {
		delete(m, k)
		return
	}
	m[k] = v
}

// normalize gives a freshly built resource the shape a stored one decodes
// to, so that comparing them tells a real change.
func normalize(m map[string]any) map[string]any {
	b, err := json.Marshal(m)
	if err != nil {
		return m
	}
	out, err := decode(b)
	if err != nil {
		return m
	}
	return out
}

// clone copies a decoded resource deeply, without its meta.
func clone(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if k != "meta" {
			out[k] = deepCopy(v)
		}
	}
	return out
}

func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		c := make(map[string]any, len(x))
		for k, e := range x {
			c[k] = deepCopy(e)
		}
		return c
	case []any:
		c := make([]any, len(x))
		for i, e := range x {
			c[i] = deepCopy(e)
		}
		return c
	}
	return v
}

func decode(b []byte) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, errors.New("not a JSON object")
	}
	return m, nil
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func refOf(v any) string { return str(asMap(v)["reference"]) }

// identifiers lists a resource's (system, value) pairs.
func identifiers(m map[string]any) [][2]string {
	var out [][2]string
	for _, x := range list(m["identifier"]) {
		xm := asMap(x)
		out = append(out, [2]string{str(xm["system"]), str(xm["value"])})
	}
	return out
}

// teamRoles lists a PractitionerRole's team-role codes.
func teamRoles(m map[string]any) []string {
	var out []string
	for _, c := range list(m["code"]) {
		for _, cd := range list(asMap(c)["coding"]) {
			if str(asMap(cd)["system"]) == SystemTeamRole {
				out = append(out, str(asMap(cd)["code"]))
			}
		}
	}
	return out
}
