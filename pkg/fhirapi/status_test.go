package fhirapi

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/passerelle-sante/passerelle/pkg/fhir"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// TestStatus: every kind has its status, and a status names one kind only,
// so that an answer read back (KindOf) is the error that was answered.
func TestStatus(t *testing.T) {
	want := map[fhir.Kind]int{
		fhir.Invalid:         400,
		fhir.Unprocessable:   422,
		fhir.Unauthenticated: 401,
		fhir.Forbidden:       403,
		fhir.NotFound:        404,
		fhir.Gone:            410,
		fhir.Conflict:        409,
		fhir.Stale:           412,
		fhir.TooLarge:        413,
		fhir.Unsupported:     415,
		fhir.Unavailable:     503,
		fhir.Internal:        500,
	}
	for _, k := range fhir.Kinds {
		t.Run(string(k), func(t *testing.T) {
			if _, ok := statuses[k]; !ok {
				t.Fatalf("kind %s has no status in the table", k)
			}
			if got := Status(k); got != want[k] {
				t.Errorf("Status(%s) = %d, want %d", k, got, want[k])
			}
			if got := KindOf(Status(k)); got != k {
				t.Errorf("KindOf(%d) = %s, want %s", Status(k), got, k)
			}
			if ServerFault(k) != (want[k] >= 500) {
				t.Errorf("ServerFault(%s) = %v", k, ServerFault(k))
			}
		})
	}
	if len(statuses) != len(fhir.Kinds) {
		t.Errorf("the table has %d kinds, fhir.Kinds %d", len(statuses), len(fhir.Kinds))
	}
	if got := Status(""); got != http.StatusInternalServerError {
		t.Errorf("an Error without a kind: %d, want 500", got)
	}
	if got := KindOf(http.StatusTeapot); got != fhir.Internal {
		t.Errorf("KindOf(418) = %s, want internal", got)
	}
}

// TestWriteError: the answer's status comes from the error's kind, a store
// error's too, with the OperationOutcome as body.
func TestWriteError(t *testing.T) {
	cases := []struct {
		name   string
		err    error
		status int
		code   string
	}{
		{"domain", fhir.Errorf(fhir.Forbidden, "forbidden", "Cette tâche n'est pas à vous", "This task is not yours", "Task.owner"), 403, `"code":"forbidden"`},
		{"store", store.ErrVersionConflict, 412, `"code":"conflict"`},
		{"unknown", errors.New("disk full"), 500, `"code":"exception"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			WriteError(rec, httptest.NewRequest(http.MethodGet, "/fhir/Task/t1", nil), nil, c.err)
			if rec.Code != c.status || !strings.Contains(rec.Body.String(), c.code) || rec.Header().Get("Content-Type") != ContentType {
				t.Errorf("%d %s %s, want %d with %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body, c.status, c.code)
			}
			if c.name == "unknown" && strings.Contains(rec.Body.String(), "disk full") {
				t.Errorf("an internal error's detail is shown: %s", rec.Body)
			}
		})
	}
}
