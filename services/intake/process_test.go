package intake_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/fhir"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// TestProcessInProcess: a caller in the same process (the ward's form)
// hands intake a message Bundle through Process, acting as a facility, and
// gets what $process-message answers: the response Bundle, the archived
// answer for the same message again, and the same refusals, archived the
// same way.
func TestProcessInProcess(t *testing.T) {
	r := newRig(t, false)
	ctx := context.Background()
	form := directory.Actor{Tenant: "demo", System: "web-form", FINESS: directory.DevHospitalFINES, Practitioner: "Practitioner/coord"}
	body, _ := json.Marshal(sample(t))
	status, answer, err := r.svc.Process(ctx, form, body)
	if err != nil || status != http.StatusOK {
		t.Fatalf("process: %d %v", status, err)
	}
	mh := entry(decode(t, answer), "MessageHeader")
	if mh["response"].(map[string]any)["code"] != "ok" || mh["response"].(map[string]any)["identifier"] != "0b6f3a52-8c1e-4a57-9a0e-1d2c3b4a5001" {
		t.Fatalf("answer: %s", answer)
	}
	msg := r.waitApplied("0b6f3a52-8c1e-4a57-9a0e-1d2c3b4a5001")
	if msg.Sender != directory.DevHospitalFINES || msg.Channel != "fhir" {
		t.Errorf("archived from %q on %q, want %s on fhir", msg.Sender, msg.Channel, directory.DevHospitalFINES)
	}
	if encs := r.search("Encounter"); len(encs) != 1 {
		t.Errorf("%d encounters, want 1", len(encs))
	}

	// The same message again: the first answer, nothing archived twice.
	status2, answer2, err := r.svc.Process(ctx, form, body)
	if err != nil || status2 != http.StatusOK || !bytes.Equal(answer, answer2) {
		t.Errorf("same message again: %d %v, same answer %v", status2, err, bytes.Equal(answer, answer2))
	}

	// A refusal is an error with where it is, and the refused message is
	// archived for the operators.
	bad := withIdentity(sample(t), "bad-no-identifier")
	entry(bad, "MessageHeader")["id"] = "bad-no-identifier"
	delete(entry(bad, "Patient"), "identifier")
	body, _ = json.Marshal(bad)
	_, _, err = r.svc.Process(ctx, form, body)
	var fe *fhir.Error
	if !errors.As(err, &fe) || fe.Kind != fhir.Invalid || len(fe.Issues) == 0 ||
		len(fe.Issues[0].Expression) == 0 || fe.Issues[0].Expression[0] != "Bundle.entry[1].resource.identifier" {
		t.Fatalf("no patient identifier: %v", err)
	}
	refused, _, err := r.store.Messages().List(ctx, store.MessageFilter{Tenant: "demo", Status: "rejected"})
	if err != nil || len(refused) != 1 || refused[0].ControlID != "bad-no-identifier" {
		t.Errorf("refused messages archived: %+v %v", refused, err)
	}

	// Only a facility's system sends messages.
	person := directory.Actor{Tenant: "demo", Practitioner: "Practitioner/coord"}
	if _, _, err := r.svc.Process(ctx, person, body); !errors.As(err, &fe) || fe.Kind != fhir.Forbidden {
		t.Errorf("a person sent a message: %v", err)
	}
}
