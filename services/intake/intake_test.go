package intake_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	fhirprofiles "github.com/passerelle-sante/passerelle/fhir-profiles"
	"github.com/passerelle-sante/passerelle/pkg/access"
	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/bus/jetstream"
	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/fhir/profile"
	"github.com/passerelle-sante/passerelle/pkg/fhir/validate"
	"github.com/passerelle-sante/passerelle/pkg/store"
	"github.com/passerelle-sante/passerelle/pkg/store/sqlite"
	"github.com/passerelle-sante/passerelle/pkg/store/sqlstore"
	"github.com/passerelle-sante/passerelle/services/intake"
)

// rig runs the intake service on a real store and bus, with the
// development directory. Authentication is tested with the platform; here
// the caller's actor is resolved from the directory as the middleware does.
type rig struct {
	t      testing.TB
	store  store.Store
	svc    *intake.Service
	bus    *jetstream.Bus
	srv    *httptest.Server
	dir    *directory.Resolver
	client string
}

func newRig(t testing.TB, production bool) *rig {
	t.Helper()
	return newRigMaxEvent(t, production, 0)
}

// newRigMaxEvent is newRig with a store whose events are bounded by
// maxEvent bytes (0: store.MaxEventBytes).
func newRigMaxEvent(t testing.TB, production bool, maxEvent int) *rig {
	t.Helper()
	dir := t.TempDir()
	relay := &bus.Relay{Owner: "t", Poll: 10 * time.Millisecond}
	relay.Init()
	// As in the binary: the relay is woken by every commit that emitted.
	s, err := sqlite.Open(context.Background(), filepath.Join(dir, "db"), sqlite.Options{Options: sqlstore.Options{OnEmit: relay.Notify, MaxEventBytes: maxEvent}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if _, err := directory.SeedDev(context.Background(), s, "demo"); err != nil {
		t.Fatal(err)
	}
	ns, err := jetstream.StartServer(jetstream.ServerConfig{StoreDir: filepath.Join(dir, "nats")})
	if err != nil {
		t.Fatal(err)
	}
	b, err := jetstream.New(context.Background(), jetstream.Config{Server: ns})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	r := &rig{t: t, store: s, bus: b, dir: &directory.Resolver{Store: s}, client: directory.DevClient}
	reg, err := profile.Load(fhirprofiles.FS())
	if err != nil {
		t.Fatal(err)
	}
	v, err := validate.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	r.svc = intake.New(intake.Deps{Store: s, Bus: b, Logger: log, Tenant: "demo", Production: production, PublicURL: "http://passerelle.test",
		Dir: r.dir, Validator: validate.Bundles{V: v}})
	ctx, cancel := context.WithCancel(context.Background())
	relay.Store, relay.Publisher, relay.Logger = s, b, log
	done := make(chan struct{}, 2)
	go func() { _ = relay.Run(ctx); done <- struct{}{} }()
	go func() { _ = r.svc.Run(ctx); done <- struct{}{} }()
	mux := http.NewServeMux()
	authn := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			var a directory.Actor
			var err error
			if r.client != directory.DevClient {
				a, err = r.dir.Person(req.Context(), "demo", r.client)
			} else {
				a, err = r.dir.System(req.Context(), "demo", r.client)
			}
			if err != nil {
				http.Error(w, err.Error(), http.StatusForbidden)
				return
			}
			h.ServeHTTP(w, req.WithContext(access.WithActor(req.Context(), a)))
		})
	}
	r.svc.Register(mux, authn)
	r.svc.RegisterAdmin(mux, authn)
	r.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		r.srv.Close()
		cancel()
		<-done
		<-done
		_ = b.Close()
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return r
}

