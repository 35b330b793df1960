// Package access decides, in one place, what an actor may read and write.
// The FHIR API, the web pages and the exports all ask it; none decides alone.
//
// The rules follow the care relationship (DESIGN.md "Identity and access"):
// everyone works inside their own tenant (CPTS); the directory and the
// pathway definitions are readable by every member; the coordinator and the
// referent coordinating nurse see every episode of their CPTS; an
// administrator manages tenants and system clients, never clinical data; a
// professional sees a patient's data only through the tasks they own; a
// hospital system writes only through the intake for its own facility.
package access

import (
	"context"
	"encoding/json"
	"net/http"

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

var forbidden = func(fr, en string) error { return fhir.Errorf(http.StatusForbidden, "forbidden", fr, en) }

// Policy is the access policy.
type Policy struct{}

// verdict of the rules every kind of access shares.
type verdict int

const (
	allowed verdict = iota
	ownTasksOnly
)

// common applies the rules shared by searches and reads: systems read
// nothing, the directory and definitions are open to members, the
// coordinator and the referent coordinating nurse see their CPTS's patients,
// an administrator none. Other professionals reach patient data through
// their own tasks.
func common(a directory.Actor, typ, verb string) (verdict, error) {
	if a.System != "" {
		return 0, forbidden("Un système hospitalier ne consulte pas le dossier", "A hospital system does not "+verb+" records")
	}
	switch ClassOf(typ) {
	case Directory, Definition:
		return allowed, nil
	}
	switch {
	case a.Has(directory.RoleCoordinator), a.Has(directory.RoleCoordinatingNurse):
		return allowed, nil
	case a.Has(directory.RoleAdmin) && len(a.Roles) == 1:
		return 0, forbidden("Un administrateur n'accède pas aux données cliniques", "An administrator has no access to clinical data")
	}
	return ownTasksOnly, nil
}

// Search constrains q to what a may see, or refuses it.
func (Policy) Search(_ context.Context, a directory.Actor, q *store.Query) error {
	q.Tenant = a.Tenant
	v, err := common(a, q.Type, "search")
	if err != nil || v == allowed {
		return err
	}
	if q.Type != "Task" {
		return forbidden("L'accès aux données d'un patient suit la relation de soin : consultez-les depuis vos tâches",
			"Access to a patient's data follows the care relationship: reach it through your tasks")
	}
	// A professional's own tasks: the search is narrowed to them.
	var refs []store.Value
	for _, r := range a.Roles {
		refs = append(refs, store.Value{Ref: "PractitionerRole/" + r.ID})
	}
	q.Params = append(q.Params, store.Param{Name: "owner", Kind: store.KindReference, Values: refs})
	return nil
}

// Read tells whether a may read res.
func (Policy) Read(_ context.Context, a directory.Actor, res store.Resource) error {
	if res.Tenant != a.Tenant {
		return fhir.FromError(store.ErrNotFound)
	}
	v, err := common(a, res.Type, "read")
	if err != nil || v == allowed {
		return err
	}
	if res.Type == "Task" && ownsTask(a, res.Body) {
		return nil
	}
	return forbidden("Vous ne faites pas partie de l'équipe de soins de ce patient", "You are not in this patient's care team")
}

func ownsTask(a directory.Actor, body []byte) bool {
	var t struct {
		Owner struct{ Reference string } `json:"owner"`
	}
	if json.Unmarshal(body, &t) != nil {
		return false
	}
	for _, r := range a.Roles {
		if t.Owner.Reference == "PractitionerRole/"+r.ID {
			return true
		}
	}
	return false
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
		if a.Has(directory.RoleCoordinator) || a.Has(directory.RoleAdmin) {
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
