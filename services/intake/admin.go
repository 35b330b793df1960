package intake

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/access"
	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/fhir"
	"github.com/passerelle-sante/passerelle/pkg/fhirapi"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// RegisterAdmin adds the operators' view of the message archive:
//
//	GET  /api/messages?channel=&sender=&control-id=&patient=&status=&before=&_count=
//	GET  /api/messages/{id}          (with the raw message and the answer)
//	POST /api/messages/{id}/replay   (apply an accepted message again)
//
// The coordinator of the CPTS sees everything; an administrator sees the
// list and replays, but never a message's content nor which patient it is
// about (patient data: an administrator manages the platform, not care).
// Every look at the archive is audited.
func (s *Service) RegisterAdmin(mux *http.ServeMux, authn func(http.Handler) http.Handler) {
	mux.Handle("GET /api/messages", authn(http.HandlerFunc(s.listMessages)))
	mux.Handle("GET /api/messages/{id}", authn(http.HandlerFunc(s.getMessage)))
	mux.Handle("POST /api/messages/{id}/replay", authn(http.HandlerFunc(s.replayMessage)))
}

type messageView struct {
	ID           string    `json:"id"`
	Channel      string    `json:"channel"`
	Sender       string    `json:"sender"`
	ControlID    string    `json:"controlId"`
	Event        string    `json:"event"`
	Patient      string    `json:"patient,omitempty"`
	Received     time.Time `json:"received"`
	Status       string    `json:"status"`
	ResponseCode int       `json:"responseCode,omitempty"`
	Raw          string    `json:"raw,omitempty"`
	Response     string    `json:"response,omitempty"`
}

// view is what an operator sees of a message: with clinical, the patient
// and, with content too, the message and its answer.
func view(m store.Message, clinical, content bool) messageView {
	v := messageView{ID: m.ID, Channel: m.Channel, Sender: m.Sender, ControlID: m.ControlID, Event: m.Event,
		Received: m.Received, Status: m.Status, ResponseCode: m.ResponseCode}
	if clinical {
		v.Patient = m.Patient
		if content {
			v.Raw, v.Response = string(m.Raw), string(m.Response)
		}
	}
	return v
}

// audit records operator reads of the archive in one transaction: one
// record per patient the answer names (so that each patient's trail shows
// who saw their hospital events), or one naming none.
func (s *Service) audit(r *http.Request, a directory.Actor, action, entity, outcome string, patients []string) error {
	recs := []store.AuditRecord{}
	seen := map[string]bool{}
	for _, p := range patients {
		if p != "" && !seen[p] {
			seen[p] = true
			recs = append(recs, store.AuditRecord{Tenant: a.Tenant, Time: s.now(), Agent: a.Reference(), Action: action,
				Entity: entity, Patient: p, Outcome: outcome})
		}
	}
	if len(recs) == 0 {
		recs = append(recs, store.AuditRecord{Tenant: a.Tenant, Time: s.now(), Agent: a.Reference(), Action: action,
			Entity: entity, Outcome: outcome})
	}
	return s.d.Store.Tx(context.WithoutCancel(r.Context()), func(tx store.Tx) error {
		for _, rec := range recs {
			if err := tx.Audit(r.Context(), rec); err != nil {
				return err
			}
		}
		return nil
	})
}

func operator(r *http.Request) (directory.Actor, bool, error) {
	a, _ := access.ActorFrom(r.Context())
	switch {
	case a.Has(directory.RoleCoordinator):
		return a, true, nil
	case a.Has(directory.RoleAdmin):
		return a, false, nil
	}
	return a, false, fhir.Errorf(fhir.Forbidden, "forbidden", "Réservé au coordinateur et à l'administrateur",
		"For the coordinator and the administrator only")
}

