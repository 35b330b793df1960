package pathway

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/passerelle-sante/passerelle/pkg/access"
	"github.com/passerelle-sante/passerelle/pkg/fhir"
	"github.com/passerelle-sante/passerelle/pkg/fhirapi"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// Register adds the template upload routes: POST /fhir/PlanDefinition and
// PUT /fhir/PlanDefinition/{id}. They are more specific than the generic
// API's write routes, which they replace for PlanDefinition, so that no
// template reaches the store without the profile's and the engine's
// checks.
func (s *Service) Register(mux *http.ServeMux, authn func(http.Handler) http.Handler) {
	mux.Handle("POST /fhir/PlanDefinition", authn(http.HandlerFunc(s.upload)))
	mux.Handle("PUT /fhir/PlanDefinition/{id}", authn(http.HandlerFunc(s.upload)))
}

// upload stores a new template, or a new version of one. The version is
// the server's: the store version of the PlanDefinition, so that an
// episode's url|version always finds what it was opened with. A POST whose
// url is already a template of the tenant makes a new version of it.
func (s *Service) upload(w http.ResponseWriter, r *http.Request) {
	act, _ := access.ActorFrom(r.Context())
	if err := (access.Policy{}).Write(r.Context(), act, "PlanDefinition"); err != nil {
		fhirapi.WriteError(w, r, s.log, err)
		return
	}
	ifMatch, err := fhirapi.IfMatch(r)
	if err != nil {
		fhirapi.WriteError(w, r, s.log, err)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 2<<20))
	if err != nil {
		fhirapi.WriteError(w, r, s.log, fhir.Errorf(fhir.TooLarge, "too-costly", "Modèle trop volumineux", "Template too large"))
		return
	}
	m, err := decodeObj(body)
	if err != nil {
		fhirapi.WriteError(w, r, s.log, fhir.Errorf(fhir.Invalid, "structure", "JSON mal formé : "+err.Error(), "Malformed JSON: "+err.Error()))
		return
	}
	if m["resourceType"] != "PlanDefinition" {
		fhirapi.WriteError(w, r, s.log, fhir.Errorf(fhir.Invalid, "invalid", "resourceType doit être PlanDefinition", "resourceType must be PlanDefinition", "resourceType"))
		return
	}
	id := r.PathValue("id")
	if id != "" && str(m, "id") != id {
		fhirapi.WriteError(w, r, s.log, fhir.Errorf(fhir.Invalid, "invalid", "L'id de la ressource doit être celui de l'URL", "The resource id must match the URL", "PlanDefinition.id"))
		return
	}
	ctx := r.Context()
	url := str(m, "url")
	if id == "" && url != "" {
		page, err := s.d.Store.Search(ctx, store.Query{Tenant: act.Tenant, Type: "PlanDefinition", Count: 2,
			Params: []store.Param{{Name: "url", Kind: store.KindURI, Values: []store.Value{{Text: url}}}}})
		if err != nil {
			fhirapi.WriteError(w, r, s.log, err)
			return
		}
		if len(page.Resources) > 0 {
			id = page.Resources[0].ID
		}
	}
	var res store.Resource
	created := false
	err = s.d.Store.Tx(ctx, func(tx store.Tx) error {
		next := int64(1)
		if id != "" {
			cur, err := tx.Read(ctx, "PlanDefinition", id)
			switch {
			case err == nil || errors.Is(err, store.ErrGone):
				if cur.Tenant != act.Tenant {
					return store.ErrNotFound
				}
				if ifMatch > 0 && cur.Version != ifMatch {
					return store.ErrVersionConflict
				}
				next = cur.Version + 1
				if old, _ := decodeObj(cur.Body); old != nil && url != "" && str(old, "url") != url {
					return fhir.Errorf(fhir.Invalid, "invalid", "L'url d'un modèle ne change pas d'une version à l'autre",
						"A template's url does not change between versions", "PlanDefinition.url")
				}
			case errors.Is(err, store.ErrNotFound):
			default:
				return err
			}
		}
		created = next == 1
		m["version"] = strconv.FormatInt(next, 10)
		delete(m, "meta")
		if id != "" {
			m["id"] = id
		} else {
			delete(m, "id")
		}
		b := mustJSON(m)
		if issues := s.check(b); len(issues) > 0 {
			return invalidTemplate(issues)
		}
		var err error
		if id == "" {
			res, err = tx.Create(ctx, act.Tenant, b)
		} else {
			res, err = tx.Update(ctx, act.Tenant, b, next-1)
		}
		if err != nil {
			return err
		}
		if res.Version != next {
			return fmt.Errorf("template %s: stored as version %d, not %d", res.ID, res.Version, next)
		}
		return tx.Audit(ctx, store.AuditRecord{Tenant: act.Tenant, Time: s.d.Clock.Now(), Agent: act.Reference(), Action: "U",
			Entity: fmt.Sprintf("PlanDefinition/%s/_history/%d", res.ID, res.Version), Outcome: "0"})
	})
	if err != nil {
		fhirapi.WriteError(w, r, s.log, err)
		return
	}
	s.log.InfoContext(ctx, "template stored", "template", res.ID, "version", res.Version)
	h := w.Header()
	h.Set("Content-Type", fhirapi.ContentType)
	h.Set("ETag", fmt.Sprintf(`W/"%d"`, res.Version))
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		h.Set("Location", fmt.Sprintf("PlanDefinition/%s/_history/%d", res.ID, res.Version))
	}
	w.WriteHeader(status)
	_, _ = w.Write(res.Body)
}

// invalidTemplate is the 400 answer: every issue with its FHIRPath.
func invalidTemplate(issues []templateIssue) error {
	e := &fhir.Error{Kind: fhir.Invalid}
	for _, i := range issues {
		code := i.Code
		if code == "" {
			code = "invalid"
		}
		e.Issues = append(e.Issues, fhir.Issue{Severity: "error", Code: code, FR: i.FR, EN: i.EN, Expression: []string{i.Expression}})
	}
	return e
}
