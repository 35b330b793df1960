package intake

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/google/uuid"

	"github.com/passerelle-sante/passerelle/pkg/access"
	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/fhir"
	"github.com/passerelle-sante/passerelle/pkg/fhirapi"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// OperationURL defines $process-message for the CapabilityStatement.
const OperationURL = "http://hl7.org/fhir/OperationDefinition/MessageHeader-process-message"

// Register adds $process-message to mux.
func (s *Service) Register(mux *http.ServeMux, authn func(http.Handler) http.Handler) {
	mux.Handle("POST /fhir/$process-message", authn(http.HandlerFunc(s.processMessage)))
}

// maxMessage bounds a message's body. It leaves room for a lettre de liaison
// of several megabytes (base64 in the DocumentReference): the letter is
// archived and stored, and the events refer to it, so its size never reaches
// the bus.
const maxMessage = 16 << 20

// AfterAccept, set by crash tests only, runs once a message is stored and
// before it is answered.
var AfterAccept func()

func (s *Service) processMessage(w http.ResponseWriter, r *http.Request) {
	act, _ := access.ActorFrom(r.Context())
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxMessage))
	if err != nil && act.System != "" && act.FINESS != "" {
		fhirapi.WriteError(w, r, s.log, fhir.Errorf(fhir.TooLarge, "too-costly", "Message trop volumineux", "Message too large"))
		return
	}
	status, answer, err := s.Process(r.Context(), act, body)
	if err != nil {
		fhirapi.WriteError(w, r, s.log, err)
		return
	}
	w.Header().Set("Content-Type", fhirapi.ContentType)
	w.WriteHeader(status)
	_, _ = w.Write(answer)
}

// Process takes a FHIR message Bundle from act, a hospital system with its
// FINESS ($process-message, or the ward's form acting as its facility):
// validated, de-duplicated, archived with its inbound event, then answered.
// The answer is the response Bundle (200), or, for a message received
// before, the answer archived with it and its status. A refusal is an
// error (*fhir.Error for the sender's mistakes, archived when the message
// could be read).
func (s *Service) Process(ctx context.Context, act directory.Actor, body []byte) (status int, answer []byte, err error) {
	if act.System == "" || act.FINESS == "" {
		return 0, nil, fhir.Errorf(fhir.Forbidden, "forbidden",
			"Seul le système d'information d'un établissement enregistré envoie des messages",
			"Only a registered hospital system sends messages")
	}
	// What runs below reads the acting system from the context, as it
	// does for a request.
	ctx = access.WithActor(ctx, act)
	var compact bytes.Buffer
	if err := json.Compact(&compact, body); err != nil {
		return 0, nil, fhir.Errorf(fhir.Invalid, "structure", "JSON mal formé : "+err.Error(), "Malformed JSON: "+err.Error())
	}
	msg, err := decodeMessage(body)
	if err != nil {
		return 0, nil, err
	}
	h := &msg.res[0]
	key, err := msg.key(h, act.FINESS)
	if err != nil {
		return 0, nil, err
	}
	// The key is the sender's own: one hospital cannot take another's.
	key = act.FINESS + "|" + key
	hash := hashOf(compact.Bytes())
	if prev, err := s.d.Store.Messages().FindKey(ctx, s.d.Tenant, "fhir", key); err == nil {
		return answerArchived(prev, hash)
	} else if !errors.Is(err, store.ErrNotFound) {
		return 0, nil, err
	}
	if prev, err := s.d.Store.Messages().FindKey(ctx, s.d.Tenant, "fhir", rejectedKey(key, hash)); err == nil {
		// The same refused message again: the same answer.
		return answerArchived(prev, hash)
	}

	// The sender must be the calling system's own facility.
	if sender := msg.facilityOf(h.Sender); h.Sender != nil && sender != act.FINESS {
		return 0, nil, forbiddenFacility("Bundle.entry[0].resource.sender")
	}
	arch := store.Message{Tenant: s.d.Tenant, Channel: "fhir", Sender: act.FINESS, Key: key, Hash: hash, ControlID: h.ID,
		Received: s.now(), Raw: compact.Bytes()}
	reject := func(err error) (int, []byte, error) {
		fe := fhir.FromError(err)
		// A refused message is archived for the operators, under a key of
		// its own content: it does not hold the message's identity, so the
		// sender can correct it and send it again.
		arch.Key = rejectedKey(key, hash)
		arch.Status, arch.Event, arch.Response, arch.ResponseCode = "rejected", "rejected", fe.OperationOutcome(), fhirapi.Status(fe.Kind)
		if _, _, aerr := s.accept(ctx, arch, nil); aerr != nil {
			s.log.ErrorContext(ctx, "refused message not archived", "error", aerr)
		}
		return 0, nil, fe
	}
	if s.d.Validator != nil {
		if issues := s.d.Validator.ValidateBundle(body); hasErrors(issues) {
			return reject(&fhir.Error{Kind: fhir.Invalid, Issues: issues})
		}
	}
	_, kind, err := msg.header()
	if err != nil {
		return reject(err)
	}
	ev, err := msg.toEvent(h, kind, s.d.Production)
	if err != nil {
		return reject(err)
	}
	if ev.Facility.FINESS != "" && ev.Facility.FINESS != act.FINESS {
		return 0, nil, forbiddenFacility(fmt.Sprintf("Bundle.entry[%d].resource.serviceProvider", msg.byRef[h.Focus[0].Reference]))
	}
	ev.Facility.FINESS = act.FINESS
	if err := s.checkFHIRIdentifiers(ctx, ev); err != nil {
		// A refusal is archived; a storage error is not the message's.
		if fe := (*fhir.Error)(nil); errors.As(err, &fe) {
			return reject(err)
		}
		return 0, nil, err
	}
	ev.Trace = fhirapi.TraceParent(ctx)
	arch.Status, arch.Event, arch.ResponseCode = "accepted", kind, http.StatusOK
	arch.ID = uuid.NewString()
	arch.Response = s.responseBundle(h, "ok", nil)
	got, created, err := s.accept(ctx, arch, &ev)
	if errors.Is(err, store.ErrTooLarge) {
		// Its event would not fit on the bus: refused, not acknowledged.
		return reject(err)
	}
	if err != nil {
		return 0, nil, err
	}
	if !created {
		return answerArchived(got, hash)
	}
	if AfterAccept != nil {
		AfterAccept()
	}
	s.log.InfoContext(ctx, "message accepted", "message_id", got.ID, "event", kind, "sender", act.FINESS)
	return http.StatusOK, got.Response, nil
}

