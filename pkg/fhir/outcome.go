// Package fhir holds what every part of Passerelle needs of FHIR R4 beyond
// the generated models: OperationOutcome errors that say what is wrong and
// where, bilingual messages, and small JSON helpers.
package fhir

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/passerelle-sante/passerelle/pkg/store"
)

// Issue is one OperationOutcome issue.
type Issue struct {
	// Severity: fatal, error, warning, information.
	Severity string
	// Code from the FHIR issue-type value set: invalid, structure, required,
	// value, invariant, security, login, forbidden, not-found, conflict,
	// duplicate, not-supported, processing, exception, business-rule…
	Code string
	// French and English texts. The French one goes first in details.text.
	FR, EN string
	// Expression locates the problem (FHIRPath, or the search parameter).
	Expression []string
}

// Error is an error that becomes an OperationOutcome. Its Kind decides the
// HTTP status or the HL7 acknowledgment, at the edge that answers.
type Error struct {
	Kind   Kind
	Issues []Issue
	// Err is the underlying error, logged, never shown.
	Err error
}

func (e *Error) Error() string {
	var parts []string
	for _, i := range e.Issues {
		s := i.EN
		if len(i.Expression) > 0 {
			s += " (" + strings.Join(i.Expression, ", ") + ")"
		}
		parts = append(parts, s)
	}
	msg := strings.Join(parts, "; ")
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an Error of kind k with one issue: its FHIR issue type
// code, the French and English texts, and where the problem is.
func Errorf(k Kind, code, fr, en string, expr ...string) *Error {
	return &Error{Kind: k, Issues: []Issue{{Severity: "error", Code: code, FR: fr, EN: en, Expression: expr}}}
}

// FromError maps any error to an Error, once, at the edge: typed store
// errors get their kind; unknown errors are internal and shown generically.
func FromError(err error) *Error {
	var fe *Error
	if errors.As(err, &fe) {
		return fe
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return &Error{Kind: NotFound, Err: err, Issues: []Issue{{Severity: "error", Code: "not-found",
			FR: "Ressource introuvable", EN: "Resource not found"}}}
	case errors.Is(err, store.ErrGone):
		return &Error{Kind: Gone, Err: err, Issues: []Issue{{Severity: "error", Code: "deleted",
			FR: "Ressource supprimée", EN: "Resource deleted"}}}
	case errors.Is(err, store.ErrVersionConflict):
		return &Error{Kind: Stale, Err: err, Issues: []Issue{{Severity: "error", Code: "conflict",
			FR: "La version indiquée (If-Match) n'est plus la version courante", EN: "The version given in If-Match is not the current version"}}}
	case errors.Is(err, store.ErrExists):
		return &Error{Kind: Conflict, Err: err, Issues: []Issue{{Severity: "error", Code: "duplicate",
			FR: "Une ressource porte déjà cet identifiant", EN: "A resource with this id already exists"}}}
	case errors.Is(err, store.ErrKeyInUse):
		return &Error{Kind: Conflict, Err: err, Issues: []Issue{{Severity: "error", Code: "conflict",
			FR: "Une requête avec la même clé d'idempotence est en cours de traitement", EN: "A request with the same Idempotency-Key is in progress"}}}
	case errors.Is(err, store.ErrTooLarge):
		return &Error{Kind: TooLarge, Err: err, Issues: []Issue{{Severity: "error", Code: "too-costly",
			FR: "Message trop volumineux pour être transmis aux services ; les documents sont à joindre dans une DocumentReference",
			EN: "Message too large to be passed on to the services; documents belong in a DocumentReference"}}}
	case errors.Is(err, store.ErrInvalid):
		msg := strings.TrimPrefix(err.Error(), store.ErrInvalid.Error()+": ")
		return &Error{Kind: Invalid, Err: err, Issues: []Issue{{Severity: "error", Code: "invalid",
			FR: "Requête invalide : " + msg, EN: "Invalid request: " + msg}}}
	}
	return &Error{Kind: Internal, Err: err, Issues: []Issue{{Severity: "error", Code: "exception",
		FR: "Erreur interne du serveur", EN: "Internal server error"}}}
}

// OperationOutcome renders the error as a FHIR OperationOutcome.
func (e *Error) OperationOutcome() json.RawMessage {
	return OperationOutcome(e.Issues)
}

// OperationOutcome renders issues as a FHIR OperationOutcome. Each issue's
// details.text carries the French text, then the English one.
func OperationOutcome(issues []Issue) json.RawMessage {
	type details struct {
		Text string `json:"text"`
	}
	type issue struct {
		Severity    string   `json:"severity"`
		Code        string   `json:"code"`
		Details     details  `json:"details"`
		Diagnostics string   `json:"diagnostics,omitempty"`
		Expression  []string `json:"expression,omitempty"`
	}
	out := struct {
		ResourceType string  `json:"resourceType"`
		Issue        []issue `json:"issue"`
	}{ResourceType: "OperationOutcome"}
	for _, i := range issues {
		text := i.FR
		if i.EN != "" && i.EN != i.FR {
			text = fmt.Sprintf("%s / %s", i.FR, i.EN)
		}
		out.Issue = append(out.Issue, issue{Severity: i.Severity, Code: i.Code, Details: details{Text: text}, Diagnostics: i.EN, Expression: i.Expression})
	}
	b, _ := json.Marshal(out)
	return b
}
