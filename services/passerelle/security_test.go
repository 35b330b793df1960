package main

import (
	"bufio"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"html"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	_ "modernc.org/sqlite"

	"github.com/passerelle-sante/passerelle/pkg/access"
	"github.com/passerelle-sante/passerelle/pkg/store"
	"github.com/passerelle-sante/passerelle/pkg/websession"
)

// routePatterns lists the patterns registered on mux. ServeMux does not
// export them; its conflict index holds every one (net/http
// routing_index.go), read here without changing anything.
func routePatterns(t *testing.T, mux *http.ServeMux) []string {
	t.Helper()
	// Taking the mux's read lock (through Handler) orders this read after
	// every registration.
	mux.Handler(&http.Request{Method: "GET", URL: &url.URL{Path: "/"}, Host: "x"})
	idx := reflect.ValueOf(mux).Elem().FieldByName("index")
	segs, multis := idx.FieldByName("segments"), idx.FieldByName("multis")
	if !segs.IsValid() || !multis.IsValid() {
		t.Fatal("net/http.ServeMux changed its internals: routePatterns must learn the new layout")
	}
	seen := map[string]bool{}
	add := func(p reflect.Value) { seen[p.Elem().FieldByName("str").String()] = true }
	for it := segs.MapRange(); it.Next(); {
		for i := 0; i < it.Value().Len(); i++ {
			add(it.Value().Index(i))
		}
	}
	for i := 0; i < multis.Len(); i++ {
		add(multis.Index(i))
	}
	var out []string
	for p := range seen {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// victim is the data one kind of outsider must never reach: ids to put in
// the probes, and a marker written inside every resource.
type victim struct {
	tenant, marker string
	ids            map[string]string
}

// seedVictim writes a patient's record in tenant: Patient, Encounter,
// EpisodeOfCare, CarePlan, CareTeam (whose only member is dr.bernard), a
// Task he owns, an Observation, a Condition, and an archived hospital
// message from another facility. Every resource carries the marker.
func seedVictim(t *testing.T, st store.Store, tenant, suffix, marker string) victim {
	t.Helper()
	v := victim{tenant: tenant, marker: marker, ids: map[string]string{}}
	pat := "Patient/pat-" + suffix
	subject := map[string]any{"reference": pat}
	note := []any{map[string]any{"text": marker}}
	rs := []map[string]any{
		{"resourceType": "Patient", "id": "pat-" + suffix, "name": []any{map[string]any{"family": marker}},
			"identifier": []any{map[string]any{"system": "urn:oid:1.2.250.1.213.1.4.10", "value": "2" + fmt.Sprint(len(suffix)) + "0112345678901"}}},
		{"resourceType": "Encounter", "id": "enc-" + suffix, "status": "finished", "class": map[string]any{"code": "IMP"}, "subject": subject,
			"reasonCode": []any{map[string]any{"text": marker}}},
		{"resourceType": "EpisodeOfCare", "id": "ep-" + suffix, "status": "active", "patient": subject,
			"type": []any{map[string]any{"text": marker}}},
		{"resourceType": "CarePlan", "id": "cp-" + suffix, "status": "active", "intent": "plan", "subject": subject, "note": note},
		{"resourceType": "CareTeam", "id": "ct-ep-" + suffix, "status": "active", "subject": subject, "note": note,
			"participant": []any{map[string]any{"member": map[string]any{"reference": "PractitionerRole/pr-dr-bernard"},
				"period": map[string]any{"start": "2026-01-01"}}}},
		{"resourceType": "Task", "id": "task-" + suffix, "status": "requested", "intent": "order", "for": subject,
			"owner": map[string]any{"reference": "PractitionerRole/pr-dr-bernard"}, "description": marker},
		{"resourceType": "Observation", "id": "obs-" + suffix, "status": "final", "code": map[string]any{"text": "poids"},
			"subject": subject, "note": note, "valueQuantity": map[string]any{"value": 81.5, "unit": "kg"}},
		{"resourceType": "Condition", "id": "cond-" + suffix, "subject": subject, "code": map[string]any{"text": marker}},
		{"resourceType": "DocumentReference", "id": "doc-" + suffix, "status": "current", "subject": subject,
			"content": []any{map[string]any{"attachment": map[string]any{"contentType": "text/plain; charset=utf-8",
				"data": base64.StdEncoding.EncodeToString([]byte(marker))}}}},
	}
	err := st.Tx(context.Background(), func(tx store.Tx) error {
		for _, r := range rs {
			b, _ := json.Marshal(r)
			res, err := tx.Create(context.Background(), tenant, b)
			if err != nil {
				return err
			}
			// A second version, for history and vread.
			if _, err := tx.Update(context.Background(), tenant, res.Body, res.Version); err != nil {
				return err
			}
			v.ids[strings.ToLower(r["resourceType"].(string))] = r["id"].(string)
		}
		m, _, err := tx.PutMessage(context.Background(), store.Message{Tenant: tenant, Channel: "fhir", Sender: "420000010",
			Key: "msg-" + suffix, Hash: "h", ControlID: "ctl-" + suffix, Event: "discharge", Patient: pat, Received: time.Now(),
			Status: "applied", Response: []byte(marker), ResponseCode: 200, Raw: []byte(marker)})
		v.ids["message"] = m.ID
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// Ways a professional stops being in a patient's care (formerVictim).
const (
	formerTaskCompleted  = "task completed"
	formerTaskReassigned = "task reassigned"
	formerEpisodeEnded   = "episode finished"
	formerLeftTeam       = "left the team"
)

// formerVictim seeds a patient's record as seedVictim does, as the pathway
// and teams services shape it (the episode names its CarePlan, the task is
// based on it), then makes ide.leroy a former member of the patient's care
// in one way, her part having ended at ended: her task completed; her task
// given to dr.bernard (versions 3 hers, 4 his); the episode finished, her
// task cancelled and the team inactive; her participant period ended in
// the team, which goes on.
func formerVictim(t *testing.T, st store.Store, tenant, suffix, marker, how string, ended time.Time) victim {
	t.Helper()
	v := seedVictim(t, st, tenant, suffix, marker)
	ctx := context.Background()
	at := ended.UTC().Format(time.RFC3339)
	leroy := map[string]any{"reference": "PractitionerRole/pr-ide-leroy"}
	edit := func(tx store.Tx, typ string, change func(m map[string]any)) {
		res, err := tx.Read(ctx, typ, v.ids[strings.ToLower(typ)])
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		_ = json.Unmarshal(res.Body, &m)
		delete(m, "meta")
		change(m)
		b, _ := json.Marshal(m)
		if _, err := tx.Update(ctx, tenant, b, 0); err != nil {
			t.Fatal(err)
		}
	}
	err := st.Tx(ctx, func(tx store.Tx) error {
		edit(tx, "EpisodeOfCare", func(m map[string]any) {
			m["extension"] = []any{map[string]any{"url": "https://passerelle.health/fhir/StructureDefinition/episode-careplan",
				"valueReference": map[string]any{"reference": "CarePlan/" + v.ids["careplan"]}}}
			m["period"] = map[string]any{"start": "2026-01-01"}
			if how == formerEpisodeEnded {
				m["status"], m["period"] = "finished", map[string]any{"start": "2026-01-01", "end": at}
			}
		})
		edit(tx, "Task", func(m map[string]any) {
			m["basedOn"] = []any{map[string]any{"reference": "CarePlan/" + v.ids["careplan"]}}
			m["owner"], m["lastModified"] = leroy, at
			switch how {
			case formerTaskCompleted:
				m["status"] = "completed"
			case formerEpisodeEnded:
				m["status"] = "cancelled"
			case formerLeftTeam:
				m["owner"] = map[string]any{"reference": "PractitionerRole/pr-dr-bernard"}
			}
		})
		switch how {
		case formerTaskReassigned:
			edit(tx, "Task", func(m map[string]any) { m["owner"] = map[string]any{"reference": "PractitionerRole/pr-dr-bernard"} })
		case formerEpisodeEnded:
			edit(tx, "CarePlan", func(m map[string]any) { m["status"] = "completed" })
			edit(tx, "CareTeam", func(m map[string]any) {
				m["status"], m["period"] = "inactive", map[string]any{"start": "2026-01-01", "end": at}
				m["participant"] = append(m["participant"].([]any), map[string]any{"member": leroy, "period": map[string]any{"start": "2026-01-01"}})
			})
		case formerLeftTeam:
			edit(tx, "CareTeam", func(m map[string]any) {
				m["period"] = map[string]any{"start": "2026-01-01"}
				m["participant"] = append(m["participant"].([]any), map[string]any{"member": leroy, "period": map[string]any{"start": "2026-01-01", "end": at}})
			})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// probe is one way to try to reach data through a route. Its path and body
// hold placeholders {patient}, {observation}, {task}, … filled with the
// victim's ids.
type probe struct {
	method, path, body string
	// form sends body as application/x-www-form-urlencoded.
	form bool
	// write must never succeed.
	write bool
	// stream is read for a short while, then dropped.
	stream bool
	// anonymous leaves the web session out (logout would end it).
	anonymous bool
}

// clinicalTypes are searched, read and written through the generic routes.
var clinicalTypes = []string{"Patient", "Encounter", "EpisodeOfCare", "CarePlan", "CareTeam", "Task", "Observation", "Condition"}

func perType(f func(typ, id string) []probe) []probe {
	var out []probe
	for _, typ := range clinicalTypes {
		out = append(out, f(typ, "{"+strings.ToLower(typ)+"}")...)
	}
	return out
}

// accessTable says, for every route pattern the server registers, how an
// outsider might try to reach a patient's data through it. A route missing
// here fails TestEveryRouteRefusesOutsiders: add it with its probes.
var accessTable = map[string][]probe{
	"GET /healthz":             {{method: "GET", path: "/healthz"}},
	"GET /readyz":              {{method: "GET", path: "/readyz"}},
	"GET /metrics":             {{method: "GET", path: "/metrics"}},
	"GET /debug/pprof/":        {{method: "GET", path: "/debug/pprof/"}, {method: "GET", path: "/debug/pprof/goroutine?debug=2"}},
	"GET /debug/pprof/profile": {{method: "GET", path: "/debug/pprof/profile?seconds=1"}},
	"/dev-idp/":                {{method: "GET", path: "/dev-idp/.well-known/openid-configuration"}, {method: "GET", path: "/dev-idp/jwks"}},
	"GET /fhir/metadata":       {{method: "GET", path: "/fhir/metadata"}},
	"GET /fhir/{type}": perType(func(typ, id string) []probe {
		return []probe{
			{method: "GET", path: "/fhir/" + typ + "?_total=accurate"},
			{method: "GET", path: "/fhir/" + typ + "?_id=" + id + "&_total=accurate"},
			{method: "GET", path: "/fhir/" + typ + "?_include=" + typ + ":patient"},
			{method: "GET", path: "/fhir/" + typ + "?_revinclude=Observation:patient"},
			{method: "GET", path: "/fhir/" + typ + "?_count=1&_total=accurate&_lastUpdated=gt2000-01-01"},
		}
	}),
	"POST /fhir/{type}/_search": perType(func(typ, id string) []probe {
		return []probe{{method: "POST", path: "/fhir/" + typ + "/_search", body: "_id=" + id + "&_total=accurate", form: true}}
	}),
	"GET /fhir/{type}/{id}": perType(func(typ, id string) []probe {
		return []probe{{method: "GET", path: "/fhir/" + typ + "/" + id}}
	}),
	"GET /fhir/{type}/{id}/_history": perType(func(typ, id string) []probe {
		return []probe{{method: "GET", path: "/fhir/" + typ + "/" + id + "/_history"}}
	}),
	"GET /fhir/{type}/{id}/_history/{vid}": perType(func(typ, id string) []probe {
		// Version 3 of a former member's task was hers (formerVictim).
		return []probe{{method: "GET", path: "/fhir/" + typ + "/" + id + "/_history/1"}, {method: "GET", path: "/fhir/" + typ + "/" + id + "/_history/2"},
			{method: "GET", path: "/fhir/" + typ + "/" + id + "/_history/3"}}
	}),
	"POST /fhir/{type}": {
		{method: "POST", path: "/fhir/Observation", write: true, body: `{"resourceType":"Observation","status":"final","code":{"text":"poids"},"subject":{"reference":"Patient/{patient}"}}`},
		{method: "POST", path: "/fhir/Patient", write: true, body: `{"resourceType":"Patient"}`},
	},
	"PUT /fhir/{type}/{id}": perType(func(typ, id string) []probe {
		return []probe{{method: "PUT", path: "/fhir/" + typ + "/" + id, write: true, body: `{"resourceType":"` + typ + `","id":"` + id + `"}`}}
	}),
	"/fhir/": {{method: "DELETE", path: "/fhir/Patient/{patient}", write: true}, {method: "PATCH", path: "/fhir/Observation/{observation}", write: true, body: "{}"}},
	"GET /fhir/AuditEvent": {
		{method: "GET", path: "/fhir/AuditEvent?patient=Patient/{patient}"},
		{method: "GET", path: "/fhir/AuditEvent"},
	},
	"POST /fhir/AuditEvent/_search": {{method: "POST", path: "/fhir/AuditEvent/_search", body: "patient=Patient/{patient}", form: true}},
	"GET /fhir/AuditEvent/{id}":     {{method: "GET", path: "/fhir/AuditEvent/audit-1"}, {method: "GET", path: "/fhir/AuditEvent/audit-2"}},
	"POST /fhir/$process-message": {{method: "POST", path: "/fhir/$process-message", write: true,
		body: `{"resourceType":"Bundle","type":"message","entry":[{"resource":{"resourceType":"MessageHeader","id":"m1","eventCoding":{"system":"https://passerelle.health/fhir/CodeSystem/event","code":"death-notification"},"source":{"endpoint":"x"},"sender":{"identifier":{"system":"http://finess.sante.gouv.fr","value":"420000010"}},"focus":[{"reference":"Encounter/{encounter}"}]}}]}`}},
	"GET /api/messages":              {{method: "GET", path: "/api/messages"}, {method: "GET", path: "/api/messages?patient=Patient/{patient}"}},
	"GET /api/messages/{id}":         {{method: "GET", path: "/api/messages/{message}"}},
	"POST /api/messages/{id}/replay": {{method: "POST", path: "/api/messages/{message}/replay", write: true}},
	"POST /fhir/PlanDefinition":      {{method: "POST", path: "/fhir/PlanDefinition", write: true, body: `{"resourceType":"PlanDefinition"}`}},
	"PUT /fhir/PlanDefinition/{id}":  {{method: "PUT", path: "/fhir/PlanDefinition/x", write: true, body: `{"resourceType":"PlanDefinition","id":"x"}`}},
	"GET /login":                     {{method: "GET", path: "/login?next=/fhir/Patient/{patient}"}},
	"GET /auth/callback":             {{method: "GET", path: "/auth/callback?code=x&state=y"}},
	"POST /logout":                   {{method: "POST", path: "/logout", anonymous: true}},
	// Routes being added by the worklist, teams and outcomes services.
	"PUT /fhir/Task/{id}": {{method: "PUT", path: "/fhir/Task/{task}", write: true, body: `{"resourceType":"Task","id":"{task}","status":"accepted","intent":"order"}`, form: false}},
	"POST /fhir/Observation": {{method: "POST", path: "/fhir/Observation", write: true,
		body: `{"resourceType":"Observation","status":"final","code":{"text":"poids"},"subject":{"reference":"Patient/{patient}"},"valueQuantity":{"value":80,"unit":"kg"}}`}},
	"GET /fhir/Measure/{id}/$evaluate-measure": {{method: "GET", path: "/fhir/Measure/readmission-30d/$evaluate-measure?periodStart=2000-01-01&periodEnd=2100-01-01&subject=Patient/{patient}"}},
	"GET /api/outcomes.csv":                    {{method: "GET", path: "/api/outcomes.csv?periodStart=2000-01-01&periodEnd=2100-01-01"}},
	"GET /api/outcomes/measure-reports":        {{method: "GET", path: "/api/outcomes/measure-reports?periodStart=2000-01-01&periodEnd=2100-01-01"}},
	"GET /api/outcomes/curves":                 {{method: "GET", path: "/api/outcomes/curves?periodStart=2000-01-01&periodEnd=2100-01-01"}},
	"GET /api/outcomes/curves.svg":             {{method: "GET", path: "/api/outcomes/curves.svg?periodStart=2000-01-01&periodEnd=2100-01-01"}},
	"GET /api/outcomes/aci.csv":                {{method: "GET", path: "/api/outcomes/aci.csv?periodStart=2000-01-01&periodEnd=2100-01-01"}},
	"GET /api/outcomes/death-register":         {{method: "GET", path: "/api/outcomes/death-register"}},
	"POST /api/outcomes/deaths":                {{method: "POST", path: "/api/outcomes/deaths", write: true, body: `{"patient":"Patient/{patient}","date":"2026-01-01"}`}},
	"POST /api/outcomes/death-register":        {{method: "POST", path: "/api/outcomes/death-register", write: true, body: "x"}},
	"POST /fhir/Flag/{id}/$acknowledge":        {{method: "POST", path: "/fhir/Flag/x/$acknowledge", write: true}},
	"GET /events":                              {{method: "GET", path: "/events", stream: true}},
	"GET /{$}":                                 {{method: "GET", path: "/"}},
	"GET /worklist":                            {{method: "GET", path: "/worklist"}},
	"GET /tasks/{id}":                          {{method: "GET", path: "/tasks/{task}"}},
	"POST /tasks/{id}/action":                  {{method: "POST", path: "/tasks/{task}/action", write: true, form: true, body: "action=accept"}},
	"POST /tasks/{id}/visit":                   {{method: "POST", path: "/tasks/{task}/visit", write: true, form: true, body: "weight-kg=80"}},
	"POST /tasks/{id}/reassign":                {{method: "POST", path: "/tasks/{task}/reassign", write: true, form: true, body: "to=pr-ide-martin"}},
	"GET /alerts":                              {{method: "GET", path: "/alerts"}},
	"POST /alerts/{id}/ack":                    {{method: "POST", path: "/alerts/x/ack", write: true, form: true}},
	"GET /coordination":                        {{method: "GET", path: "/coordination"}},
	"GET /directory":                           {{method: "GET", path: "/directory"}},
	"GET /templates":                           {{method: "GET", path: "/templates"}},
	"GET /discharge":                           {{method: "GET", path: "/discharge"}},
	"POST /discharge":                          {{method: "POST", path: "/discharge", write: true, form: true}},
	"GET /outcomes":                            {{method: "GET", path: "/outcomes"}},
	"GET /documents/{id}":                      {{method: "GET", path: "/documents/{documentreference}"}},
	"GET /static/":                             {{method: "GET", path: "/static/style.css"}},
	"GET /sw.js":                               {{method: "GET", path: "/sw.js"}},
}

// TestEveryRouteRefusesOutsiders tries every route the server registers,
// every way it offers to reach data, as three outsiders: a professional of
// another CareTeam, the coordinator of another CPTS and the system of
// another facility. Each gets a refusal or nothing: never the victim's data,
// never a count of it, never a write.
func TestEveryRouteRefusesOutsiders(t *testing.T) {
	tp := startPlatform(t, nil)
	ctx := context.Background()
	// The nurse has a patient of her own, so her searches are not empty
	// by construction.
	own := seedVictim(t, tp.Store, tp.Cfg.Tenant, "own", "OWNDATA")
	ownTeam := `{"resourceType":"CareTeam","id":"ct-own-nurse","status":"active","subject":{"reference":"Patient/pat-own"},"participant":[{"member":{"reference":"PractitionerRole/pr-ide-martin"}}]}`
	if err := tp.Store.Tx(ctx, func(tx store.Tx) error { _, err := tx.Create(ctx, tp.Cfg.Tenant, []byte(ownTeam)); return err }); err != nil {
		t.Fatal(err)
	}
	local := seedVictim(t, tp.Store, tp.Cfg.Tenant, "victim", "SECRETVICTIM")
	elsewhere := seedVictim(t, tp.Store, "autre", "autre", "SECRETAUTRE")
	// People also hold a web session (cookie and CSRF token), so that the
	// pages are tried logged in; a system has none.
	nurseWeb, coordWeb := tp.webLogin(t, "ide.martin"), tp.webLogin(t, "coord.cpts")
	// Former members: ide.leroy was in the care of these patients, and is
	// no longer: six months after her task was completed, after the
	// episode finished, after she left the team; an hour after her task
	// went to someone else.
	leroy, leroyWeb := tp.token(t, "ide.leroy"), tp.webLogin(t, "ide.leroy")
	longAgo := time.Now().AddDate(0, -6, 0)
	outsiders := []struct {
		name  string
		token string
		web   webSession
		v     victim
	}{
		{"professional of another CareTeam", tp.token(t, "ide.martin"), nurseWeb, local},
		{"coordinator of another CPTS", tp.token(t, "coord.cpts"), coordWeb, elsewhere},
		{"system of another facility", tp.token(t, "chu-demo-dpi"), webSession{}, local},
		{"former member, task completed 6 months ago", leroy, leroyWeb,
			formerVictim(t, tp.Store, tp.Cfg.Tenant, "done", "SECRETDONE", formerTaskCompleted, longAgo)},
		{"former member, task reassigned", leroy, leroyWeb,
			formerVictim(t, tp.Store, tp.Cfg.Tenant, "moved", "SECRETMOVED", formerTaskReassigned, time.Now().Add(-time.Hour))},
		{"former member, episode finished 6 months ago", leroy, leroyWeb,
			formerVictim(t, tp.Store, tp.Cfg.Tenant, "ended", "SECRETENDED", formerEpisodeEnded, longAgo)},
		{"former member, left the team 6 months ago", leroy, leroyWeb,
			formerVictim(t, tp.Store, tp.Cfg.Tenant, "left", "SECRETLEFT", formerLeftTeam, longAgo)},
	}
	// The nurse reaches her own patient, so the probes below are not
	// refused for some unrelated reason.
	if r := tp.do(t, "GET", "/fhir/Observation?_total=accurate", outsiders[0].token, ""); r.status != 200 || !strings.Contains(string(r.body), "OWNDATA") ||
		strings.Contains(string(r.body), "SECRETVICTIM") || r.json(t)["total"] != float64(1) {
		t.Fatalf("nurse's own observations: %d %s", r.status, r.body)
	}
	_ = own

	patterns := routePatterns(t, tp.Mux)
	if len(patterns) < 10 {
		t.Fatalf("only %d route patterns found: %v", len(patterns), patterns)
	}
	for _, pattern := range patterns {
		probes, ok := accessTable[pattern]
		if !ok {
			t.Errorf("route %q is not in the access table: add it, with the ways it offers to reach data, to accessTable in services/passerelle/security_test.go", pattern)
			continue
		}
		for _, o := range outsiders {
			for _, pr := range probes {
				fill := func(s string) string {
					for k, id := range o.v.ids {
						s = strings.ReplaceAll(s, "{"+k+"}", id)
					}
					return s
				}
				path, body := fill(pr.path), fill(pr.body)
				name := fmt.Sprintf("%s: %s %s", o.name, pr.method, path)
				web := o.web
				if pr.anonymous {
					web = webSession{}
				}
				status, got := tp.probe(t, pr, path, body, o.token, web)
				if strings.Contains(got, o.v.marker) {
					t.Errorf("%s (route %s): %d, the answer holds the victim's data: %.300s", name, pattern, status, got)
				}
				if pr.write && status >= 200 && status < 300 {
					t.Errorf("%s (route %s): a write succeeded (%d)", name, pattern, status)
				}
				if status >= 200 && status < 300 && strings.HasPrefix(got, "{") {
					var b struct {
						ResourceType string
						Total        *int
						Entry        []struct{ Resource json.RawMessage }
					}
					if json.Unmarshal([]byte(got), &b) == nil && b.ResourceType == "Bundle" {
						for _, e := range b.Entry {
							// An AuditEvent of the outsider's own attempt
							// names the id they tried, which they knew.
							if strings.Contains(string(e.Resource), `"AuditEvent"`) {
								continue
							}
							if strings.Contains(string(e.Resource), o.v.ids["patient"]) {
								t.Errorf("%s: an entry is about the victim: %s", name, e.Resource)
							}
						}
					}
				}
			}
		}
	}
	// The probes ran logged in to the end.
	req := httptest.NewRequest("GET", "/", nil)
	req.AddCookie(nurseWeb.cookie)
	if tp.Sessions.CSRFToken(req) == "" {
		t.Error("the nurse's web session ended during the probes")
	}
	req = httptest.NewRequest("GET", "/", nil)
	req.AddCookie(leroyWeb.cookie)
	if tp.Sessions.CSRFToken(req) == "" {
		t.Error("the former member's web session ended during the probes")
	}
	// The coordinator of this CPTS, by contrast, finds the local victim:
	// the probes can see data when access allows it.
	r := tp.do(t, "GET", "/fhir/Observation?_id="+local.ids["observation"], tp.token(t, "coord.cpts"), "")
	if !strings.Contains(string(r.body), "SECRETVICTIM") {
		t.Errorf("the coordinator does not see the CPTS's own patient: %d %s", r.status, r.body)
	}
}

// probe sends one probe and returns the status and body (a stream is read
// for a moment and cut).
func (tp *testPlatform) probe(t *testing.T, pr probe, path, body, token string, web webSession) (int, string) {
	t.Helper()
	if pr.form && web.csrf != "" {
		if body != "" {
			body += "&"
		}
		body += websession.CSRFField + "=" + url.QueryEscape(web.csrf)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var rd *strings.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	var req *http.Request
	var err error
	if rd != nil {
		req, err = http.NewRequestWithContext(ctx, pr.method, tp.base+path, rd)
	} else {
		req, err = http.NewRequestWithContext(ctx, pr.method, tp.base+path, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if web.cookie != nil {
		req.AddCookie(web.cookie)
		req.Header.Set(websession.CSRFHeader, web.csrf)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/fhir+json")
		if pr.form {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if pr.stream {
		client.Timeout = 500 * time.Millisecond
	}
	res, err := client.Do(req)
	if err != nil {
		if pr.stream {
			return 0, ""
		}
		t.Fatal(err)
	}
	defer res.Body.Close()
	var sb strings.Builder
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		sb.WriteString(sc.Text())
		sb.WriteByte('\n')
	}
	return res.StatusCode, sb.String()
}

// webSession is a logged-in browser: its session cookie and the CSRF token
// of its forms.
type webSession struct {
	cookie *http.Cookie
	csrf   string
}

// webLogin logs user in to the web pages through /login and the
// development provider's form, as a browser does. The public URL of a test
// platform names port 0: redirects are followed to the bound port.
func (tp *testPlatform) webLogin(t *testing.T, user string) webSession {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	local := func(u string) string { return strings.Replace(u, tp.Cfg.PublicURL, tp.base, 1) }
	hidden := regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)
	next, form := tp.base+websession.LoginPath, url.Values(nil)
	for i := 0; i < 6; i++ {
		var res *http.Response
		var err error
		if form != nil {
			res, err = c.PostForm(next, form)
		} else {
			res, err = c.Get(next)
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		switch {
		case strings.HasPrefix(next, tp.base+websession.CallbackPath):
			for _, ck := range res.Cookies() {
				if strings.HasSuffix(ck.Name, "passerelle_session") && ck.Value != "" {
					req := httptest.NewRequest("GET", "/", nil)
					req.AddCookie(ck)
					csrf := tp.Sessions.CSRFToken(req)
					if csrf == "" {
						t.Fatalf("web login of %s: the session is not known", user)
					}
					return webSession{cookie: ck, csrf: csrf}
				}
			}
			t.Fatalf("web login of %s: no session cookie (%d %s)", user, res.StatusCode, b)
		case res.StatusCode >= 300 && res.StatusCode < 400:
			loc, _ := res.Request.URL.Parse(res.Header.Get("Location"))
			next, form = local(loc.String()), nil
		case res.StatusCode == 200 && strings.Contains(string(b), `name="username"`):
			form = url.Values{"username": {user}, "password": {user}}
			for _, m := range hidden.FindAllStringSubmatch(string(b), -1) {
				form.Set(m[1], html.UnescapeString(m[2]))
			}
			next = tp.base + "/dev-idp/authorize"
		default:
			t.Fatalf("web login of %s at %s: %d %s", user, next, res.StatusCode, b)
		}
	}
	t.Fatalf("web login of %s did not finish", user)
	return webSession{}
}

// devKey loads the development provider's signing key, to forge tokens
// that are well signed but wrong in one claim.
func devKey(t *testing.T, dataDir string) (*rsa.PrivateKey, string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dataDir, "dev-idp", "*.pem"))
	sort.Strings(files)
	if len(files) == 0 {
		t.Fatal("no development key")
	}
	b, err := os.ReadFile(files[len(files)-1])
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	priv := k.(*rsa.PrivateKey)
	sum, _ := (&jose.JSONWebKey{Key: &priv.PublicKey}).Thumbprint(crypto.SHA256)
	return priv, base64.RawURLEncoding.EncodeToString(sum)
}

func sign(t *testing.T, key *rsa.PrivateKey, kid string, claims map[string]any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, (&jose.SignerOptions{}).WithType("at+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(claims)
	jws, err := s.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := jws.CompactSerialize()
	return tok
}

func TestTokensThatMustBeRefused(t *testing.T) {
	tp := startPlatform(t, nil)
	key, kid := devKey(t, tp.Cfg.DataDir)
	issuer := tp.IdP.Issuer()
	now := time.Now()
	claims := func(change func(map[string]any)) map[string]any {
		c := map[string]any{"iss": issuer, "sub": "s", "aud": []string{"passerelle"}, "azp": "passerelle", "typ": "Bearer",
			"exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "nbf": now.Unix(), "preferred_username": "coord.cpts"}
		if change != nil {
			change(c)
		}
		return c
	}
	// A member of another CPTS: in that tenant's directory only.
	other := []string{
		`{"resourceType":"Practitioner","id":"p-coord-autre","identifier":[{"system":"https://passerelle.health/fhir/NamingSystem/login","value":"coord.autre"}]}`,
		`{"resourceType":"PractitionerRole","id":"pr-coord-autre","active":true,"practitioner":{"reference":"Practitioner/p-coord-autre"},"code":[{"coding":[{"system":"https://passerelle.health/fhir/CodeSystem/team-role","code":"coordinator"}]}]}`,
	}
	err := tp.Store.Tx(context.Background(), func(tx store.Tx) error {
		for _, b := range other {
			if _, err := tx.Create(context.Background(), "autre", []byte(b)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	stranger, _ := rsa.GenerateKey(rand.Reader, 2048)
	good := sign(t, key, kid, claims(nil))
	parts := strings.Split(good, ".")
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."
	hs := func() string {
		// HS256 keyed with the public key: the classic confusion attack.
		pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: pub}, nil)
		if err != nil {
			t.Fatal(err)
		}
		jws, _ := s.Sign([]byte(base64DecodeOrDie(t, parts[1])))
		out, _ := jws.CompactSerialize()
		return out
	}()
	cases := []struct {
		name  string
		token string
		want  int
	}{
		{"well signed (control)", good, 200},
		{"forged signature", sign(t, stranger, kid, claims(nil)), 401},
		{"tampered payload", parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"`+issuer+`","sub":"s","aud":"passerelle","exp":9999999999,"preferred_username":"admin"}`)) + "." + parts[2], 401},
		{"expired", sign(t, key, kid, claims(func(c map[string]any) { c["exp"] = now.Add(-2 * time.Minute).Unix() })), 401},
		{"not yet valid", sign(t, key, kid, claims(func(c map[string]any) { c["nbf"] = now.Add(10 * time.Minute).Unix() })), 401},
		{"wrong audience", sign(t, key, kid, claims(func(c map[string]any) { c["aud"] = []string{"account"}; c["azp"] = "other-app" })), 401},
		{"wrong issuer", sign(t, key, kid, claims(func(c map[string]any) { c["iss"] = "https://evil.example/realms/x" })), 401},
		{"alg none", none, 401},
		{"HS256 with the public key", hs, 401},
		{"ID token as bearer", sign(t, key, kid, claims(func(c map[string]any) { c["typ"] = "ID" })), 401},
		{"member of another CPTS", sign(t, key, kid, claims(func(c map[string]any) { c["preferred_username"] = "coord.autre" })), 403},
		{"nobody", sign(t, key, kid, claims(func(c map[string]any) { c["preferred_username"] = "mallory" })), 403},
	}
	for _, tc := range cases {
		r := tp.do(t, "GET", "/fhir/Patient", tc.token, "")
		if r.status != tc.want {
			t.Errorf("%s: %d, want %d: %s", tc.name, r.status, tc.want, r.body)
			continue
		}
		if tc.want == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: no Bearer challenge", tc.name)
		}
	}
}

func base64DecodeOrDie(t *testing.T, s string) string {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestSearchInjection fills search parameters with SQL and FHIRPath
// injection strings: each gets a 400 saying which parameter is wrong, or a
// search that finds nothing — never an error of ours, never data.
func TestSearchInjection(t *testing.T) {
	tp := startPlatform(t, nil)
	seedVictim(t, tp.Store, tp.Cfg.Tenant, "victim", "SECRETVICTIM")
	coord := tp.token(t, "coord.cpts")
	nurse := tp.token(t, "ide.martin")
	evil := []string{
		`' OR '1'='1`, `1; DROP TABLE resources; --`, `x' UNION SELECT body FROM resources --`, `%' OR 1=1 --`,
		`Patient/x' OR 'a'='a`, `") or true or ("`, `Patient.name.where(true)`, `%00`, `\' OR 1=1 #`,
		`$this.descendants()`, `iif(true, 'a', 'b')`, `*`, `%`, `_`, `\`, `ge2020' OR '1'='1`,
	}
	params := []struct{ typ, name string }{
		{"Patient", "identifier"}, {"Patient", "name"}, {"Patient", "_id"}, {"Observation", "patient"}, {"Observation", "code"},
		{"Task", "owner"}, {"Task", "status"}, {"Task", "focus"}, {"EpisodeOfCare", "status"}, {"Encounter", "date"},
		{"Observation", "date"}, {"AuditEvent", "patient"}, {"Patient", "_lastUpdated"},
	}
	before := tp.count(t, "Patient")
	for _, who := range []string{coord, nurse} {
		for _, p := range params {
			for _, e := range evil {
				path := "/fhir/" + p.typ + "?" + url.QueryEscape(p.name) + "=" + url.QueryEscape(e) + "&_total=accurate"
				r := tp.do(t, "GET", path, who, "")
				switch r.status {
				case 400:
					outcome(t, r, 400, "")
				case 200, 403:
					if strings.Contains(string(r.body), "SECRETVICTIM") {
						t.Errorf("%s: data came back: %.200s", path, r.body)
					}
					if r.status == 200 {
						if total, ok := r.json(t)["total"]; ok && total != float64(0) {
							t.Errorf("%s: total %v, want 0", path, total)
						}
					}
				default:
					t.Errorf("%s: %d %.300s", path, r.status, r.body)
				}
			}
		}
	}
	if got := tp.count(t, "Patient"); got != before {
		t.Errorf("patients %d after the injections, want %d", got, before)
	}
}

// TestAuditEvents checks that reads, searches and writes of patient data
// leave BALP-shaped AuditEvents that the coordinator finds by patient, that
// others cannot, and that the chain is per tenant.
func TestAuditEvents(t *testing.T) {
	tp := startPlatform(t, nil)
	v := seedVictim(t, tp.Store, tp.Cfg.Tenant, "victim", "SECRETVICTIM")
	seedVictim(t, tp.Store, "autre", "autre", "SECRETAUTRE")
	coord := tp.token(t, "coord.cpts")
	nurse := tp.token(t, "ide.martin")
	if r := tp.do(t, "GET", "/fhir/Observation/"+v.ids["observation"], coord, ""); r.status != 200 {
		t.Fatalf("read: %d", r.status)
	}
	tp.do(t, "GET", "/fhir/Observation?patient=Patient/"+v.ids["patient"], coord, "")
	outcome(t, tp.do(t, "GET", "/fhir/Patient/"+v.ids["patient"], nurse, ""), 403, "")
	// Another tenant's trail is another chain.
	if err := tp.Store.Tx(context.Background(), func(tx store.Tx) error {
		return tx.Audit(context.Background(), store.AuditRecord{Tenant: "autre", Agent: "PractitionerRole/x", Action: "R", Entity: "Patient/pat-autre",
			Patient: "Patient/pat-autre", Outcome: "0"})
	}); err != nil {
		t.Fatal(err)
	}

	r := tp.do(t, "GET", "/fhir/AuditEvent?patient=Patient/"+v.ids["patient"]+"&_count=50", coord, "")
	if r.status != 200 {
		t.Fatalf("AuditEvent search: %d %s", r.status, r.body)
	}
	var b struct {
		Entry []struct {
			Resource struct {
				ResourceType string
				Type         struct{ Code string }
				Subtype      []struct{ Code string }
				Action       string
				Outcome      string
				Recorded     string
				Agent        []struct{ Who struct{ Reference string } }
				Entity       []struct {
					What struct{ Reference string }
				}
			}
		}
	}
	if err := json.Unmarshal(r.body, &b); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range b.Entry {
		ev := e.Resource
		if ev.ResourceType != "AuditEvent" || ev.Recorded == "" || len(ev.Agent) == 0 || len(ev.Subtype) == 0 {
			t.Fatalf("not a BALP AuditEvent: %+v", ev)
		}
		patient := ""
		for _, en := range ev.Entity {
			if en.What.Reference == "Patient/"+v.ids["patient"] {
				patient = "patient"
			}
		}
		got = append(got, ev.Type.Code+" "+ev.Subtype[0].Code+" "+ev.Action+" "+ev.Outcome+" "+ev.Agent[0].Who.Reference+" "+patient)
	}
	joined := strings.Join(got, "\n")
	for _, want := range []string{
		"rest read R 0 PractitionerRole/pr-coord-cpts patient",
		"rest search-type E 0 PractitionerRole/pr-coord-cpts patient",
		"rest read R 4 PractitionerRole/pr-ide-martin patient",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("no AuditEvent %q among:\n%s", want, joined)
		}
	}
	if strings.Contains(string(r.body), "pat-autre") {
		t.Errorf("another tenant's audit record is served: %s", r.body)
	}
	// The trail is the coordinator's alone.
	outcome(t, tp.do(t, "GET", "/fhir/AuditEvent?patient=Patient/"+v.ids["patient"], nurse, ""), 403, "")
	outcome(t, tp.do(t, "GET", "/fhir/AuditEvent?patient=Patient/"+v.ids["patient"], tp.token(t, "admin"), ""), 403, "")
	outcome(t, tp.do(t, "GET", "/fhir/AuditEvent?agent=x", coord, ""), 400, "agent")
	outcome(t, tp.do(t, "POST", "/fhir/AuditEvent", coord, `{"resourceType":"AuditEvent"}`), 403, "")
	if n, err := VerifyAudit(context.Background(), tp.Store.AuditLog()); err != nil || n < 5 {
		t.Errorf("verify: %d records, %v", n, err)
	}
	recs, _ := tp.Store.AuditLog().List(context.Background(), 0, 1000)
	prev := map[string]string{}
	for _, rec := range recs {
		if rec.PrevHash != prev[rec.Tenant] {
			t.Fatalf("record %d (tenant %s) does not follow its tenant's previous record", rec.Seq, rec.Tenant)
		}
		prev[rec.Tenant] = rec.Hash
	}
	if prev["autre"] == "" {
		t.Error("no record of tenant autre")
	}
}

// TestAuditChainDetectsTampering edits, then deletes, a record in the
// database file and runs `passerelle audit verify`.
func TestAuditChainDetectsTampering(t *testing.T) {
	tp := startPlatform(t, nil)
	coord := tp.token(t, "coord.cpts")
	for i := 0; i < 3; i++ {
		tp.do(t, "GET", "/fhir/Patient", coord, "")
		tp.do(t, "GET", "/fhir/Observation", coord, "")
	}
	dataDir := tp.Cfg.DataDir
	tp.stop()
	tp.stop = nil
	verify := func() (string, error) {
		var out strings.Builder
		err := cmdAudit(context.Background(), []string{"verify", "--data-dir", dataDir, "--mllp-addr", "", "--http-addr", "127.0.0.1:0"}, &out, &out)
		return out.String(), err
	}
	if out, err := verify(); err != nil || !strings.Contains(out, "intact") {
		t.Fatalf("untouched trail: %s %v", out, err)
	}
	db, err := sql.Open("sqlite", filepath.Join(dataDir, "passerelle.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	exec := func(q string) {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	// Edited: someone changes who read.
	exec(`UPDATE audit SET agent = 'PractitionerRole/pr-dr-petit' WHERE seq = 3`)
	if _, err := verify(); err == nil || !strings.Contains(err.Error(), "record 3") || !strings.Contains(err.Error(), "changed") {
		t.Errorf("edited record: %v", err)
	}
	exec(`UPDATE audit SET agent = 'PractitionerRole/pr-coord-cpts' WHERE seq = 3`)
	if _, err := verify(); err != nil {
		t.Fatalf("restored record: %v", err)
	}
	// The last (sequence, hash), kept elsewhere, is checked with --expect.
	out, err := verify()
	m := regexp.MustCompile(`tenant demo: last record (\d+:[0-9a-f]{64})`).FindStringSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("verify prints no last record: %s %v", out, err)
	}
	expect := func(e string) (string, error) {
		var out strings.Builder
		err := cmdAudit(context.Background(), []string{"verify", "--expect", e, "--data-dir", dataDir, "--mllp-addr", "", "--http-addr", "127.0.0.1:0"}, &out, &out)
		return out.String(), err
	}
	if out, err := expect(m[1]); err != nil || !strings.Contains(out, "expected record "+m[1]+" found") {
		t.Errorf("--expect the last record: %s %v", out, err)
	}
	seq, _, _ := strings.Cut(m[1], ":")
	if _, err := expect(seq + ":" + strings.Repeat("0", 64)); err == nil || !strings.Contains(err.Error(), "rewritten") {
		t.Errorf("--expect another hash: %v", err)
	}
	if _, err := expect("99999:" + strings.Repeat("0", 64)); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("--expect a record past the end: %v", err)
	}
	// Edited, and the whole chain after it re-hashed as anyone with the
	// database can (the unkeyed hash): the key, outside the database, is
	// what they lack.
	rows, err := db.Query(`SELECT seq, tenant, at, agent, action, entity, patient, outcome, detail FROM audit WHERE seq >= 2 ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	var recs []store.AuditRecord
	for rows.Next() {
		var r store.AuditRecord
		var at int64
		if err := rows.Scan(&r.Seq, &r.Tenant, &at, &r.Agent, &r.Action, &r.Entity, &r.Patient, &r.Outcome, &r.Detail); err != nil {
			t.Fatal(err)
		}
		r.Time = time.UnixMicro(at)
		recs = append(recs, r)
	}
	rows.Close()
	var prev string
	if err := db.QueryRow(`SELECT hash FROM audit WHERE seq = 1`).Scan(&prev); err != nil {
		t.Fatal(err)
	}
	recs[0].Outcome = "4"
	for _, r := range recs {
		r.PrevHash = prev
		r.Hash = store.AuditHash(r)
		if _, err := db.Exec(`UPDATE audit SET outcome = ?, prev_hash = ?, hash = ? WHERE seq = ?`, r.Outcome, r.PrevHash, r.Hash, r.Seq); err != nil {
			t.Fatal(err)
		}
		prev = r.Hash
	}
	if _, err := verify(); err == nil || !strings.Contains(err.Error(), "record 2") || !strings.Contains(err.Error(), "changed") {
		t.Errorf("re-hashed chain: %v", err)
	}
	// Deleted.
	exec(`DELETE FROM audit WHERE seq = 2`)
	if _, err := verify(); err == nil || !strings.Contains(err.Error(), "record 2 is missing") {
		t.Errorf("deleted record: %v", err)
	}
}

// TestDevelopmentProviderRefusedInProduction: production mode never runs
// the development identity provider, whether the configuration comes from
// the environment or is built by hand.
func TestDevelopmentProviderRefusedInProduction(t *testing.T) {
	_, _, err := LoadConfig(flag.NewFlagSet("t", flag.ContinueOnError), []string{"--env", "production"}, func(string) (string, bool) { return "", false })
	if err == nil || !strings.Contains(err.Error(), "PASSERELLE_OIDC_ISSUER") {
		t.Errorf("--env production without an issuer: %v", err)
	}
	cfg := Config{HTTPAddr: "127.0.0.1:0", DataDir: t.TempDir(), PublicURL: "http://x", OIDCClientID: "passerelle", Env: "production"}
	p, err := Open(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil {
		p.Close()
		t.Fatal("the development provider started in production mode")
	}
	if !strings.Contains(err.Error(), "production") {
		t.Errorf("error does not say why: %v", err)
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key, and returns
// their paths and a pool trusting it.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "passerelle test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	_ = os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	pk, _ := x509.MarshalPKCS8PrivateKey(key)
	_ = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestTLS runs HTTP and MLLP over TLS: the API answers over HTTPS only, a
// hospital's ADT message gets its ACK over TLS, and the session cookies
// are Secure.
func TestTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	addr := freeAddr(t)
	tp := startPlatform(t, map[string]string{"PASSERELLE_TLS_CERT": certFile, "PASSERELLE_TLS_KEY": keyFile, "PASSERELLE_HTTP_ADDR": addr})
	if tp.Cfg.PublicURL != "https://"+addr {
		t.Fatalf("public URL %s", tp.Cfg.PublicURL)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Get("https://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || res.TLS == nil || res.TLS.Version < tls.VersionTLS12 {
		t.Errorf("HTTPS: %d %+v", res.StatusCode, res.TLS)
	}
	if res, err := http.Get("http://" + addr + "/healthz"); err == nil {
		res.Body.Close()
		if res.StatusCode == 200 {
			t.Error("plain HTTP answered on the TLS port")
		}
	}
	res, err = client.Get("https://" + addr + "/login")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	for _, c := range res.Cookies() {
		if !c.Secure || !c.HttpOnly {
			t.Errorf("cookie %s over HTTPS: Secure %v HttpOnly %v", c.Name, c.Secure, c.HttpOnly)
		}
	}
	// MLLP over TLS.
	msg, err := os.ReadFile(filepath.Join("..", "intake", "testdata", "hl7", "adt-a03-cardiology-discharge.hl7"))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", tp.MLLPListener.Addr().String(), &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	frame := "\x0b" + strings.ReplaceAll(strings.TrimRight(string(msg), "\n"), "\n", "\r") + "\r\x1c\r"
	if _, err := conn.Write([]byte(frame)); err != nil {
		t.Fatal(err)
	}
	ack, err := bufio.NewReader(conn).ReadString('\x1c')
	if err != nil {
		t.Fatalf("no ACK over TLS: %v", err)
	}
	if !strings.Contains(ack, "MSA|AA") {
		t.Errorf("ACK over TLS: %q", ack)
	}
}

// TestFormerMemberGracePeriod: two days after her task for the patient was
// completed, ide.leroy still reads the patient's data through the FHIR API
// (PASSERELLE_ACCESS_GRACE, 7 days by default), each read audited as a
// grace read, and writes nothing: no measurement, no death, no alert
// acknowledged, no task moved, by the API or the web pages. With no grace
// period she reads nothing either.
func TestFormerMemberGracePeriod(t *testing.T) {
	tp := startPlatform(t, nil)
	ctx := context.Background()
	v := formerVictim(t, tp.Store, tp.Cfg.Tenant, "grace", "SECRETGRACE", formerTaskCompleted, time.Now().Add(-48*time.Hour))
	patient := "Patient/" + v.ids["patient"]
	flag := `{"resourceType":"Flag","id":"flag-grace","status":"active","code":{"text":"poids"},"subject":{"reference":"` + patient + `"}}`
	if err := tp.Store.Tx(ctx, func(tx store.Tx) error { _, err := tx.Create(ctx, tp.Cfg.Tenant, []byte(flag)); return err }); err != nil {
		t.Fatal(err)
	}
	leroy, web := tp.token(t, "ide.leroy"), tp.webLogin(t, "ide.leroy")
	for _, path := range []string{
		"/fhir/Observation/" + v.ids["observation"],
		"/fhir/Observation?_total=accurate",
		"/fhir/Task/" + v.ids["task"] + "/_history/3",
	} {
		if r := tp.do(t, "GET", path, leroy, ""); r.status != 200 || !strings.Contains(string(r.body), "SECRETGRACE") {
			t.Errorf("read under grace, GET %s: %d %.300s", path, r.status, r.body)
		}
	}
	recs, err := tp.Store.AuditLog().Find(ctx, store.AuditFilter{Tenant: tp.Cfg.Tenant, Patient: patient})
	if err != nil {
		t.Fatal(err)
	}
	grace := map[string]bool{}
	for _, rec := range recs {
		if rec.Agent == "PractitionerRole/pr-ide-leroy" && rec.Detail == access.AuditGrace {
			grace[rec.Action] = true
		}
	}
	if !grace["R"] || !grace["E"] {
		t.Errorf("grace reads and searches are not audited as such: %+v", recs)
	}

	observations := func() int {
		page, err := tp.Store.Search(ctx, store.Query{Tenant: tp.Cfg.Tenant, Type: "Observation", Total: true,
			Params: []store.Param{{Name: "patient", Kind: store.KindReference, Values: []store.Value{{Ref: patient}}}}})
		if err != nil {
			t.Fatal(err)
		}
		return page.Total
	}
	before := observations()
	for _, pr := range []probe{
		{method: "POST", path: "/fhir/Observation", body: `{"resourceType":"Observation","status":"final","code":{"text":"poids"},"subject":{"reference":"` + patient + `"},"valueQuantity":{"value":80,"unit":"kg"}}`},
		{method: "POST", path: "/api/outcomes/deaths", body: `{"patient":"` + patient + `","deceasedDateTime":"2026-01-01"}`},
		{method: "POST", path: "/fhir/Flag/flag-grace/$acknowledge"},
		{method: "PUT", path: "/fhir/Task/" + v.ids["task"], body: `{"resourceType":"Task","id":"` + v.ids["task"] + `","status":"in-progress","intent":"order"}`},
		{method: "POST", path: "/tasks/" + v.ids["task"] + "/visit", form: true, body: "weight-kg=80"},
		{method: "POST", path: "/alerts/flag-grace/ack", form: true},
	} {
		if status, body := tp.probe(t, pr, pr.path, pr.body, leroy, web); status >= 200 && status < 300 {
			t.Errorf("write under grace, %s %s: %d %.300s", pr.method, pr.path, status, body)
		}
	}
	if n := observations(); n != before {
		t.Errorf("observations of the patient: %d, were %d", n, before)
	}
	if res, err := tp.Store.Read(ctx, "Flag", "flag-grace"); err != nil || !strings.Contains(string(res.Body), `"status":"active"`) {
		t.Errorf("the alert was acknowledged: %s %v", res.Body, err)
	}
	if res, err := tp.Store.Read(ctx, "Task", v.ids["task"]); err != nil || !strings.Contains(string(res.Body), `"status":"completed"`) {
		t.Errorf("the task moved: %s %v", res.Body, err)
	}

	// No grace period: the care's end ends the reads too.
	strict := startPlatform(t, map[string]string{"PASSERELLE_ACCESS_GRACE": "0"})
	v = formerVictim(t, strict.Store, strict.Cfg.Tenant, "grace", "SECRETGRACE", formerTaskCompleted, time.Now().Add(-48*time.Hour))
	if r := strict.do(t, "GET", "/fhir/Observation/"+v.ids["observation"], strict.token(t, "ide.leroy"), ""); r.status != 403 {
		t.Errorf("no grace period: read %d %.300s", r.status, r.body)
	}
}

func TestAccessGraceSetting(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  time.Duration
		ok    bool
	}{
		{"", 7 * 24 * time.Hour, true}, // the default
		{"7d", 7 * 24 * time.Hour, true},
		{"48h", 48 * time.Hour, true},
		{"0", 0, true},
		{"-1h", 0, false},
		{"31d", 0, false},
		{"une semaine", 0, false},
	} {
		env := map[string]string{}
		if tc.value != "" {
			env["PASSERELLE_ACCESS_GRACE"] = tc.value
		}
		cfg, _, err := LoadConfig(flag.NewFlagSet("t", flag.ContinueOnError), nil, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
		switch {
		case tc.ok && (err != nil || cfg.AccessGrace != tc.want):
			t.Errorf("%q: %v %v, want %v", tc.value, cfg.AccessGrace, err, tc.want)
		case !tc.ok && (err == nil || !strings.HasPrefix(err.Error(), "PASSERELLE_ACCESS_GRACE:")):
			t.Errorf("%q: error %v, want one naming PASSERELLE_ACCESS_GRACE", tc.value, err)
		}
	}
	cfg, _, err := LoadConfig(flag.NewFlagSet("t", flag.ContinueOnError), []string{"--access-grace", "2d"}, func(string) (string, bool) { return "", false })
	if err != nil || cfg.AccessGrace != 48*time.Hour {
		t.Errorf("flag: %v %v", cfg.AccessGrace, err)
	}
}
