package intake_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/passerelle-sante/passerelle/pkg/store"
)

// TestArchiveLooksAudited: the administrator's list names no patient and
// cannot be filtered by patient; every look at the archive, the
// coordinator's list too, leaves an audit record, naming the patients the
// coordinator saw.
func TestArchiveLooksAudited(t *testing.T) {
	r := newRig(t, false)
	if s, b := r.post(sample(t)); s != 200 {
		t.Fatalf("%d %s", s, b)
	}
	msg := r.waitApplied("0b6f3a52-8c1e-4a57-9a0e-1d2c3b4a5001")
	trail := func(agent string) []store.AuditRecord {
		t.Helper()
		recs, err := r.store.AuditLog().Find(context.Background(), store.AuditFilter{Tenant: "demo"})
		if err != nil {
			t.Fatal(err)
		}
		var out []store.AuditRecord
		for _, rec := range recs {
			if rec.Agent == agent && strings.HasPrefix(rec.Entity, "api/messages") {
				out = append(out, rec)
			}
		}
		return out
	}

	r.client = "admin"
	status, list := r.get("GET", "/api/messages")
	if b, _ := json.Marshal(list); status != 200 || strings.Contains(string(b), msg.Patient) || strings.Contains(string(b), `"patient"`) {
		t.Errorf("the administrator's list names a patient: %d %s", status, b)
	}
	if status, _ := r.get("GET", "/api/messages?patient="+msg.Patient); status != 403 {
		t.Errorf("the administrator searched a patient's messages: %d", status)
	}
	if _, one := r.get("GET", "/api/messages/"+msg.ID); one["patient"] != nil {
		t.Errorf("the administrator read a message's patient: %v", one)
	}
	if recs := trail("PractitionerRole/pr-admin"); len(recs) != 3 || recs[0].Patient != "" || recs[1].Outcome != "4" {
		t.Errorf("the administrator's looks at the archive: %+v", recs)
	}

	r.client = "coord.cpts"
	if status, list := r.get("GET", "/api/messages"); status != 200 || len(list["messages"].([]any)) != 1 {
		t.Fatalf("coordinator's list: %d %v", status, list)
	}
	recs := trail("PractitionerRole/pr-coord-cpts")
	if len(recs) != 1 || recs[0].Patient != msg.Patient || recs[0].Action != "E" {
		t.Errorf("the coordinator's list is not in the patient's trail: %+v", recs)
	}
}
