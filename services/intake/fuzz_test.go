package intake

import (
	"errors"
	"os"
	"testing"

	"github.com/passerelle-sante/passerelle/pkg/fhir"
)

// FuzzDecodeMessage feeds arbitrary bytes to the message decoder and the
// mapping to intake events: they never panic, every refusal is an
// OperationOutcome error with an expression or a clear reason, and an
// accepted message always names its stay.
func FuzzDecodeMessage(f *testing.F) {
	seed, err := os.ReadFile("testdata/discharge-hf-declared-team.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(`{"resourceType":"Bundle","type":"message","entry":[{"resource":{"resourceType":"MessageHeader"}}]}`))
	f.Add([]byte(`{"resourceType":"Bundle","type":"message","entry":[]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := decodeMessage(body)
		if err != nil {
			var fe *fhir.Error
			if !errors.As(err, &fe) || fe.Kind != fhir.Invalid {
				t.Fatalf("decode error is not an invalid-kind OperationOutcome: %v", err)
			}
			return
		}
		h, kind, err := m.header()
		if err != nil {
			return
		}
		ev, err := m.toEvent(h, kind, true)
		if err != nil {
			var fe *fhir.Error
			if !errors.As(err, &fe) || len(fe.Issues) == 0 {
				t.Fatalf("mapping error is not an OperationOutcome: %v", err)
			}
			return
		}
		if ev.Encounter.Identifier.Value == "" || ev.Kind == "" {
			t.Fatalf("accepted without a stay: %+v", ev)
		}
		if ev.Patient.INS == nil && len(ev.Patient.Identifiers) == 0 {
			t.Fatalf("accepted without a patient identifier")
		}
	})
}
