package intake_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/access"
	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/directory"
	ev "github.com/passerelle-sante/passerelle/pkg/intake"
	"github.com/passerelle-sante/passerelle/pkg/store"
	"github.com/passerelle-sante/passerelle/services/intake"
)

// secondFINESS is a second hospital of the territory (fictitious, valid
// Luhn key), registered with its own system client as an administrator
// would.
const (
	secondFINESS = "420000010"
	secondClient = "chx-autre-dpi"
)

// addSecondFacility registers the second hospital and its client, and
// returns a $process-message endpoint authenticated as that client.
func (r *rig) addSecondFacility(t *testing.T) string {
	t.Helper()
	err := r.store.Tx(context.Background(), func(tx store.Tx) error {
		for _, res := range []map[string]any{
			{"resourceType": "Organization", "id": "ch-autre", "active": true, "name": "CH Autre",
				"identifier": []any{map[string]any{"system": directory.SystemFINESS, "value": secondFINESS},
					map[string]any{"system": directory.SystemHL7NS, "value": "CHAUTRE"}}},
			{"resourceType": "Device", "id": "client-" + secondClient, "status": "active",
				"identifier": []any{map[string]any{"system": directory.SystemClientID, "value": secondClient}},
				"owner":      map[string]any{"reference": "Organization/ch-autre"}},
		} {
			b, _ := json.Marshal(res)
			if _, err := tx.Create(context.Background(), "demo", b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	r.svc.Register(mux, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			a, err := r.dir.System(req.Context(), "demo", secondClient)
			if err != nil {
				http.Error(w, err.Error(), http.StatusForbidden)
				return
			}
			h.ServeHTTP(w, req.WithContext(access.WithActor(req.Context(), a)))
		})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

func postTo(t *testing.T, base string, m any) (int, []byte) {
	t.Helper()
	body, _ := json.Marshal(m)
	res, err := http.Post(base+"/fhir/$process-message", "application/fhir+json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

// fromSecond turns the sample into a message of the second hospital, with
// identity status provisional (so that the INS is no key: the IPP is), a
// new name and phone, and the given IPP and visit namespaces.
func fromSecond(t *testing.T, id, ippSystem, visitSystem string) map[string]any {
	m := withIdentity(sample(t), id)
	entry(m, "MessageHeader")["id"] = id
	p := entry(m, "Patient")
	p["extension"].([]any)[0].(map[string]any)["extension"].([]any)[0].(map[string]any)["valueCoding"].(map[string]any)["code"] = "PROV"
	p["identifier"].([]any)[1].(map[string]any)["system"] = ippSystem
	p["name"] = []any{map[string]any{"use": "official", "family": "HACKED", "given": []any{"MALLORY"}}}
	p["telecom"] = []any{map[string]any{"system": "phone", "value": "+33 6 66 66 66 66", "use": "home"}}
	enc := entry(m, "Encounter")
	enc["identifier"].([]any)[0].(map[string]any)["system"] = visitSystem
	enc["serviceProvider"] = map[string]any{"identifier": map[string]any{"system": directory.SystemFINESS, "value": secondFINESS}}
	return m
}

// TestSecondFacilityCannotTakeOverIdentifiers: an authenticated second
// hospital sending CH Démo's IPP, or CH Démo's visit number, is refused
// (400 at the identifier) and changes nothing; in its own namespaces it is
// accepted, as another patient and another stay.
func TestSecondFacilityCannotTakeOverIdentifiers(t *testing.T) {
	r := newRig(t, false)
	if s, b := r.post(sample(t)); s != 200 {
		t.Fatalf("CH Démo: %d %s", s, b)
	}
	applied := r.waitApplied("0b6f3a52-8c1e-4a57-9a0e-1d2c3b4a5001")
	patientBefore, _ := r.store.Read(context.Background(), "Patient", strings.TrimPrefix(applied.Patient, "Patient/"))
	encBefore := r.search("Encounter")[0]
	second := r.addSecondFacility(t)
	const chDemo, own = "urn:oid:2.999.250.1.1", "urn:oid:2.999.250.7.7"

	cases := []struct {
		name, id, ipp, visit, expr string
	}{
		{"CH Démo's IPP", "takeover-ipp", chDemo, own, "Patient.identifier"},
		{"CH Démo's visit number", "takeover-visit", own + ".1", chDemo, "Encounter.identifier"},
	}
	for _, tc := range cases {
		status, body := postTo(t, second, fromSecond(t, tc.id, tc.ipp, tc.visit))
		if status != 400 || !strings.Contains(strings.Join(expression(t, body), " "), tc.expr) {
			t.Errorf("%s: %d %s", tc.name, status, body)
		}
	}
	// Accepted in its own namespaces: another patient, another stay.
	if status, body := postTo(t, second, fromSecond(t, "own", own, own)); status != 200 {
		t.Fatalf("own namespaces: %d %s", status, body)
	}
	r.waitApplied("own")
	// CH Démo's patient and stay are as they were.
	patientAfter, _ := r.store.Read(context.Background(), "Patient", patientBefore.ID)
	if patientAfter.Version != patientBefore.Version || strings.Contains(string(patientAfter.Body), "HACKED") {
		t.Errorf("CH Démo's patient was rewritten: %s", patientAfter.Body)
	}
	encAfter, _ := r.store.Read(context.Background(), "Encounter", encBefore.ID)
	if encAfter.Version != encBefore.Version || !strings.Contains(string(encAfter.Body), applied.Patient) {
		t.Errorf("CH Démo's stay moved: %s", encAfter.Body)
	}
	if pats := r.search("Patient"); len(pats) != 2 {
		t.Errorf("%d patients, want CH Démo's and the second hospital's", len(pats))
	}
	// CH Démo may not now use the namespace the second hospital claimed.
	m := sample(t)
	entry(m, "MessageHeader")["id"] = "reverse"
	withIdentity(m, "reverse")
	entry(m, "Encounter")["identifier"].([]any)[0].(map[string]any)["system"] = own
	if status, body := r.post(m); status != 400 {
		t.Errorf("CH Démo in the second hospital's namespace: %d %s", status, body)
	}
}

// TestSecondFacilityHL7Refused: the same over MLLP, answered AE at PID-3
// or PV1-19.
func TestSecondFacilityHL7Refused(t *testing.T) {
	r := newRig(t, false)
	r.addSecondFacility(t)
	c := dial(t, r.mllpAddr())
	a03 := hl7Sample(t, "adt-a03-cardiology-discharge.hl7")
	if ack := c.send(a03); msa(ack) != "AA" {
		t.Fatalf("CH Démo: %q", ack)
	}
	applied := r.waitApplied("MSG000123")
	before, _ := r.store.Read(context.Background(), "Patient", strings.TrimPrefix(applied.Patient, "Patient/"))
	other := func(ctrl string, replace ...string) []byte {
		b := bytes.Replace(a03, []byte("CHX_CARDIO^420000002^FINESS"), []byte("CHAUTRE^"+secondFINESS+"^FINESS"), 1)
		b = bytes.Replace(b, []byte("MSG000123"), []byte(ctrl), 1)
		b = bytes.Replace(b, []byte("TESTDURAND^MARIE"), []byte("HACKED^MALLORY"), 1)
		b = bytes.Replace(b, []byte("VALI"), []byte("PROV"), 1)
		for i := 0; i < len(replace); i += 2 {
			b = bytes.Replace(b, []byte(replace[i]), []byte(replace[i+1]), 1)
		}
		return b
	}
	cases := []struct {
		name, err string
		msg       []byte
	}{
		{"CH Démo's IPP", "PID^1^3", other("TAKE1", "V0004567^^^CH_EXEMPLE&2.999.250.1.1&", "V0004567^^^CH_AUTRE&2.999.250.7.7&")},
		{"CH Démo's visit number", "PV1^1^19", other("TAKE2", "000123456^^^CH_EXEMPLE&2.999.250.1.1&", "000123456^^^CH_AUTRE&2.999.250.7.7&")},
	}
	for _, tc := range cases {
		ack := c.send(tc.msg)
		if msa(ack) != "AE" || !strings.Contains(errSegment(ack), tc.err) {
			t.Errorf("%s: %q", tc.name, ack)
		}
	}
	after, _ := r.store.Read(context.Background(), "Patient", before.ID)
	if after.Version != before.Version || strings.Contains(string(after.Body), "HACKED") {
		t.Errorf("CH Démo's patient was rewritten: %s", after.Body)
	}
}

// applyEvent applies ev in its own transaction, as the consumer does.
func (r *rig) applyEvent(t *testing.T, e ev.Event) error {
	t.Helper()
	return r.store.Tx(context.Background(), func(tx store.Tx) error { return r.svc.Apply(context.Background(), tx, e) })
}

func chDemoEvent(ipp, visit, family, birth string) ev.Event {
	end := time.Date(2026, 10, 3, 15, 0, 0, 0, time.UTC)
	return ev.Event{Kind: ev.KindDischarge, Channel: "hl7v2", Tenant: "demo", Time: end,
		Facility: ev.Facility{FINESS: directory.DevHospitalFINES},
		Patient: ev.Patient{IdentityStatus: ev.StatusProvisional, BirthFamily: family, Family: family, Given: []string{"MARIE"},
			BirthDate: birth, Gender: "female", Identifiers: []ev.Identifier{{System: "urn:oid:2.999.250.1.1", Value: ipp, Type: "PI"}}},
		Encounter: ev.Encounter{Identifier: ev.Identifier{System: "urn:oid:2.999.250.1.1", Value: visit, Type: "VN"}, Class: "IMP", End: &end}}
}

// TestStayNeverMovesAndIPPChangesAreFlagged: within one hospital, a visit
// number sent for another patient does not move the stay; a patient
// matched by IPP alone whose identity traits change raises the
// identity-vigilance flag.
func TestStayNeverMovesAndIPPChangesAreFlagged(t *testing.T) {
	r := newRig(t, false)
	if err := r.applyEvent(t, chDemoEvent("IPP-1", "V-1", "TESTDURAND", "1948-03-15")); err != nil {
		t.Fatal(err)
	}
	enc := r.search("Encounter")[0]
	// The same stay for another patient (another IPP): refused, for good.
	err := r.applyEvent(t, chDemoEvent("IPP-2", "V-1", "AUTRE", "1950-01-01"))
	if !errors.Is(err, intake.ErrStayMoved) || !errors.Is(err, bus.ErrPermanent) {
		t.Errorf("stay moved to another patient: %v", err)
	}
	if after, _ := r.store.Read(context.Background(), "Encounter", enc.ID); after.Version != enc.Version {
		t.Errorf("the stay changed: %s", after.Body)
	}
	if len(r.search("Flag")) != 0 {
		t.Fatal("a flag before any change of traits")
	}
	// Matched by IPP, another birth date and name: applied, and flagged.
	if err := r.applyEvent(t, chDemoEvent("IPP-1", "V-2", "HACKED", "1948-03-16")); err != nil {
		t.Fatal(err)
	}
	flags := r.search("Flag")
	if len(flags) != 1 || !strings.Contains(string(flags[0].Body), "identity-vigilance") ||
		!strings.Contains(string(flags[0].Body), "birthDate") || !strings.Contains(string(flags[0].Body), "sans INS qualifié") {
		t.Errorf("flags: %v", flags)
	}
}

// TestLegacyStayNamesItsFacility: data recorded before namespaces were
// bound still protects them: a stay's facility owns its visit-number
// namespace, and the IPP namespace of a patient it holds.
func TestLegacyStayNamesItsFacility(t *testing.T) {
	r := newRig(t, false)
	err := r.store.Tx(context.Background(), func(tx store.Tx) error {
		for _, res := range []string{
			`{"resourceType":"Patient","id":"old-p","identifier":[{"system":"urn:oid:2.999.250.1.1","value":"000123456"}],"name":[{"family":"TESTDURAND"}]}`,
			`{"resourceType":"Encounter","id":"old-e","status":"finished","class":{"code":"IMP"},"subject":{"reference":"Patient/old-p"},
			  "identifier":[{"system":"urn:oid:2.999.250.1.2","value":"OLD-V"}],
			  "serviceProvider":{"identifier":{"system":"http://finess.sante.gouv.fr","value":"420000002"}}}`,
		} {
			if _, err := tx.Create(context.Background(), "demo", json.RawMessage(res)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	second := r.addSecondFacility(t)
	const own = "urn:oid:2.999.250.7.7"
	for _, tc := range []struct{ name, ipp, visit, expr string }{
		{"IPP of a patient CH Démo has a stay for", "urn:oid:2.999.250.1.1", own, "Patient.identifier"},
		{"visit number namespace of a CH Démo stay", own + ".1", "urn:oid:2.999.250.1.2", "Encounter.identifier"},
	} {
		status, body := postTo(t, second, fromSecond(t, "legacy-"+tc.expr, tc.ipp, tc.visit))
		if status != 400 || !strings.Contains(strings.Join(expression(t, body), " "), tc.expr) {
			t.Errorf("%s: %d %s", tc.name, status, body)
		}
	}
}

// TestUnsentFieldsKept: a message that leaves the name, birth date or
// address empty (an A03 whose PID-5 has no name of type L, say) changes
// nothing of what was recorded, and raises no identity flag: an empty HL7
// field means "no change", not "erase".
func TestUnsentFieldsKept(t *testing.T) {
	r := newRig(t, false)
	first := chDemoEvent("IPP-1", "V-1", "TESTDURAND", "1948-03-15")
	first.Patient.Phone = "0601020304"
	if err := r.applyEvent(t, first); err != nil {
		t.Fatal(err)
	}
	bare := chDemoEvent("IPP-1", "V-2", "", "")
	bare.Patient.Given = nil
	if err := r.applyEvent(t, bare); err != nil {
		t.Fatal(err)
	}
	pats := r.search("Patient")
	if len(pats) != 1 {
		t.Fatalf("%d patients", len(pats))
	}
	body := string(pats[0].Body)
	for _, want := range []string{"TESTDURAND", "MARIE", "1948-03-15", "0601020304"} {
		if !strings.Contains(body, want) {
			t.Errorf("%s lost: %s", want, body)
		}
	}
	if f := r.search("Flag"); len(f) != 0 {
		t.Errorf("flag raised for fields not sent: %s", f[0].Body)
	}
}
