package fhirapi

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/store"
)

func TestAuditEventShapes(t *testing.T) {
	at := time.Date(2026, 11, 23, 9, 30, 0, 0, time.UTC)
	cases := []struct {
		name                          string
		rec                           store.AuditRecord
		typ, subtype, profile, entity string
	}{
		{"read", store.AuditRecord{Action: "R", Entity: "Observation/o1", Patient: "Patient/p1", Agent: "PractitionerRole/pr-1", Outcome: "0"},
			"rest", "read", "IHE.BasicAudit.PatientRead", "Observation/o1"},
		{"vread", store.AuditRecord{Action: "R", Entity: "Task/t1/_history/2", Patient: "Patient/p1", Agent: "PractitionerRole/pr-1", Outcome: "0"},
			"rest", "vread", "IHE.BasicAudit.PatientRead", "Task/t1/_history/2"},
		{"history", store.AuditRecord{Action: "R", Entity: "Task/t1/_history", Patient: "Patient/p1", Agent: "PractitionerRole/pr-1", Outcome: "0"},
			"rest", "history-instance", "IHE.BasicAudit.PatientRead", "Task/t1/_history"},
		{"search", store.AuditRecord{Action: "E", Entity: "Observation?patient=Patient/p1", Patient: "Patient/p1", Agent: "PractitionerRole/pr-1", Outcome: "0"},
			"rest", "search-type", "IHE.BasicAudit.PatientQuery", ""},
		{"create", store.AuditRecord{Action: "C", Entity: "Observation/o2/_history/1", Patient: "Patient/p1", Agent: "PractitionerRole/pr-1", Outcome: "0"},
			"rest", "create", "IHE.BasicAudit.PatientCreate", "Observation/o2/_history/1"},
		{"update", store.AuditRecord{Action: "U", Entity: "Task/t1/_history/3", Patient: "Patient/p1", Agent: "Device/client-x", Outcome: "0"},
			"rest", "update", "IHE.BasicAudit.PatientUpdate", "Task/t1/_history/3"},
		{"login", store.AuditRecord{Action: "E", Entity: AuditLogin, Agent: "PractitionerRole/pr-1", Outcome: "0"},
			"110114", "110122", "IHE.BasicAudit.Login", ""},
		{"failed login", store.AuditRecord{Action: "E", Entity: AuditLogin, Outcome: "4", Detail: "mallory"},
			"110114", "110122", "IHE.BasicAudit.Login", ""},
		{"logout", store.AuditRecord{Action: "E", Entity: AuditLogout, Agent: "PractitionerRole/pr-1", Outcome: "0"},
			"110114", "110123", "IHE.BasicAudit.Logout", ""},
	}
	for i, tc := range cases {
		tc.rec.Seq, tc.rec.Time, tc.rec.Tenant, tc.rec.Hash = int64(i+1), at, "demo", "h"
		var ev struct {
			ResourceType, ID, Action, Recorded, Outcome string
			Meta                                        struct{ Profile []string }
			Type                                        struct{ Code string }
			Subtype                                     []struct{ Code string }
			Agent                                       []struct {
				Who   *struct{ Reference string }
				AltID string
			}
			Entity []struct {
				What  struct{ Reference string }
				Query string
			}
		}
		raw := AuditEventOf(tc.rec, "test")
		if err := json.Unmarshal(raw, &ev); err != nil {
			t.Fatal(err)
		}
		// FHIR JSON element names are case-sensitive.
		if strings.Contains(string(raw), `"Coding"`) || !strings.Contains(string(raw), `"agent":[{"type":{"coding":[`) {
			t.Errorf("%s: agent type not FHIR JSON: %s", tc.name, raw)
		}
		if ev.ResourceType != "AuditEvent" || ev.ID != auditID(tc.rec.Seq) || ev.Action != tc.rec.Action || ev.Outcome != tc.rec.Outcome ||
			ev.Recorded != "2026-11-23T09:30:00Z" {
			t.Errorf("%s: %+v", tc.name, ev)
		}
		if ev.Type.Code != tc.typ || len(ev.Subtype) != 1 || ev.Subtype[0].Code != tc.subtype {
			t.Errorf("%s: type %s subtype %+v", tc.name, ev.Type.Code, ev.Subtype)
		}
		if len(ev.Meta.Profile) != 1 || ev.Meta.Profile[0] != "https://profiles.ihe.net/ITI/BALP/StructureDefinition/"+tc.profile {
			t.Errorf("%s: profile %v", tc.name, ev.Meta.Profile)
		}
		if len(ev.Agent) != 1 {
			t.Fatalf("%s: agents %+v", tc.name, ev.Agent)
		}
		if tc.rec.Agent != "" && (ev.Agent[0].Who == nil || ev.Agent[0].Who.Reference != tc.rec.Agent) {
			t.Errorf("%s: agent %+v", tc.name, ev.Agent[0])
		}
		if tc.rec.Agent == "" && ev.Agent[0].AltID != tc.rec.Detail {
			t.Errorf("%s: the account tried is not named: %+v", tc.name, ev.Agent[0])
		}
		var entities, patient, query string
		for _, e := range ev.Entity {
			switch {
			case e.What.Reference == tc.rec.Patient:
				patient = e.What.Reference
			case e.Query != "":
				q, _ := base64.StdEncoding.DecodeString(e.Query)
				query = string(q)
			default:
				entities = e.What.Reference
			}
		}
		if entities != tc.entity || patient != tc.rec.Patient {
			t.Errorf("%s: entity %q patient %q", tc.name, entities, patient)
		}
		if tc.subtype == "search-type" && query != tc.rec.Entity {
			t.Errorf("%s: query %q", tc.name, query)
		}
	}
}
