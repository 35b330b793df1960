package worklist

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"

	"github.com/passerelle-sante/passerelle/pkg/access"
	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/fhir"
	"github.com/passerelle-sante/passerelle/pkg/fhirapi"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// OperationAcknowledge is the definition URL of $acknowledge on Flag.
const OperationAcknowledge = "https://passerelle.health/fhir/OperationDefinition/Flag-acknowledge"

// Register adds the worklist's FHIR routes, more specific than the generic
// API's: PUT /fhir/Task/{id} (a task's progress), POST /fhir/Observation
// (a measurement; ?task=<id> makes it that task's output) and POST
// /fhir/Flag/{id}/$acknowledge.
func (s *Service) Register(mux *http.ServeMux, authn func(http.Handler) http.Handler) {
	mux.Handle("PUT /fhir/Task/{id}", authn(http.HandlerFunc(s.putTask)))
	mux.Handle("POST /fhir/Observation", authn(http.HandlerFunc(s.postObservation)))
	mux.Handle("POST /fhir/Flag/{id}/$acknowledge", authn(http.HandlerFunc(s.postAcknowledge)))
}

func actorOf(r *http.Request) directory.Actor {
	a, _ := access.ActorFrom(r.Context())
	return a
}

func readJSON(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		return nil, fhir.Errorf(fhir.TooLarge, "too-costly", "Corps trop volumineux", "Body too large")
	}
	return b, nil
}

func writeRes(w http.ResponseWriter, status int, res store.Resource) {
	h := w.Header()
	h.Set("Content-Type", fhirapi.ContentType)
	h.Set("ETag", fmt.Sprintf(`W/"%d"`, res.Version))
	h.Set("Last-Modified", res.LastUpdated.UTC().Format(http.TimeFormat))
	w.WriteHeader(status)
	_, _ = w.Write(res.Body)
}

// fixed are the elements of a Task its owner does not change: a PUT may
// leave them out, not change them.
var fixed = []string{"owner", "for", "code", "basedOn", "focus", "performerType", "restriction", "intent", "requester", "partOf", "encounter"}

// putTask moves a task to the status its body asks for. Only status,
// statusReason.text and businessStatus are read from the body; the
// elements in fixed must be absent or unchanged.
func (s *Service) putTask(w http.ResponseWriter, r *http.Request) {
	ctx, id, a := r.Context(), r.PathValue("id"), actorOf(r)
	ifMatch, err := fhirapi.IfMatch(r)
	if err != nil {
		fhirapi.WriteError(w, r, s.log, err)
		return
	}
	body, err := readJSON(w, r)
	if err != nil {
		fhirapi.WriteError(w, r, s.log, err)
		return
	}
	m, err := decodeObj(body)
	if err != nil {
		fhirapi.WriteError(w, r, s.log, fhir.Errorf(fhir.Invalid, "structure", "JSON mal formé : "+err.Error(), "Malformed JSON: "+err.Error()))
		return
	}
	switch {
	case m["resourceType"] != "Task":
		err = invalid("resourceType doit être Task", "resourceType must be Task", "resourceType")
	case str(m, "id") != id:
		err = invalid("L'id de la ressource doit être celui de l'URL", "The resource id must match the URL", "Task.id")
	case str(m, "status") == "":
		err = fhir.Errorf(fhir.Invalid, "required", "status manquant", "status is missing", "Task.status")
	}
	if err != nil {
		fhirapi.WriteError(w, r, s.log, err)
		return
	}
	// An unchanged element is checked only against the version the client
	// saw: a stale one answers 412 from Move.
	if cur, err := readObj(ctx, s.d.Store, "Task", id); err == nil && cur.res.Tenant == a.Tenant && (ifMatch == 0 || ifMatch == cur.res.Version) {
		if _, mine := ownerRole(a, str(cur.m, "owner", "reference")); mine {
			for _, k := range fixed {
				if v, ok := m[k]; ok && !sameJSON(v, cur.m[k]) {
					fhirapi.WriteError(w, r, s.log, fhir.Errorf(fhir.Invalid, "business-rule",
						"Task."+k+" ne change pas par ce moyen", "Task."+k+" is not changed this way", "Task."+k))
					return
				}
			}
		}
	}
	mv := Move{To: str(m, "status"), Reason: str(m, "statusReason", "text"), BusinessStatus: firstCode(m["businessStatus"], SystemBusinessStatus)}
	if mv.BusinessStatus == "overdue" {
		mv.BusinessStatus = "" // the system's mark, carried back as read
	}
	res, err := s.Move(ctx, a, id, ifMatch, mv)
	if err != nil {
		fhirapi.WriteError(w, r, s.log, err)
		return
	}
	writeRes(w, http.StatusOK, res)
}

func sameJSON(a, b any) bool {
	// Both come from encoding/json, so equal JSON is equal values.
	var x, y any
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	_ = json.Unmarshal(ja, &x)
	_ = json.Unmarshal(jb, &y)
	return reflect.DeepEqual(x, y)
}

// postObservation records a measurement.
func (s *Service) postObservation(w http.ResponseWriter, r *http.Request) {
	body, err := readJSON(w, r)
	if err != nil {
		fhirapi.WriteError(w, r, s.log, err)
		return
	}
	res, err := s.RecordObservation(r.Context(), actorOf(r), body, r.URL.Query().Get("task"))
	if err != nil {
		fhirapi.WriteError(w, r, s.log, err)
		return
	}
	w.Header().Set("Location", fmt.Sprintf("Observation/%s/_history/%d", res.ID, res.Version))
	writeRes(w, http.StatusCreated, res)
}

// postAcknowledge acknowledges an alert and answers its new version.
func (s *Service) postAcknowledge(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := s.Acknowledge(r.Context(), actorOf(r), id); err != nil {
		fhirapi.WriteError(w, r, s.log, err)
		return
	}
	res, err := s.d.Store.Read(r.Context(), "Flag", id)
	if err != nil {
		fhirapi.WriteError(w, r, s.log, err)
		return
	}
	writeRes(w, http.StatusOK, res)
}
