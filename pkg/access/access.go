// Package access decides, in one place, what an actor may read and write.
// The FHIR API, the web pages and the exports all ask it; none decides alone.
//
// The rules follow the care relationship (docs/architecture.md, "Identity and access"):
// everyone works inside their own tenant (CPTS); the directory and the
// pathway definitions are readable by every member; the coordinator and the
// referent coordinating nurse see every episode of their CPTS; an
// administrator manages tenants and system clients, never clinical data; a
// professional reads and writes a patient's data only while in care
// relationship with that patient — an active participant of one of the
// patient's active CareTeams, or the owner of an open task of one of the
// patient's running episodes — and only reads it for a short grace period
// after that relationship ends (Policy.Grace, audited as such); a
// hospital system writes only through the intake for its own facility and
// reads only the answers to what it sent.
//
// Entry points: Policy.Search narrows a search (results and totals) to what
// the actor may see; Policy.Read decides on one resource; Policy.Patient on
// writing one patient's data, or showing it where the grace period does not
// apply (pages, exports); Policy.ReadPatient on reading it, grace period
// included; Policy.Write on the directory and the definitions. The
// ...Reach variants also say whether a read is made under the grace period,
// for the audit trail. Each error is a
// fhir.Error of kind Forbidden, or NotFound for another tenant's resource,
// which does not exist for the caller.
package access

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/fhir"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

type ctxKey struct{}

// WithActor returns ctx carrying the actor.
func WithActor(ctx context.Context, a directory.Actor) context.Context {
	return context.WithValue(ctx, ctxKey{}, a)
}

// ActorFrom returns the actor of ctx.
func ActorFrom(ctx context.Context) (directory.Actor, bool) {
	a, ok := ctx.Value(ctxKey{}).(directory.Actor)
	return a, ok
}

// Class groups resource types by who may see them.
type Class int

const (
	// Clinical is patient data.
	Clinical Class = iota
	// Directory is the member directory.
	Directory
	// Definition is what the CPTS's pathways are made of: templates,
	// measures, questionnaires, terminology.
	Definition
)

var classes = map[string]Class{
	"Practitioner": Directory, "PractitionerRole": Directory, "Organization": Directory,
	"Location": Directory, "Device": Directory, "HealthcareService": Directory,
	"PlanDefinition": Definition, "ActivityDefinition": Definition, "Measure": Definition, "Questionnaire": Definition,
	"ValueSet": Definition, "CodeSystem": Definition, "StructureDefinition": Definition, "SearchParameter": Definition,
	"NamingSystem": Definition,
}

// ClassOf returns the class of a resource type.
func ClassOf(typ string) Class { return classes[typ] }

var forbidden = func(fr, en string) error { return fhir.Errorf(fhir.Forbidden, "forbidden", fr, en) }

// Policy is the access policy. Its zero value is ready to use.
type Policy struct {
	// Now tells the time at which a care relationship is judged (a
	// participant's period may have ended). Default time.Now.
	Now func() time.Time
	// Grace is how long a professional still reads a patient's data, and
	// only reads it, after her care relationship with the patient ended
	// (Relation). Zero: not at all.
	Grace time.Duration
}

func (p Policy) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// Searcher is the part of the store the policy reads: a patient's care
// teams and tasks.
type Searcher interface {
	Search(ctx context.Context, q store.Query) (store.Page, error)
}

// verdict of the rules every kind of access shares.
type verdict int

const (
	allowed verdict = iota
	careRelationship
)

