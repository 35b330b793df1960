package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/passerelle-sante/passerelle/pkg/idempotency"
	"github.com/passerelle-sante/passerelle/pkg/websession"
)

// TestIdempotentAPIWrites: a task accepted and an observation recorded
// through the API with an Idempotency-Key, sent again, write once and get
// their first answer; the same key with another body gets 422; the keys
// outlive the process.
func TestIdempotentAPIWrites(t *testing.T) {
	dir := t.TempDir()
	tp := startPlatform(t, map[string]string{"PASSERELLE_DATA_DIR": dir})
	v := seedVictim(t, tp.Store, tp.Cfg.Tenant, "idem", "IDEMPOTENT")
	gp := tp.token(t, "dr.bernard")
	taskID := v.ids["task"]
	task, err := tp.Store.Read(context.Background(), "Task", taskID)
	if err != nil {
		t.Fatal(err)
	}
	accepted := strings.Replace(string(task.Body), `"status":"requested"`, `"status":"accepted"`, 1)
	if accepted == string(task.Body) {
		t.Fatalf("task body has no requested status: %s", task.Body)
	}
	put := func(key string) response {
		return tp.do(t, "PUT", "/fhir/Task/"+taskID, gp, accepted, "If-Match", `W/"2"`, idempotency.Header, key)
	}
	first := put("accept-1")
	if first.status != http.StatusOK {
		t.Fatalf("accept: %d %s", first.status, first.body)
	}
	again := put("accept-1")
	if again.status != http.StatusOK || string(again.body) != string(first.body) || again.header.Get("ETag") != first.header.Get("ETag") ||
		again.header.Get(idempotency.ReplayedHeader) != "true" {
		t.Fatalf("accept again: %d %v %s; want the first answer %d %s", again.status, again.header, again.body, first.status, first.body)
	}
	if cur, _ := tp.Store.Read(context.Background(), "Task", taskID); cur.Version != 3 {
		t.Errorf("task at version %d after one acceptance sent twice, want 3", cur.Version)
	}

	obs := `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"29463-7"}]},
		"subject":{"reference":"Patient/` + v.ids["patient"] + `"},"effectiveDateTime":"2026-01-10T10:00:00Z",
		"valueQuantity":{"value":%s,"unit":"kg","system":"http://unitsofmeasure.org","code":"kg"}}`
	weight := func(kg string) string { return strings.Replace(obs, "%s", kg, 1) }
	before := tp.count(t, "Observation")
	o1 := tp.do(t, "POST", "/fhir/Observation", gp, weight("81.2"), idempotency.Header, "visit-1")
	if o1.status != http.StatusCreated {
		t.Fatalf("observation: %d %s", o1.status, o1.body)
	}
	o2 := tp.do(t, "POST", "/fhir/Observation", gp, weight("81.2"), idempotency.Header, "visit-1")
	if o2.status != http.StatusCreated || o2.header.Get("Location") != o1.header.Get("Location") {
		t.Fatalf("observation again: %d %s, want 201 at %s", o2.status, o2.header.Get("Location"), o1.header.Get("Location"))
	}
	other := tp.do(t, "POST", "/fhir/Observation", gp, weight("900"), idempotency.Header, "visit-1")
	outcome(t, other, http.StatusUnprocessableEntity, idempotency.Header)
	if n := tp.count(t, "Observation"); n != before+1 {
		t.Errorf("%d observations written, want 1", n-before)
	}

	// Another process on the same data: the keys are still there.
	tp.stop()
	tp.stop = nil
	tp2 := startPlatform(t, map[string]string{"PASSERELLE_DATA_DIR": dir})
	gp = tp2.token(t, "dr.bernard")
	o3 := tp2.do(t, "POST", "/fhir/Observation", gp, weight("81.2"), idempotency.Header, "visit-1")
	if o3.status != http.StatusCreated || o3.header.Get("Location") != o1.header.Get("Location") || string(o3.body) != string(o1.body) {
		t.Fatalf("observation after a restart: %d %s, want the first answer", o3.status, o3.header.Get("Location"))
	}
	if n := tp2.count(t, "Observation"); n != before+1 {
		t.Errorf("%d observations after the restart, want 1", n-before)
	}
}

// TestIdempotentWebForm: a worklist form posted twice with one key (the
// phone's queue retrying) changes the task once and answers the same.
func TestIdempotentWebForm(t *testing.T) {
	tp := startPlatform(t, nil)
	v := seedVictim(t, tp.Store, tp.Cfg.Tenant, "webidem", "WEBIDEM")
	web := tp.webLogin(t, "dr.bernard")
	post := func(key string) (int, string) {
		form := url.Values{"action": {"accept"}, "version": {"2"}, websession.CSRFField: {web.csrf}, idempotency.FormField: {key}}
		req, err := http.NewRequest("POST", tp.base+"/tasks/"+v.ids["task"]+"/action", strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.AddCookie(web.cookie)
		client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, res.Header.Get(idempotency.ReplayedHeader) + " " + res.Header.Get("Location") + " " + string(b)
	}
	s1, b1 := post("form-1")
	if s1 >= 400 {
		t.Fatalf("accept from the form: %d %s", s1, b1)
	}
	s2, b2 := post("form-1")
	// The second answer is the first replayed, not a refusal of a stale
	// version that happens to redirect to the same page.
	if s2 != s1 || b2 != "true"+b1 {
		t.Fatalf("the same form again: %d %s, want the first answer %d %s", s2, b2, s1, b1)
	}
	cur, err := tp.Store.Read(context.Background(), "Task", v.ids["task"])
	if err != nil {
		t.Fatal(err)
	}
	var task struct{ Status string }
	_ = json.Unmarshal(cur.Body, &task)
	if task.Status != "accepted" || cur.Version != 3 {
		t.Errorf("task %s at version %d, want accepted at version 3", task.Status, cur.Version)
	}
}
