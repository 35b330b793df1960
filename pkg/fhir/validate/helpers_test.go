package validate

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	fhirprofiles "github.com/passerelle-sante/passerelle/fhir-profiles"
	"github.com/passerelle-sante/passerelle/pkg/fhir/profile"
)

var (
	embeddedOnce sync.Once
	embedded     *Validator
	embeddedErr  error
)

// newValidator returns the validator of the package built into the binary,
// compiled once for all tests.
func newValidator(tb testing.TB) *Validator {
	tb.Helper()
	embeddedOnce.Do(func() {
		reg, err := profile.Load(fhirprofiles.FS())
		if err != nil {
			embeddedErr = err
			return
		}
		embedded, embeddedErr = New(reg)
	})
	if embeddedErr != nil {
		tb.Fatal(embeddedErr)
	}
	return embedded
}

func readTestdata(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func errorsOnly(issues []Issue) []Issue {
	var out []Issue
	for _, i := range issues {
		if i.Severity == "error" || i.Severity == "fatal" {
			out = append(out, i)
		}
	}
	return out
}