// common applies the rules shared by searches and reads: systems read
// nothing through the API (they read the answers to what they sent, from
// the intake), the directory and definitions are open to members, the
// coordinator and the referent coordinating nurse see their CPTS's patients,
// an administrator none; the audit trail is the coordinator's. Other
// professionals reach a patient's data through the care relationship.
func common(a directory.Actor, typ, verb string) (verdict, error) {
	if a.System != "" {
		return 0, forbidden("Un système hospitalier ne consulte pas le dossier", "A hospital system does not "+verb+" records")
	}
	switch ClassOf(typ) {
	case Directory, Definition:
		return allowed, nil
	}
	if typ == "AuditEvent" {
		if a.Has(directory.RoleCoordinator) {
			return allowed, nil
		}
		return 0, forbidden("Seul le coordinateur de la CPTS consulte la traçabilité", "Only the CPTS coordinator reads the audit trail")
	}
	switch {
	case a.Has(directory.RoleCoordinator), a.Has(directory.RoleCoordinatingNurse):
		return allowed, nil
	case len(a.Roles) == 0:
		return 0, forbidden("Aucun rôle dans l'annuaire de la CPTS", "No role in the CPTS directory")
	case onlyAdmin(a):
		return 0, forbidden("Un administrateur n'accède pas aux données cliniques", "An administrator has no access to clinical data")
	}
	return careRelationship, nil
}

func onlyAdmin(a directory.Actor) bool {
	for _, r := range a.Roles {
		if r.Code != directory.RoleAdmin {
			return false
		}
	}
	return len(a.Roles) > 0
}

// patientParams names, for each clinical type a professional may search, the
// search parameter that ties it to a patient (FHIR R4 core). A clinical type
// missing here is not searchable by a professional: nothing ties its results
// to the care relationship.
var patientParams = map[string]string{
	"Patient":    "_id",
	"AuditEvent": "patient", "CarePlan": "patient", "CareTeam": "patient", "Communication": "patient",
	"Condition": "patient", "Consent": "patient", "DetectedIssue": "patient", "DocumentReference": "patient",
	"Encounter": "patient", "EpisodeOfCare": "patient", "Flag": "patient", "Goal": "patient",
	"MeasureReport": "patient", "Observation": "patient", "Provenance": "patient",
	"QuestionnaireResponse": "patient", "ServiceRequest": "patient", "Task": "patient",
}

// noPatient is a reference no resource carries (not a FHIR id): narrowing a
// search to it leaves nothing, with an honest total of zero.
const noPatient = "Patient/#none"

// Search constrains q to what a may see, or refuses it. A professional's
// search is narrowed to the patients she reaches (CarePatients, the grace
// period included), so that results and totals show nothing else; one
// naming another patient finds nothing.
func (p Policy) Search(ctx context.Context, st Searcher, a directory.Actor, q *store.Query) error {
	_, err := p.SearchReach(ctx, st, a, q)
	return err
}

// SearchReach is Search, and also returns the patients the search was
// narrowed to that a reaches only under the grace period: what the search
// shows of them is audited as a grace read (AuditGrace).
func (p Policy) SearchReach(ctx context.Context, st Searcher, a directory.Actor, q *store.Query) (grace map[string]bool, err error) {
	q.Tenant = a.Tenant
	v, err := common(a, q.Type, "search")
	if err != nil || v == allowed {
		return nil, err
	}
	name, ok := patientParams[q.Type]
	if !ok {
		return nil, forbidden("L'accès aux données d'un patient suit la relation de soin : cherchez-les par patient",
			"Access to a patient's data follows the care relationship: search it by patient")
	}
	reach, err := CarePatients(ctx, st, a, p.now(), p.Grace)
	if err != nil {
		return nil, err
	}
	patients := make([]string, 0, len(reach))
	for ref, r := range reach {
		patients = append(patients, ref)
		if r == GraceReach {
			if grace == nil {
				grace = map[string]bool{}
			}
			grace[ref] = true
		}
	}
	sort.Strings(patients)
	if len(patients) == 0 {
		patients = []string{noPatient}
	}
	param := store.Param{Name: name, Kind: store.KindReference}
	for _, ref := range patients {
		if name == "_id" {
			param.Kind = store.KindToken
			param.Values = append(param.Values, store.Value{Code: strings.TrimPrefix(ref, "Patient/")})
		} else {
			param.Values = append(param.Values, store.Value{Ref: ref})
		}
	}
	q.Params = append(q.Params, param)
	return grace, nil
}

