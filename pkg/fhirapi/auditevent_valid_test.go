package fhirapi

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/store"
)

// extIssues checks FHIR's ext-1 on every extension of a JSON tree: an
// extension has a value[x] or sub-extensions, not both, not neither. The
// project's validator knows only Passerelle's profiles, not the core
// AuditEvent, hence this walk.
func extIssues(path string, v any) []string {
	var out []string
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			if k == "extension" {
				for i, e := range c.([]any) {
					m := e.(map[string]any)
					values := 0
					for ek := range m {
						if len(ek) > 5 && ek[:5] == "value" {
							values++
						}
					}
					subs, _ := m["extension"].([]any)
					if values+len(subs) == 0 || values > 0 && len(subs) > 0 || values > 1 {
						out = append(out, fmt.Sprintf("%s.extension[%d] (%v)", path, i, m["url"]))
					}
				}
			}
			out = append(out, extIssues(path+"."+k, c)...)
		}
	case []any:
		for i, c := range x {
			out = append(out, extIssues(fmt.Sprintf("%s[%d]", path, i), c)...)
		}
	}
	return out
}

// TestAuditEventExtensionsValid: the first record of a chain (no previous
// hash) renders as valid FHIR too; a service agent is not a reference to a
// resource type that does not exist.
func TestAuditEventExtensionsValid(t *testing.T) {
	at := time.Date(2026, 11, 23, 9, 30, 0, 0, time.UTC)
	for _, rec := range []store.AuditRecord{
		{Seq: 1, Tenant: "demo", Time: at, Action: "R", Entity: "Observation/o1", Patient: "Patient/p1", Agent: "PractitionerRole/pr-1", Outcome: "0", Hash: "h1"},
		{Seq: 2, Tenant: "demo", Time: at, Action: "U", Entity: "Encounter/e1/_history/2", Patient: "Patient/p1", Agent: "System/intake", Outcome: "0",
			Detail: "message/m1", PrevHash: "h1", Hash: "h2"},
	} {
		raw := AuditEventOf(rec, "test")
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		if bad := extIssues("AuditEvent", m); len(bad) > 0 {
			t.Errorf("record %d breaks ext-1 at %v:\n%s", rec.Seq, bad, raw)
		}
		who, _ := m["agent"].([]any)[0].(map[string]any)["who"].(map[string]any)
		if ref, _ := who["reference"].(string); len(ref) > 7 && ref[:7] == "System/" {
			t.Errorf("record %d: agent.who.reference %q names no FHIR resource type", rec.Seq, ref)
		}
	}
}