func sample(t testing.TB) map[string]any {
	t.Helper()
	b, err := os.ReadFile("testdata/discharge-hf-declared-team.json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// entry returns the resource of the first entry of type typ.
func entry(m map[string]any, typ string) map[string]any {
	for _, e := range m["entry"].([]any) {
		res := e.(map[string]any)["resource"].(map[string]any)
		if res["resourceType"] == typ {
			return res
		}
	}
	return nil
}

func (r *rig) post(m any) (int, []byte) {
	r.t.Helper()
	var body []byte
	switch v := m.(type) {
	case []byte:
		body = v
	default:
		body, _ = json.Marshal(v)
	}
	res, err := http.Post(r.srv.URL+"/fhir/$process-message", "application/fhir+json", bytes.NewReader(body))
	if err != nil {
		r.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

func (r *rig) search(typ string, params ...store.Param) []store.Resource {
	r.t.Helper()
	page, err := r.store.Search(context.Background(), store.Query{Tenant: "demo", Type: typ, Params: params, Count: 100})
	if err != nil {
		r.t.Fatal(err)
	}
	return page.Resources
}

func (r *rig) waitApplied(id string) store.Message {
	r.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		list, _, err := r.store.Messages().List(context.Background(), store.MessageFilter{Tenant: "demo", ControlID: id})
		if err == nil && len(list) > 0 && list[0].Status == "applied" {
			return list[0]
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("message %s not applied: %+v %v", id, list, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not JSON: %s", b)
	}
	return m
}

func expression(t *testing.T, body []byte) []string {
	t.Helper()
	var out []string
	m := decode(t, body)
	if m["resourceType"] != "OperationOutcome" {
		t.Fatalf("not an OperationOutcome: %s", body)
	}
	for _, i := range m["issue"].([]any) {
		for _, e := range i.(map[string]any)["expression"].([]any) {
			out = append(out, e.(string))
		}
	}
	return out
}

func TestSampleDischarge(t *testing.T) {
	r := newRig(t, false)
	status, body := r.post(sample(t))
	if status != 200 {
		t.Fatalf("status %d: %s", status, body)
	}
	resp := decode(t, body)
	mh := entry(resp, "MessageHeader")
	if resp["type"] != "message" || mh["response"].(map[string]any)["code"] != "ok" ||
		mh["response"].(map[string]any)["identifier"] != "0b6f3a52-8c1e-4a57-9a0e-1d2c3b4a5001" {
		t.Fatalf("response: %s", body)
	}
	msg := r.waitApplied("0b6f3a52-8c1e-4a57-9a0e-1d2c3b4a5001")
	encs := r.search("Encounter")
	if len(encs) != 1 {
		t.Fatalf("%d encounters", len(encs))
	}
	enc := decode(t, encs[0].Body)
	if enc["status"] != "finished" || enc["subject"].(map[string]any)["reference"] != msg.Patient {
		t.Errorf("encounter: %s", encs[0].Body)
	}
	pats := r.search("Patient")
	if len(pats) != 1 || !strings.Contains(string(pats[0].Body), "248034218701255") || !strings.Contains(string(pats[0].Body), `"QUAL"`) {
		t.Fatalf("patients: %v", pats)
	}
	conds := r.search("Condition")
	if len(conds) != 1 || !strings.Contains(string(conds[0].Body), "I50.1") {
		t.Errorf("conditions: %v", conds)
	}
	teams := r.search("CareTeam")
	if len(teams) != 1 || !strings.Contains(string(teams[0].Body), `"proposed"`) || !strings.Contains(string(teams[0].Body), "10000000009") {
		t.Errorf("declared team: %v", teams)
	}
	if docs := r.search("DocumentReference"); len(docs) != 1 {
		t.Errorf("%d letters", len(docs))
	}
}

func TestDuplicateAndConflict(t *testing.T) {
	r := newRig(t, false)
	m := sample(t)
	s1, b1 := r.post(m)
	s2, b2 := r.post(m)
	if s1 != 200 || s2 != 200 || !bytes.Equal(b1, b2) {
		t.Fatalf("re-send: %d %d, same answer %v", s1, s2, bytes.Equal(b1, b2))
	}
	r.waitApplied("0b6f3a52-8c1e-4a57-9a0e-1d2c3b4a5001")
	entry(m, "Patient")["birthDate"] = "1948-03-16"
	status, body := r.post(m)
	if status != 409 {
		t.Fatalf("same identity, other content: %d %s", status, body)
	}
	if got := expression(t, body); len(got) != 1 || got[0] != "Bundle.identifier" {
		t.Errorf("expression %v", got)
	}
	if encs := r.search("Encounter"); len(encs) != 1 || encs[0].Version != 2 {
		t.Errorf("encounters after duplicates: %d (version %d)", len(encs), encs[0].Version)
	}
	list, _, _ := r.store.Messages().List(context.Background(), store.MessageFilter{Tenant: "demo"})
	if len(list) != 1 {
		t.Errorf("%d archived messages, want 1", len(list))
	}
}

func withIdentity(m map[string]any, id string) map[string]any {
	m["identifier"] = map[string]any{"system": "urn:oid:2.999.250.1.1.9", "value": id}
	return m
}

func TestIdentityRules(t *testing.T) {
	r := newRig(t, false)
	// First stay, qualified INS.
	if s, b := r.post(withIdentity(sample(t), "m1")); s != 200 {
		t.Fatalf("%d %s", s, b)
	}
	r.waitApplied("0b6f3a52-8c1e-4a57-9a0e-1d2c3b4a5001")
	// Second stay, same INS, other IPP and visit, a different birth date:
	// the same patient, both versions kept, an identity-vigilance flag.
	m := withIdentity(sample(t), "m2")
	entry(m, "MessageHeader")["id"] = "second"
	p := entry(m, "Patient")
	p["birthDate"] = "1948-03-16"
	p["identifier"].([]any)[1].(map[string]any)["value"] = "999"
	entry(m, "Encounter")["identifier"].([]any)[0].(map[string]any)["value"] = "V2"
	if s, b := r.post(m); s != 200 {
		t.Fatalf("%d %s", s, b)
	}
	r.waitApplied("second")
	pats := r.search("Patient")
	if len(pats) != 1 || pats[0].Version != 2 {
		t.Fatalf("patients: %d, version %d", len(pats), pats[0].Version)
	}
	flags := r.search("Flag")
	if len(flags) != 1 || !strings.Contains(string(flags[0].Body), "identity-vigilance") || !strings.Contains(string(flags[0].Body), "birthDate") {
		t.Fatalf("flags: %v", flags)
	}
	if encs := r.search("Encounter"); len(encs) != 2 {
		t.Errorf("%d encounters, want 2", len(encs))
	}

	// A non-qualified identity: the INS is neither the key nor stored; the
	// IPP matches within the facility. Same name and birth date as above,
	// yet another patient: never merged on traits alone.
	m3 := withIdentity(sample(t), "m3")
	entry(m3, "MessageHeader")["id"] = "third"
	p3 := entry(m3, "Patient")
	p3["extension"].([]any)[0].(map[string]any)["extension"].([]any)[0].(map[string]any)["valueCoding"].(map[string]any)["code"] = "PROV"
	p3["identifier"].([]any)[1].(map[string]any)["value"] = "IPP-777"
	entry(m3, "Encounter")["identifier"].([]any)[0].(map[string]any)["value"] = "V3"
	if s, b := r.post(m3); s != 200 {
		t.Fatalf("%d %s", s, b)
	}
	applied := r.waitApplied("third")
	res, _ := r.store.Read(context.Background(), "Patient", strings.TrimPrefix(applied.Patient, "Patient/"))
	if strings.Contains(string(res.Body), "248034218701255") || !strings.Contains(string(res.Body), "IPP-777") {
		t.Errorf("provisional identity stored the INS or lost the IPP: %s", res.Body)
	}
	if pats := r.search("Patient"); len(pats) != 2 {
		t.Errorf("%d patients, want 2", len(pats))
	}
}

func TestAdmitThenDischargeUpdatesTheStay(t *testing.T) {
	r := newRig(t, false)
	m := withIdentity(sample(t), "admit")
	entry(m, "MessageHeader")["id"] = "admit"
	entry(m, "MessageHeader")["eventCoding"].(map[string]any)["code"] = "admit-notification"
	delete(entry(m, "Encounter")["period"].(map[string]any), "end")
	entry(m, "Encounter")["status"] = "in-progress"
	if s, b := r.post(m); s != 200 {
		t.Fatalf("%d %s", s, b)
	}
	r.waitApplied("admit")
	if encs := r.search("Encounter"); len(encs) != 1 || !strings.Contains(string(encs[0].Body), `"in-progress"`) {
		t.Fatalf("after admit: %v", encs)
	}
	if s, b := r.post(sample(t)); s != 200 {
		t.Fatalf("%d %s", s, b)
	}
	r.waitApplied("0b6f3a52-8c1e-4a57-9a0e-1d2c3b4a5001")
	encs := r.search("Encounter")
	if len(encs) != 1 || !strings.Contains(string(encs[0].Body), `"finished"`) {
		t.Fatalf("after discharge: %d encounters", len(encs))
	}
	// The discharge is cancelled: the stay is open again.
	c := withIdentity(sample(t), "cancel")
	entry(c, "MessageHeader")["id"] = "cancel"
	entry(c, "MessageHeader")["eventCoding"].(map[string]any)["code"] = "discharge-cancel"
	if s, b := r.post(c); s != 200 {
		t.Fatalf("%d %s", s, b)
	}
	r.waitApplied("cancel")
	encs = r.search("Encounter")
	if len(encs) != 1 || !strings.Contains(string(encs[0].Body), `"in-progress"`) || strings.Contains(string(encs[0].Body), `"end"`) {
		t.Fatalf("after cancel: %s", encs[0].Body)
	}
}

func TestRefusals(t *testing.T) {
	r := newRig(t, false)
	cases := []struct {
		name   string
		edit   func(m map[string]any)
		status int
		expr   string
	}{
		{"not a message", func(m map[string]any) { m["type"] = "collection" }, 400, "Bundle.type"},
		{"unknown event", func(m map[string]any) {
			entry(m, "MessageHeader")["eventCoding"].(map[string]any)["code"] = "birthday"
		}, 400, "Bundle.entry[0].resource.event.ofType(Coding)"},
		{"discharge without end", func(m map[string]any) {
			delete(entry(m, "Encounter")["period"].(map[string]any), "end")
		}, 400, "Bundle.entry[2].resource.period.end"},
		{"another facility", func(m map[string]any) {
			entry(m, "Encounter")["serviceProvider"].(map[string]any)["identifier"].(map[string]any)["value"] = "420000101"
		}, 403, "Bundle.entry[2].resource.serviceProvider"},
		{"no patient identifier", func(m map[string]any) { delete(entry(m, "Patient"), "identifier") }, 400, "Bundle.entry[1].resource.identifier"},
	}
	for i, tc := range cases {
		m := withIdentity(sample(t), "bad-"+tc.name)
		entry(m, "MessageHeader")["id"] = "bad" + string(rune('a'+i))
		tc.edit(m)
		status, body := r.post(m)
		if status != tc.status {
			t.Errorf("%s: status %d, want %d: %s", tc.name, status, tc.status, body)
			continue
		}
		if got := expression(t, body); len(got) == 0 || got[0] != tc.expr {
			t.Errorf("%s: expression %v, want %s", tc.name, got, tc.expr)
		}
	}
	if encs := r.search("Encounter"); len(encs) != 0 {
		t.Errorf("rejected messages were applied: %d encounters", len(encs))
	}
	// A person is not a hospital system.
	r.client = "coord.cpts"
	if status, _ := r.post(sample(t)); status != 403 {
		t.Errorf("a coordinator sent a message: %d", status)
	}
}

func TestProductionRefusesTestINS(t *testing.T) {
	r := newRig(t, true)
	status, body := r.post(sample(t))
	if status != 422 {
		t.Fatalf("status %d: %s", status, body)
	}
	if got := expression(t, body); len(got) != 1 || got[0] != "Bundle.entry[1].resource.identifier[0].system" {
		t.Errorf("expression %v", got)
	}
}

func (r *rig) get(method, path string) (int, map[string]any) {
	r.t.Helper()
	req, _ := http.NewRequest(method, r.srv.URL+path, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer res.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(res.Body).Decode(&m)
	return res.StatusCode, m
}

func TestOperatorsFindAndReplay(t *testing.T) {
	r := newRig(t, false)
	if s, b := r.post(sample(t)); s != 200 {
		t.Fatalf("%d %s", s, b)
	}
	msg := r.waitApplied("0b6f3a52-8c1e-4a57-9a0e-1d2c3b4a5001")
	if status, _ := r.get("GET", "/api/messages"); status != 403 {
		t.Errorf("a hospital system listed the archive: %d", status)
	}
	r.client = "coord.cpts"
	status, list := r.get("GET", "/api/messages?control-id=0b6f3a52-8c1e-4a57-9a0e-1d2c3b4a5001")
	if status != 200 || len(list["messages"].([]any)) != 1 {
		t.Fatalf("list: %d %v", status, list)
	}
	if _, byPatient := r.get("GET", "/api/messages?patient="+msg.Patient); len(byPatient["messages"].([]any)) != 1 {
		t.Errorf("by patient: %v", byPatient)
	}
	status, one := r.get("GET", "/api/messages/"+msg.ID)
	if status != 200 || !strings.Contains(one["raw"].(string), "discharge-notification") || one["status"] != "applied" {
		t.Fatalf("get: %d %v", status, one)
	}
	r.client = "admin"
	if _, one := r.get("GET", "/api/messages/"+msg.ID); one["raw"] != nil {
		t.Errorf("the administrator read a message's content")
	}
	before := r.search("Encounter")[0].Version
	if status, _ := r.get("POST", "/api/messages/"+msg.ID+"/replay"); status != 202 {
		t.Fatalf("replay: %d", status)
	}
	deadline := time.Now().Add(10 * time.Second)
	for r.search("Encounter")[0].Version == before {
		if time.Now().After(deadline) {
			t.Fatal("replay not applied")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if encs := r.search("Encounter"); len(encs) != 1 {
		t.Errorf("replay duplicated the stay: %d", len(encs))
	}
	if status, _ := r.get("POST", "/api/messages/nope/replay"); status != 404 {
		t.Errorf("replay unknown: %d", status)
	}
}

// TestCorrectedResend: a refused message does not hold its identity; the
// hospital corrects it and sends it again with the same identifier.
func TestCorrectedResend(t *testing.T) {
	r := newRig(t, false)
	bad := sample(t)
	delete(entry(bad, "Encounter"), "subject")
	if status, _ := r.post(bad); status != 400 {
		t.Fatalf("bad message: %d", status)
	}
	if status, _ := r.post(bad); status != 400 {
		t.Fatalf("bad message again: %d", status)
	}
	if status, body := r.post(sample(t)); status != 200 {
		t.Fatalf("corrected message: %d %s", status, body)
	}
	r.waitApplied("0b6f3a52-8c1e-4a57-9a0e-1d2c3b4a5001")
	list, _, _ := r.store.Messages().List(context.Background(), store.MessageFilter{Tenant: "demo"})
	if len(list) != 2 {
		t.Errorf("%d archived messages, want the refused one and the accepted one", len(list))
	}
}