// Read tells whether a may read res: a resource of another tenant does not
// exist for a; a professional reads a clinical resource when it is about a
// patient she reaches (ReadPatient), the grace period included. Owning a
// task is no reason of its own: the task's patient decides, so a task that
// closed or went to someone else stops being readable with the rest.
func (p Policy) Read(ctx context.Context, st Searcher, a directory.Actor, res store.Resource) error {
	_, err := p.ReadReach(ctx, st, a, res)
	return err
}

// ReadReach is Read, and also says how a reaches the resource: a caller
// that shows it under GraceReach audits the read with AuditGrace.
func (p Policy) ReadReach(ctx context.Context, st Searcher, a directory.Actor, res store.Resource) (Reach, error) {
	if res.Tenant != a.Tenant {
		return NoReach, fhir.FromError(store.ErrNotFound)
	}
	v, err := common(a, res.Type, "read")
	if err != nil {
		return NoReach, err
	}
	if v == allowed {
		return CareReach, nil
	}
	patient := PatientOf(res)
	if patient == "" {
		return NoReach, forbidden("Vous ne faites pas partie de l'équipe de soins de ce patient", "You are not in this patient's care team")
	}
	return p.ReadPatient(ctx, st, a, patient)
}

// PatientOf returns the patient a resource is about: itself for a Patient,
// else its subject, patient, for or beneficiary reference to a Patient.
func PatientOf(res store.Resource) string {
	if res.Type == "Patient" {
		return "Patient/" + res.ID
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(res.Body, &m) != nil {
		return ""
	}
	for _, k := range []string{"subject", "patient", "for", "beneficiary"} {
		var ref struct{ Reference string }
		if raw, ok := m[k]; ok && json.Unmarshal(raw, &ref) == nil && strings.HasPrefix(ref.Reference, "Patient/") {
			return ref.Reference
		}
	}
	return ""
}

// Write tells whether a may create or update resources of type typ through
// the generic FHIR API. Clinical resources change through their owning
// service's own interactions, not here.
func (Policy) Write(_ context.Context, a directory.Actor, typ string) error {
	if a.System != "" {
		return forbidden("Un système hospitalier écrit par $process-message ou MLLP", "A hospital system writes through $process-message or MLLP")
	}
	switch ClassOf(typ) {
	case Directory:
		if a.Has(directory.RoleCoordinator) {
			return nil
		}
		// The administrator manages tenants (their Organization) and
		// system clients (a Device per client), not the members.
		if a.Has(directory.RoleAdmin) && (typ == "Device" || typ == "Organization") {
			return nil
		}
		return forbidden("Seul le coordinateur gère l'annuaire", "Only the coordinator manages the directory")
	case Definition:
		if a.Has(directory.RoleCoordinator) {
			return nil
		}
		return forbidden("Seul le coordinateur gère les modèles", "Only the coordinator manages templates")
	}
	return forbidden("Ce type de ressource ne s'écrit pas par l'API générique", "This resource type is not written through the generic API")
}

// Outcomes tells whether a may read the CPTS's outcomes and their exports
// (MeasureReports, the outcomes CSV, curves): the coordinator and the
// referent coordinating nurse of a's own tenant. Exports are pseudonymous
// and cover the whole CPTS, so no care relationship opens them.
func (Policy) Outcomes(_ context.Context, a directory.Actor) error {
	if a.System == "" && (a.Has(directory.RoleCoordinator) || a.Has(directory.RoleCoordinatingNurse)) {
		return nil
	}
	return forbidden("Les résultats de la CPTS sont réservés à son coordinateur et à l'IDE coordinatrice référente",
		"The CPTS's outcomes are for its coordinator and referent coordinating nurse")
}
