package intake

import (
	"testing"

	"github.com/passerelle-sante/passerelle/pkg/intake"
)

// TestInboundOrderKey: an inbound event is ordered by the facility's own
// identifier of the patient (never the INS, whose qualification may change
// between messages), else by its stay.
func TestInboundOrderKey(t *testing.T) {
	stay := intake.Encounter{Identifier: intake.Identifier{System: "urn:oid:1.2.3.4", Value: "V1"}}
	ins := intake.Identifier{System: insNIRSystem, Value: "180000000000000", Type: "INS-NIR"}
	ipp := intake.Identifier{System: "urn:oid:1.2.3.5", Value: "IPP1", Type: "PI"}
	for _, tc := range []struct {
		name string
		ids  []intake.Identifier
		want string
	}{
		{"IPP", []intake.Identifier{ipp}, "Patient|urn:oid:1.2.3.5|IPP1"},
		{"INS first, then the IPP", []intake.Identifier{{System: insNIRSystem, Value: "1"}, ipp}, "Patient|urn:oid:1.2.3.5|IPP1"},
		{"a visit number is not the patient", []intake.Identifier{{System: "urn:oid:9", Value: "N", Type: "VN"}}, "Encounter|urn:oid:1.2.3.4|V1"},
		{"INS only", []intake.Identifier{ins}, "Encounter|urn:oid:1.2.3.4|V1"},
		{"no identifier", nil, "Encounter|urn:oid:1.2.3.4|V1"},
	} {
		ev := intake.Event{Encounter: stay, Patient: intake.Patient{Identifiers: tc.ids, INS: &ins, Qualified: true}}
		if got := inboundOrderKey(ev); got != tc.want {
			t.Errorf("%s: order key %q, want %q", tc.name, got, tc.want)
		}
	}
}
