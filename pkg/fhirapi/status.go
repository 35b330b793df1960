package fhirapi

import (
	"net/http"

	"github.com/passerelle-sante/passerelle/pkg/fhir"
)

// statuses is the one table from an error's kind to its HTTP status
// (docs/architecture.md, "Errors"). Every handler that answers an
// OperationOutcome, and the web pages that show one, take the status from it.
var statuses = map[fhir.Kind]int{
	fhir.Invalid:         http.StatusBadRequest,
	fhir.Unprocessable:   http.StatusUnprocessableEntity,
	fhir.Unauthenticated: http.StatusUnauthorized,
	fhir.Forbidden:       http.StatusForbidden,
	fhir.NotFound:        http.StatusNotFound,
	fhir.Gone:            http.StatusGone,
	fhir.Conflict:        http.StatusConflict,
	fhir.Stale:           http.StatusPreconditionFailed,
	fhir.TooLarge:        http.StatusRequestEntityTooLarge,
	fhir.Unsupported:     http.StatusUnsupportedMediaType,
	fhir.Unavailable:     http.StatusServiceUnavailable,
	fhir.Internal:        http.StatusInternalServerError,
}

// Status is the HTTP status that answers an error of kind k; a kind
// outside the table (an Error built without one) is internal: 500.
func Status(k fhir.Kind) int {
	if s, ok := statuses[k]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// ServerFault reports whether an error of kind k is the server's (a 5xx):
// such errors are logged in full and shown generically.
func ServerFault(k fhir.Kind) bool { return Status(k) >= 500 }

// KindOf is the kind of an error answered with an HTTP status: the reverse
// of Status, for a caller that only has an answer's status (an archived
// answer given again). A status outside the table is internal.
func KindOf(status int) fhir.Kind {
	for k, s := range statuses {
		if s == status {
			return k
		}
	}
	return fhir.Internal
}