func hasErrors(issues []fhir.Issue) bool {
	for _, i := range issues {
		if i.Severity == "error" || i.Severity == "fatal" {
			return true
		}
	}
	return false
}

func forbiddenFacility(expr string) error {
	return fhir.Errorf(fhir.Forbidden, "forbidden",
		"Un établissement n'envoie des messages que pour lui-même (FINESS)",
		"A facility sends messages for itself only (FINESS)", expr)
}

// answerArchived answers a message already received: the same content gets
// the original answer; the same key with other content gets 409.
func answerArchived(m store.Message, hash string) (int, []byte, error) {
	if m.Hash != hash {
		return 0, nil, fhir.Errorf(fhir.Conflict, "duplicate",
			"Un autre message porte déjà cet identifiant (Bundle.identifier ou MessageHeader.id)",
			"Another message already has this identity (Bundle.identifier or MessageHeader.id)", "Bundle.identifier")
	}
	return m.ResponseCode, m.Response, nil
}

// responseBundle is the response message (FHIR messaging): a MessageHeader
// whose response points to the message received.
func (s *Service) responseBundle(h *messageHeader, code string, outcome json.RawMessage) []byte {
	id := uuid.NewString()
	mh := map[string]any{
		"resourceType": "MessageHeader", "id": id,
		"eventCoding": map[string]any{"system": SystemEvent, "code": h.EventCoding.Code},
		"source":      map[string]any{"name": "Passerelle", "endpoint": s.d.PublicURL + "/fhir"},
		"response":    map[string]any{"identifier": h.ID, "code": code},
	}
	entries := []any{map[string]any{"fullUrl": "urn:uuid:" + id, "resource": mh}}
	if outcome != nil {
		oid := uuid.NewString()
		mh["response"].(map[string]any)["details"] = map[string]any{"reference": "urn:uuid:" + oid}
		entries = append(entries, map[string]any{"fullUrl": "urn:uuid:" + oid, "resource": outcome})
	}
	b, _ := json.Marshal(map[string]any{
		"resourceType": "Bundle", "id": uuid.NewString(), "type": "message",
		"timestamp": s.now().In(clockParis()).Format("2006-01-02T15:04:05-07:00"), "entry": entries,
	})
	return b
}

// rejectedKey archives a refused message under its content, apart from the
// accepted messages' keys.
func rejectedKey(key, hash string) string { return key + "|rejected|" + hash }
