package intake

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/passerelle-sante/passerelle/internal/fhirjson"
	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/bus/event"
	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/fhir"
	"github.com/passerelle-sante/passerelle/pkg/hl7v2"
	"github.com/passerelle-sante/passerelle/pkg/intake"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

const (
	// SystemFlag codes identity-vigilance flags.
	SystemFlag = "https://passerelle.health/fhir/CodeSystem/flag"
)

func (s *Service) applyMsg(ctx context.Context, tx store.Tx, m bus.Msg) error {
	var ev intake.Event
	if err := json.Unmarshal(m.Data, &ev); err != nil {
		return bus.Permanent(fmt.Errorf("intake event: %w", err))
	}
	if ev.Trace == "" {
		ev.Trace = m.Header[bus.HeaderTraceparent]
	}
	return s.Apply(ctx, tx, ev)
}

// Apply records an intake event: the patient matched or created, the stay
// created or updated, its diagnoses, the declared team and the lettre de
// liaison, then one event on the bus carrying them all for the pathway
// service. It runs inside the caller's transaction.
func (s *Service) Apply(ctx context.Context, tx store.Tx, ev intake.Event) error {
	tenant := ev.Tenant
	if tenant == "" {
		tenant = s.d.Tenant
	}
	org, err := s.facility(ctx, tenant, ev.Facility.FINESS)
	if err != nil {
		return err
	}
	// Checked again here: two facilities' first messages in one namespace
	// may both have been acknowledged. A binding, once made, is not
	// changed by intake, so it is read without locking it (a lock would
	// serialise every message of a facility); two first uses racing to
	// create it conflict, and the loser is retried.
	if err := s.checkNamespaces(ctx, s.d.Store, tx, tenant, ev); err != nil {
		if errors.Is(err, ErrForeignIdentifier) {
			return bus.Permanent(err)
		}
		return err
	}
	patient, flags, err := s.matchPatient(ctx, tx, tenant, ev)
	if err != nil {
		return fmt.Errorf("match patient: %w", err)
	}
	enc, op, err := s.upsertEncounter(ctx, tx, tenant, ev, patient.ID, org)
	if err != nil {
		return fmt.Errorf("record stay: %w", err)
	}
	related := []store.Resource{enc, patient}
	for _, d := range ev.Encounter.Diagnoses {
		c, err := s.put(ctx, tx, tenant, map[string]any{
			"resourceType": "Condition", "id": "cond-" + enc.ID + "-" + slug(d.Code),
			"clinicalStatus": codeable("http://terminology.hl7.org/CodeSystem/condition-clinical", "active", ""),
			"category":       []any{codeable("http://terminology.hl7.org/CodeSystem/condition-category", "encounter-diagnosis", "")},
			"code":           codeable(d.System, d.Code, d.Display),
			"subject":        ref("Patient/" + patient.ID),
			"encounter":      ref("Encounter/" + enc.ID),
		})
		if err != nil {
			return err
		}
		related = append(related, c)
	}
	if len(ev.Team) > 0 {
		ct, err := s.put(ctx, tx, tenant, s.declaredTeam(ctx, tenant, ev, patient.ID, enc.ID))
		if err != nil {
			return err
		}
		related = append(related, ct)
	}
	if doc, err := s.letter(ctx, ev); err != nil {
		return err
	} else if doc != nil {
		doc["id"] = "letter-" + enc.ID
		doc["subject"] = ref("Patient/" + patient.ID)
		doc["context"] = map[string]any{"encounter": []any{ref("Encounter/" + enc.ID)}}
		d, err := s.put(ctx, tx, tenant, doc)
		if err != nil {
			return err
		}
		related = append(related, letterInEvent(d))
	}
	for _, f := range flags {
		if _, err := tx.Create(ctx, tenant, mustJSON(f)); err != nil {
			return err
		}
	}
	if err := event.Emit(ctx, tx, stayEvent(tenant, ev, op, related)); err != nil {
		return err
	}
	if ev.MessageID != "" {
		if err := tx.SetMessageStatus(ctx, ev.MessageID, "applied", "Patient/"+patient.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	return nil
}

// stayEvent is the one message that announces a stay change: led by the
// Encounter, on the Encounter's subject, carrying the patient, diagnoses,
// declared team and letter the pathway service needs, and the kind of
// notification.
func stayEvent(tenant string, ev intake.Event, op string, related []store.Resource) event.Change {
	c := event.New(tenant, op, ev.Trace, related...)
	c.IntakeEvent = ev.Kind
	return c
}

// put creates or replaces a resource with a known id.
func (s *Service) put(ctx context.Context, tx store.Tx, tenant string, res map[string]any) (store.Resource, error) {
	r, err := tx.Update(ctx, tenant, mustJSON(res), 0)
	if err != nil {
		return r, fmt.Errorf("write %s/%s: %w", res["resourceType"], res["id"], err)
	}
	return r, nil
}

// facility finds the directory Organization of a FINESS.
func (s *Service) facility(ctx context.Context, tenant, finess string) (string, error) {
	page, err := s.d.Store.Search(ctx, store.Query{Tenant: tenant, Type: "Organization", Count: 2,
		Params: []store.Param{tokenParam("identifier", directory.SystemFINESS, finess)}})
	if err != nil {
		return "", err
	}
	if len(page.Resources) == 0 {
		return "", bus.Permanent(fmt.Errorf("no facility with FINESS %s in the directory", finess))
	}
	return "Organization/" + page.Resources[0].ID, nil
}

func sp(s string) *string { return &s }

func tokenParam(name, system, code string) store.Param {
	return store.Param{Name: name, Kind: store.KindToken, Values: []store.Value{{System: sp(system), Code: code}}}
}

func (s *Service) findOne(ctx context.Context, tx store.Tx, tenant, typ, system, value string) (*store.Resource, error) {
	page, err := s.d.Store.Search(ctx, store.Query{Tenant: tenant, Type: typ, Count: 2,
		Params: []store.Param{tokenParam("identifier", system, value)}})
	if err != nil || len(page.Resources) == 0 {
		return nil, err
	}
	// Read again inside the transaction, under its lock.
	r, err := tx.Read(ctx, typ, page.Resources[0].ID)
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// matchPatient applies docs/domain.md's identity rule: the INS is the key only
// for a qualified identity; otherwise the facility's IPP within that
// facility. Never name and birth date. Conflicting traits on the same INS
// are accepted, the previous version is kept in the history, and an
// identity-vigilance flag is raised for the coordinator.
func (s *Service) matchPatient(ctx context.Context, tx store.Tx, tenant string, ev intake.Event) (store.Resource, []map[string]any, error) {
	p := ev.Patient
	var found *store.Resource
	var err error
	byINS := false
	if p.Qualified && p.INS != nil {
		found, err = s.findOne(ctx, tx, tenant, "Patient", p.INS.System, p.INS.Value)
		if err != nil {
			return store.Resource{}, nil, err
		}
		byINS = found != nil
	}
	if found == nil {
		for _, id := range p.Identifiers {
			// An INS is a key only when qualified (above), whatever type
			// a sender gives it.
			if id.Type != "" && id.Type != "PI" || IsINS(id.System) {
				continue
			}
			if found, err = s.findOne(ctx, tx, tenant, "Patient", id.System, id.Value); err != nil {
				return store.Resource{}, nil, err
			}
			if found != nil {
				break
			}
		}
	}
	next := s.patientResource(ev)
	var flags []map[string]any
	if found == nil {
		r, err := tx.Create(ctx, tenant, mustJSON(next))
		return r, nil, err
	}
	var cur map[string]any
	_ = json.Unmarshal(found.Body, &cur)
	keepUnsent(cur, next)
	// Changed traits raise the flag: on the same qualified INS they are a
	// discrepancy to resolve; matched by the facility's IPP alone, a change
	// of identity (name, birth date, sex…) is what an error or a
	// usurpation looks like, and identity vigilance reviews it.
	if diffs := traitDiffs(cur, next); len(diffs) > 0 {
		flags = append(flags, vigilanceFlag(found.ID, ev, diffs, byINS))
	}
	if other := insOf(cur); p.Qualified && p.INS != nil && other != "" && other != p.INS.Value {
		flags = append(flags, vigilanceFlag(found.ID, ev, []string{"INS"}, byINS))
	}
	next["id"] = found.ID
	next["identifier"] = mergeIdentifiers(cur["identifier"], next["identifier"])
	r, err := tx.Update(ctx, tenant, mustJSON(next), found.Version)
	return r, flags, err
}

// keepUnsent keeps in next what the hospital did not send: in HL7 v2 a
// field left empty means "no change" (IHE PAM updates carry the fields the
// sender knows), so a message without a name, an address or a telephone
// must not erase the one already recorded. Loses nothing already accepted.
func keepUnsent(cur, next map[string]any) {
	for k, v := range cur {
		switch k {
		case "meta", "text", "id", "resourceType":
			continue
		}
		if _, sent := next[k]; !sent {
			next[k] = v
		}
	}
}

func insOf(p map[string]any) string {
	ids, _ := p["identifier"].([]any)
	for _, x := range ids {
		m, _ := x.(map[string]any)
		if sys, _ := m["system"].(string); IsINS(sys) {
			v, _ := m["value"].(string)
			return v
		}
	}
	return ""
}

// traitDiffs lists the INS traits that differ between two versions.
func traitDiffs(cur, next map[string]any) []string {
	var diffs []string
	pick := func(m map[string]any) map[string]string {
		out := map[string]string{}
		out["birthDate"], _ = m["birthDate"].(string)
		out["gender"], _ = m["gender"].(string)
		names, _ := m["name"].([]any)
		for _, n := range names {
			nm, _ := n.(map[string]any)
			if nm["use"] == "official" {
				out["birth family"], _ = nm["family"].(string)
				if g, ok := nm["given"].([]any); ok && len(g) > 0 {
					out["first given name"], _ = g[0].(string)
				}
			}
		}
		out["birthplace"] = birthPlaceOf(m)
		return out
	}
	a, b := pick(cur), pick(next)
	keys := make([]string, 0, len(a))
	for k := range a {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if a[k] != "" && b[k] != "" && !strings.EqualFold(a[k], b[k]) {
			diffs = append(diffs, k)
		}
	}
	return diffs
}

func birthPlaceOf(m map[string]any) string {
	exts, _ := m["extension"].([]any)
	for _, x := range exts {
		e, _ := x.(map[string]any)
		if e["url"] != extBirthPlace {
			continue
		}
		addr, _ := e["valueAddress"].(map[string]any)
		subs, _ := addr["extension"].([]any)
		for _, y := range subs {
			se, _ := y.(map[string]any)
			if vc, ok := se["valueCoding"].(map[string]any); ok {
				c, _ := vc["code"].(string)
				return c
			}
		}
	}
	return ""
}

func vigilanceFlag(patientID string, ev intake.Event, diffs []string, byINS bool) map[string]any {
	text := "Identitovigilance : traits discordants pour le même INS (" + strings.Join(diffs, ", ") + ")"
	if !byINS {
		text = "Identitovigilance : traits modifiés sans INS qualifié, rapprochement par l'IPP de l'établissement " +
			ev.Facility.FINESS + " (" + strings.Join(diffs, ", ") + ")"
	}
	return map[string]any{
		"resourceType": "Flag", "status": "active",
		"category": []any{codeable("http://terminology.hl7.org/CodeSystem/flag-category", "admin", "Administrative")},
		"code": map[string]any{
			"coding": []any{map[string]any{"system": SystemFlag, "code": "identity-vigilance", "display": "Identitovigilance"}},
			"text":   text,
		},
		"subject": ref("Patient/" + patientID),
		"period":  map[string]any{"start": ev.Time.UTC().Format(time.RFC3339)},
		"author":  map[string]any{"identifier": map[string]any{"system": directory.SystemFINESS, "value": ev.Facility.FINESS}},
	}
}

func mergeIdentifiers(cur, next any) []any {
	out, _ := cur.([]any)
	seen := map[string]bool{}
	for _, x := range out {
		m, _ := x.(map[string]any)
		seen[fmt.Sprint(m["system"], "|", m["value"])] = true
	}
	nx, _ := next.([]any)
	for _, x := range nx {
		m, _ := x.(map[string]any)
		if k := fmt.Sprint(m["system"], "|", m["value"]); !seen[k] {
			seen[k] = true
			out = append(out, x)
		}
	}
	return out
}

// patientResource builds the Patient as the hospital describes it. The INS
// is stored only for a qualified identity (docs/domain.md, "Identity status and vigilance").
func (s *Service) patientResource(ev intake.Event) map[string]any {
	p := ev.Patient
	var ids []any
	if p.INS != nil && p.Qualified {
		t := p.INS.Type
		if t == "" {
			t = "INS-NIR"
		}
		ids = append(ids, map[string]any{"use": "official", "system": p.INS.System, "value": p.INS.Value,
			"type": codeable(systemFRv20203, t, "")})
	}
	for _, id := range p.Identifiers {
		m := map[string]any{"system": id.System, "value": id.Value}
		if id.Type != "" {
			m["type"] = codeable(systemV20203, id.Type, "")
		}
		ids = append(ids, m)
	}
	res := map[string]any{"resourceType": "Patient", "identifier": ids}
	var ext []any
	if p.IdentityStatus != "" {
		ext = append(ext, map[string]any{"url": extIdentityReliab, "extension": []any{map[string]any{"url": "identityStatus",
			"valueCoding": map[string]any{"system": "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-identity-status", "code": p.IdentityStatus}}}})
	}
	if p.BirthPlace != "" {
		ext = append(ext, map[string]any{"url": extBirthPlace, "valueAddress": map[string]any{"extension": []any{map[string]any{
			"url": extINSEE, "valueCoding": map[string]any{"system": "https://mos.esante.gouv.fr/NOS/TRE_R13-CommuneOM/FHIR/TRE-R13-CommuneOM", "code": p.BirthPlace}}}}})
	}
	if len(ext) > 0 {
		res["extension"] = ext
	}
	var names []any
	if p.BirthFamily != "" || len(p.Given) > 0 {
		names = append(names, map[string]any{"use": "official", "family": p.BirthFamily, "given": p.Given})
	}
	if p.Family != "" && p.Family != p.BirthFamily {
		names = append(names, map[string]any{"use": "usual", "family": p.Family, "given": p.Given})
	}
	if names != nil {
		res["name"] = names
	}
	if p.BirthDate != "" {
		res["birthDate"] = p.BirthDate
	}
	if p.Gender != "" {
		res["gender"] = p.Gender
	}
	if a := p.Address; a != nil {
		addr := map[string]any{"use": "home"}
		if len(a.Lines) > 0 {
			addr["line"] = a.Lines
		}
		for k, v := range map[string]string{"city": a.City, "postalCode": a.PostalCode, "country": a.Country} {
			if v != "" {
				addr[k] = v
			}
		}
		if a.INSEE != "" {
			addr["extension"] = []any{map[string]any{"url": extINSEE, "valueCoding": map[string]any{
				"system": "https://mos.esante.gouv.fr/NOS/TRE_R13-CommuneOM/FHIR/TRE-R13-CommuneOM", "code": a.INSEE}}}
		}
		res["address"] = []any{addr}
	}
	if p.Phone != "" {
		res["telecom"] = []any{map[string]any{"system": "phone", "value": p.Phone, "use": "home"}}
	}
	if p.Deceased != nil {
		res["deceasedDateTime"] = p.Deceased.In(clockParis()).Format(time.RFC3339)
	}
	for _, pr := range ev.Team {
		if pr.Role == directory.RoleGP && pr.Kind == "Practitioner" && len(pr.Identifier) > 0 {
			res["generalPractitioner"] = []any{map[string]any{"identifier": map[string]any{
				"system": pr.Identifier[0].System, "value": pr.Identifier[0].Value}, "display": pr.Name}}
			break
		}
	}
	return res
}

var idSafe = regexp.MustCompile(`[^A-Za-z0-9\-.]`)

func slug(s string) string { return idSafe.ReplaceAllString(s, "-") }

// upsertEncounter records the stay: the same visit number within its
// facility is updated, never duplicated.
func (s *Service) upsertEncounter(ctx context.Context, tx store.Tx, tenant string, ev intake.Event, patientID, org string) (store.Resource, string, error) {
	e := ev.Encounter
	found, err := s.findOne(ctx, tx, tenant, "Encounter", e.Identifier.System, e.Identifier.Value)
	if err != nil {
		return store.Resource{}, "", err
	}
	res := map[string]any{"resourceType": "Encounter"}
	var cur map[string]any
	if found != nil {
		// A stay stays with its patient and its facility: moving it is an
		// identity-vigilance act (IHE PAM A44, a merge), not an update.
		_ = json.Unmarshal(found.Body, &cur)
		if p := fhirjson.Str(cur, "serviceProvider", "identifier", "value"); p != "" && p != ev.Facility.FINESS {
			return store.Resource{}, "", bus.Permanent(fmt.Errorf("stay %s is another facility's (FINESS %s): %w", e.Identifier.Value, p, ErrForeignIdentifier))
		}
		if subj := fhirjson.Str(cur, "subject", "reference"); subj != "" && subj != "Patient/"+patientID {
			return store.Resource{}, "", bus.Permanent(fmt.Errorf("stay %s belongs to %s, not to the patient of this message: %w", e.Identifier.Value, subj, ErrStayMoved))
		}
		for k, v := range cur {
			if k != "meta" {
				res[k] = v
			}
		}
	}
	id := map[string]any{"system": e.Identifier.System, "value": e.Identifier.Value}
	if e.Identifier.Type != "" {
		id["type"] = codeable(systemV20203, e.Identifier.Type, "")
	}
	res["identifier"] = []any{id}
	res["subject"] = ref("Patient/" + patientID)
	res["serviceProvider"] = map[string]any{"reference": org, "identifier": map[string]any{"system": directory.SystemFINESS, "value": ev.Facility.FINESS}}
	if e.Class != "" {
		res["class"] = map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": e.Class}
	} else if res["class"] == nil {
		res["class"] = map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"}
	}
	if e.Elective {
		res["priority"] = codeable(systemActPriority, "EL", "elective")
	}
	period, _ := res["period"].(map[string]any)
	if period == nil {
		period = map[string]any{}
	}
	if e.Start != nil {
		period["start"] = e.Start.In(clockParis()).Format(time.RFC3339)
	}
	if e.End != nil {
		period["end"] = e.End.In(clockParis()).Format(time.RFC3339)
	}
	var ext []any
	if e.Unit != "" {
		ext = append(ext, map[string]any{"url": intake.ExtMedicalUnit, "valueIdentifier": map[string]any{
			"system": directory.SystemUF + "/" + ev.Facility.FINESS, "value": e.Unit}})
	}
	if e.ModeSortie != "" {
		ext = append(ext, map[string]any{"url": intake.ExtModeSortie, "valueCode": e.ModeSortie})
	}
	if ext != nil {
		res["extension"] = ext
	}
	if e.Disposition != "" {
		res["hospitalization"] = map[string]any{"dischargeDisposition": codeable(systemDisposition, e.Disposition, "")}
	}
	switch ev.Kind {
	case intake.KindAdmit:
		res["status"] = "in-progress"
		delete(period, "end")
	case intake.KindDischarge:
		res["status"] = "finished"
	case intake.KindCancelDischarge:
		// The stay is open again.
		res["status"] = "in-progress"
		delete(period, "end")
		delete(res, "hospitalization")
	case intake.KindCancelAdmit:
		res["status"] = "entered-in-error"
	case intake.KindDeath:
		res["status"] = "finished"
		res["hospitalization"] = map[string]any{"dischargeDisposition": codeable(systemDisposition, "exp", "Expired")}
	case intake.KindUpdate:
		if res["status"] == nil {
			res["status"] = "in-progress"
		}
	}
	if len(period) > 0 {
		res["period"] = period
	}
	op := bus.OpUpdated
	var r store.Resource
	if found == nil {
		// Created first to learn its id, which its diagnoses name.
		op = bus.OpCreated
		delete(res, "diagnosis")
		r, err = tx.Create(ctx, tenant, mustJSON(res))
		if err != nil {
			return r, op, err
		}
		found = &r
	}
	var diags []any
	for i, d := range e.Diagnoses {
		rank := i + 2
		if d.Principal {
			rank = 1
		}
		diags = append(diags, map[string]any{"condition": ref("Condition/cond-" + found.ID + "-" + slug(d.Code)), "rank": rank})
	}
	if diags != nil {
		res["diagnosis"] = diags
	}
	res["id"] = found.ID
	r, err = tx.Update(ctx, tenant, mustJSON(res), found.Version)
	return r, op, err
}

// declaredTeam is the CareTeam the hospital proposed: each declared
// professional with the role given, matched to the directory later by the
// teams service.
func (s *Service) declaredTeam(ctx context.Context, tenant string, ev intake.Event, patientID, encID string) map[string]any {
	var parts []any
	for _, pr := range ev.Team {
		member := map[string]any{"type": pr.Kind, "display": pr.Name}
		if len(pr.Identifier) > 0 {
			member["identifier"] = map[string]any{"system": pr.Identifier[0].System, "value": pr.Identifier[0].Value}
		}
		part := map[string]any{"member": member}
		if pr.Role != "" {
			part["role"] = []any{codeable(directory.SystemTeamRole, pr.Role, "")}
		}
		parts = append(parts, part)
	}
	return map[string]any{
		"resourceType": "CareTeam", "id": "declared-" + encID, "status": "proposed",
		"name":        "Équipe déclarée par l'établissement",
		"subject":     ref("Patient/" + patientID),
		"encounter":   ref("Encounter/" + encID),
		"participant": parts,
	}
}

func codeable(system, code, display string) map[string]any {
	c := map[string]any{"system": system, "code": code}
	if display != "" {
		c["display"] = display
	}
	return map[string]any{"coding": []any{c}}
}

func ref(r string) map[string]any { return map[string]any{"reference": r} }

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// Identifier namespaces. An IPP or a visit number means something only in
// the identity domain of the facility that assigns it (IHE PAM: the
// assigning authority of PID-3 and PV1-19; docs/domain.md, "French identifiers": "a facility's IPP and
// visit numbers under that facility's own OID"). A namespace is bound to
// the facility that first uses it, by a NamingSystem resource naming that
// facility's FINESS; an operator may also create or correct it. Another
// facility's message in that namespace is refused (AE / 400): treating it
// as another patient would give two patients the same identifier in one
// domain, which identity vigilance forbids (one identifier, one person);
// taking it as the same patient is the takeover this guards against.

// ExtAssigningFacility names, on a NamingSystem, the FINESS of the facility
// whose identifiers it holds.
const ExtAssigningFacility = "https://passerelle.health/fhir/StructureDefinition/assigning-facility"

// ErrForeignIdentifier is a message using an identifier namespace that
// another facility assigns.
var ErrForeignIdentifier = errors.New("identifier namespace of another facility")

// ErrStayMoved is a message that would move an existing stay to another
// patient.
var ErrStayMoved = errors.New("a stay never moves to another patient")

// foreignIdentifier says which identifier of a message is in another
// facility's namespace.
type foreignIdentifier struct {
	Visit  bool // the visit number (else the IPP)
	System string
}

func (f *foreignIdentifier) Error() string {
	what := "IPP"
	if f.Visit {
		what = "visit number"
	}
	return fmt.Sprintf("%s in namespace %s: %v", what, f.System, ErrForeignIdentifier)
}

func (f *foreignIdentifier) Unwrap() error { return ErrForeignIdentifier }

// namingSystemID is the id of the NamingSystem binding a namespace of a
// tenant; ids are global, so the tenant is in it.
func namingSystemID(tenant, system string) string {
	h := sha256.Sum256([]byte(tenant + "|" + system))
	return "idns-" + hex.EncodeToString(h[:16])
}

// namespaces are the identifier namespaces of an event that a facility
// assigns: its IPPs and its visit number (never the INS, which is national).
func namespaces(ev intake.Event) []foreignIdentifier {
	var out []foreignIdentifier
	seen := map[string]bool{}
	for _, id := range ev.Patient.Identifiers {
		if (id.Type == "" || id.Type == "PI") && id.System != "" && !IsINS(id.System) && !seen[id.System] {
			seen[id.System] = true
			out = append(out, foreignIdentifier{System: id.System})
		}
	}
	if sys := ev.Encounter.Identifier.System; sys != "" && !seen[sys] {
		out = append(out, foreignIdentifier{Visit: true, System: sys})
	}
	return out
}

// reader reads a resource by id: a transaction (under its lock) or the store.
type reader interface {
	Read(ctx context.Context, typ, id string) (store.Resource, error)
}

// namespaceOwner returns the FINESS of the facility a namespace is bound
// to, and whether the binding exists; without one, the FINESS that data
// recorded before bindings existed shows (the facility of a stay in that
// namespace), or "".
func (s *Service) namespaceOwner(ctx context.Context, rd reader, tenant string, ns foreignIdentifier) (string, bool, error) {
	r, err := rd.Read(ctx, "NamingSystem", namingSystemID(tenant, ns.System))
	switch {
	case err == nil:
		var b struct {
			Extension []struct {
				URL             string `json:"url"`
				ValueIdentifier struct {
					Value string `json:"value"`
				} `json:"valueIdentifier"`
			} `json:"extension"`
		}
		_ = json.Unmarshal(r.Body, &b)
		for _, e := range b.Extension {
			if e.URL == ExtAssigningFacility {
				return e.ValueIdentifier.Value, true, nil
			}
		}
		return "", true, nil
	case !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrGone):
		return "", false, err
	}
	// Recorded before namespaces were bound: a stay in it, or a stay of a
	// patient identified in it, names its facility.
	page, err := s.d.Store.Search(ctx, store.Query{Tenant: tenant, Type: "Encounter", Count: 1,
		Params: []store.Param{tokenParam("identifier", ns.System, "")}})
	if err != nil {
		return "", false, err
	}
	if len(page.Resources) == 0 && !ns.Visit {
		pats, err := s.d.Store.Search(ctx, store.Query{Tenant: tenant, Type: "Patient", Count: 1,
			Params: []store.Param{tokenParam("identifier", ns.System, "")}})
		if err != nil || len(pats.Resources) == 0 {
			return "", false, err
		}
		page, err = s.d.Store.Search(ctx, store.Query{Tenant: tenant, Type: "Encounter", Count: 1,
			Params: []store.Param{{Name: "patient", Kind: store.KindReference, Values: []store.Value{{Ref: "Patient/" + pats.Resources[0].ID}}}}})
		if err != nil {
			return "", false, err
		}
	}
	if len(page.Resources) == 0 {
		return "", false, nil
	}
	return providerOf(page.Resources[0].Body), false, nil
}

// providerOf is the FINESS of a stay's serviceProvider.
func providerOf(body []byte) string {
	var e struct {
		ServiceProvider struct {
			Identifier struct {
				Value string `json:"value"`
			} `json:"identifier"`
		} `json:"serviceProvider"`
	}
	_ = json.Unmarshal(body, &e)
	return e.ServiceProvider.Identifier.Value
}

// checkNamespaces refuses an event with an identifier in a namespace bound
// to another facility. With bind, it binds the event's unbound namespaces
// to its facility inside tx (the first message applied in a namespace
// claims it).
func (s *Service) checkNamespaces(ctx context.Context, rd reader, tx store.Tx, tenant string, ev intake.Event) error {
	for _, ns := range namespaces(ev) {
		owner, bound, err := s.namespaceOwner(ctx, rd, tenant, ns)
		if err != nil {
			return err
		}
		if owner != "" && owner != ev.Facility.FINESS {
			return &ns
		}
		if bound || tx == nil {
			continue
		}
		if owner == "" {
			owner = ev.Facility.FINESS
		}
		kind := "IPP"
		if ns.Visit {
			kind = "numéros de venue / visit numbers"
		}
		uid := map[string]any{"type": "uri", "value": ns.System, "preferred": true}
		if oid, ok := strings.CutPrefix(ns.System, "urn:oid:"); ok {
			uid = map[string]any{"type": "oid", "value": oid, "preferred": true}
		}
		if _, err := tx.Create(ctx, tenant, mustJSON(map[string]any{
			"resourceType": "NamingSystem", "id": namingSystemID(tenant, ns.System),
			"name": "Identifiants " + kind + " FINESS " + owner, "status": "active", "kind": "identifier",
			"date":        s.now().UTC().Format(time.RFC3339),
			"responsible": ev.Facility.Name,
			"uniqueId":    []any{uid},
			"extension": []any{map[string]any{"url": ExtAssigningFacility,
				"valueIdentifier": map[string]any{"system": directory.SystemFINESS, "value": owner}}},
		})); err != nil {
			return fmt.Errorf("bind namespace %s: %w", ns.System, err)
		}
	}
	return nil
}

// checkFHIRIdentifiers tells, before a message is acknowledged, whether its
// IPP or visit number is in a namespace another facility assigns: a
// *fhir.Error for the FHIR channel. It only reads.
func (s *Service) checkFHIRIdentifiers(ctx context.Context, ev intake.Event) error {
	err := s.checkNamespaces(ctx, s.d.Store, nil, s.d.Tenant, ev)
	var f *foreignIdentifier
	if !errors.As(err, &f) {
		return err
	}
	if f.Visit {
		return fhir.Errorf(errKind(f), "business-rule",
			"Le numéro de venue est dans l'espace de noms d'un autre établissement ("+f.System+")",
			"The visit number is in another facility's namespace ("+f.System+")", "Encounter.identifier")
	}
	return fhir.Errorf(errKind(f), "business-rule",
		"L'IPP est dans l'espace de noms d'un autre établissement ("+f.System+")",
		"The IPP is in another facility's namespace ("+f.System+")", "Patient.identifier")
}

// checkHL7Identifiers is checkFHIRIdentifiers for HL7 v2: the same kind,
// on PID-3 or PV1-19. A storage error lets the message through: an answer
// given here is archived with the message and would be given again to
// every re-send, and Apply checks the namespaces again before writing
// anything.
func (s *Service) checkHL7Identifiers(ctx context.Context, ev intake.Event) *hl7Reject {
	err := s.checkNamespaces(ctx, s.d.Store, nil, s.d.Tenant, ev)
	var f *foreignIdentifier
	switch {
	case err == nil:
		return nil
	case !errors.As(err, &f):
		s.log.WarnContext(ctx, "identifier namespaces not checked before the ACK", "error", err)
		return nil
	case f.Visit:
		return reject(errKind(f), hl7v2.Location{Segment: "PV1", Sequence: 1, Field: 19}, hl7v2.CodeUnknownKey,
			"Numéro de venue dans l'espace de noms d'un autre établissement / Visit number in another facility's namespace (PV1-19)")
	}
	return reject(errKind(f), hl7v2.Location{Segment: "PID", Sequence: 1, Field: 3}, hl7v2.CodeUnknownKey,
		"IPP dans l'espace de noms d'un autre établissement / IPP in another facility's namespace (PID-3)")
}
