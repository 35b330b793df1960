package intake

import (
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
// list and replays, but never a message's content (patient data).
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

func view(m store.Message, content bool) messageView {
	v := messageView{ID: m.ID, Channel: m.Channel, Sender: m.Sender, ControlID: m.ControlID, Event: m.Event, Patient: m.Patient,
		Received: m.Received, Status: m.Status, ResponseCode: m.ResponseCode}
	if content {
		v.Raw, v.Response = string(m.Raw), string(m.Response)
	}
	return v
}

func operator(r *http.Request) (directory.Actor, bool, error) {
	a, _ := access.ActorFrom(r.Context())
	switch {
	case a.Has(directory.RoleCoordinator):
		return a, true, nil
	case a.Has(directory.RoleAdmin):
		return a, false, nil
	}
	return a, false, fhir.Errorf(http.StatusForbidden, "forbidden", "Réservé au coordinateur et à l'administrateur",
		"For the coordinator and the administrator only")
}

func (s *Service) listMessages(w http.ResponseWriter, r *http.Request) {
	a, _, err := operator(r)
	if err != nil {
		fhirapi.WriteError(w, r, s.log, err)
		return
	}
	q := r.URL.Query()
	f := store.MessageFilter{Tenant: a.Tenant, Channel: q.Get("channel"), Sender: q.Get("sender"), ControlID: q.Get("control-id"),
		Patient: q.Get("patient"), Status: q.Get("status")}
	if v := q.Get("before"); v != "" {
		if f.Before, err = strconv.ParseInt(v, 10, 64); err != nil {
			fhirapi.WriteError(w, r, s.log, fhir.Errorf(http.StatusBadRequest, "value", "before invalide", "Invalid before", "before"))
			return
		}
	}
	if v := q.Get("_count"); v != "" {
		if f.Limit, err = strconv.Atoi(v); err != nil {
			fhirapi.WriteError(w, r, s.log, fhir.Errorf(http.StatusBadRequest, "value", "_count invalide", "Invalid _count", "_count"))
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
	for _, m := range list {
		out.Messages = append(out.Messages, view(m, false))
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
	if content {
		// The raw message is patient data: its reading is audited.
		rec := store.AuditRecord{Tenant: a.Tenant, Time: s.now(), Agent: a.Reference(), Action: "R",
			Entity: "message/" + m.ID, Patient: m.Patient, Outcome: "0"}
		if err := s.d.Store.Tx(r.Context(), func(tx store.Tx) error { return tx.Audit(r.Context(), rec) }); err != nil {
			fhirapi.WriteError(w, r, s.log, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, view(m, content))
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
		fhirapi.WriteError(w, r, s.log, fhir.Errorf(http.StatusConflict, "business-rule", "Rejeu impossible : "+err.Error(), "Cannot replay: "+err.Error()))
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