func (s *Service) listMessages(w http.ResponseWriter, r *http.Request) {
	a, clinical, err := operator(r)
	if err != nil {
		fhirapi.WriteError(w, r, s.log, err)
		return
	}
	q := r.URL.Query()
	entity := "api/messages?" + q.Encode()
	if !clinical && q.Get("patient") != "" {
		// Which messages concern a patient is the patient's data.
		_ = s.audit(r, a, "E", entity, "4", nil)
		fhirapi.WriteError(w, r, s.log, fhir.Errorf(fhir.Forbidden, "forbidden",
			"L'administrateur ne recherche pas les messages d'un patient", "The administrator does not search a patient's messages", "patient"))
		return
	}
	f := store.MessageFilter{Tenant: a.Tenant, Channel: q.Get("channel"), Sender: q.Get("sender"), ControlID: q.Get("control-id"),
		Patient: q.Get("patient"), Status: q.Get("status")}
	if v := q.Get("before"); v != "" {
		if f.Before, err = strconv.ParseInt(v, 10, 64); err != nil {
			fhirapi.WriteError(w, r, s.log, fhir.Errorf(fhir.Invalid, "value", "before invalide", "Invalid before", "before"))
			return
		}
	}
	if v := q.Get("_count"); v != "" {
		if f.Limit, err = strconv.Atoi(v); err != nil {
			fhirapi.WriteError(w, r, s.log, fhir.Errorf(fhir.Invalid, "value", "_count invalide", "Invalid _count", "_count"))
			return
		}
	}
	list, next, err := s.d.Store.Messages().List(r.Context(), f)
	if err != nil {
		fhirapi.WriteError(w, r, s.log, err)
		return
	}
	out := struct {
		Messages []messageView `json:"messages"`
		Next     int64         `json:"next,omitempty"`
	}{Messages: []messageView{}, Next: next}
	var patients []string
	for _, m := range list {
		out.Messages = append(out.Messages, view(m, clinical, false))
		if clinical {
			patients = append(patients, m.Patient)
		}
	}
	if err := s.audit(r, a, "E", entity, "0", patients); err != nil {
		fhirapi.WriteError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Service) getMessage(w http.ResponseWriter, r *http.Request) {
	a, content, err := operator(r)
	if err != nil {
		fhirapi.WriteError(w, r, s.log, err)
		return
	}
	m, err := s.d.Store.Messages().Get(r.Context(), r.PathValue("id"))
	if err == nil && m.Tenant != a.Tenant {
		err = store.ErrNotFound
	}
	if err != nil {
		fhirapi.WriteError(w, r, s.log, err)
		return
	}
	// The raw message is patient data: its reading is audited, and so is
	// the administrator's look at its metadata.
	var patients []string
	if content {
		patients = []string{m.Patient}
	}
	if err := s.audit(r, a, "R", store.MessageEntity(m.ID), "0", patients); err != nil {
		fhirapi.WriteError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, view(m, content, content))
}

func (s *Service) replayMessage(w http.ResponseWriter, r *http.Request) {
	a, _, err := operator(r)
	if err != nil {
		fhirapi.WriteError(w, r, s.log, err)
		return
	}
	m, err := s.d.Store.Messages().Get(r.Context(), r.PathValue("id"))
	if err == nil && m.Tenant != a.Tenant {
		err = store.ErrNotFound
	}
	if err == nil {
		err = s.Replay(r.Context(), m.ID)
	}
	var fe *fhir.Error
	switch {
	case err == nil:
		s.log.InfoContext(r.Context(), "message replayed", "message_id", m.ID, "by", a.Reference())
		writeJSON(w, http.StatusAccepted, map[string]string{"status": "queued", "id": m.ID})
	case errors.Is(err, store.ErrNotFound), errors.As(err, &fe):
		fhirapi.WriteError(w, r, s.log, err)
	default:
		fhirapi.WriteError(w, r, s.log, fhir.Errorf(fhir.Conflict, "business-rule", "Rejeu impossible : "+err.Error(), "Cannot replay: "+err.Error()))
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
