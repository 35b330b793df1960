package event_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/bus/event"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// recorded is a message as a consumer received it, captured from the
// producers as they were before this package existed (testdata/*.json):
// intake's Encounter Bundle with absolute fullUrls, pathway's EpisodeOfCare
// Bundle, teams' batches and single resources.
type recorded struct {
	Subject string            `json:"subject"`
	Header  map[string]string `json:"header"`
	Data    json.RawMessage   `json:"data"`
}

func (r recorded) msg() bus.Msg {
	return bus.Msg{Subject: r.Subject, Header: r.Header, Data: r.Data, NumDelivered: 1}
}

func loadRecorded(t testing.TB) map[string]recorded {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no recorded events: %v", err)
	}
	out := map[string]recorded{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var r recorded
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[filepath.Base(f)] = r
	}
	return out
}

// msgOf is what a consumer receives for an outbox row: the relay adds the
// message id to the row's headers.
func msgOf(ev store.Event) bus.Msg {
	h := map[string]string{bus.HeaderMsgID: ev.MsgID, bus.HeaderEventID: ev.MsgID}
	for k, v := range ev.Headers {
		h[k] = v
	}
	return bus.Msg{Subject: ev.Subject, Header: h, Data: ev.Data, NumDelivered: 1}
}

func res(typ, id string, version int64, body string) store.Resource {
	return store.Resource{Tenant: "t1", Type: typ, ID: id, Version: version, Body: json.RawMessage(body)}
}

func TestRoundTrip(t *testing.T) {
	ep := res("EpisodeOfCare", "ep1", 3, `{"resourceType":"EpisodeOfCare","id":"ep1","status":"active","meta":{"versionId":"3"}}`)
	cp := res("CarePlan", "cp1", 1, `{"resourceType":"CarePlan","id":"cp1","status":"active"}`)
	t1 := res("Task", "t1", 2, `{"resourceType":"Task","id":"t1","status":"requested","owner":{"reference":"PractitionerRole/pr1"}}`)
	t2 := res("Task", "t2", 5, "{\n  \"resourceType\": \"Task\",\n  \"id\": \"t2\", \"note\": [{\"text\": \"é \\\"cité\\\" </script>\"}]\n}")
	enc := res("Encounter", "e1", 1, `{"resourceType":"Encounter","id":"e1","subject":{"reference":"Patient/p1"}}`)
	pat := res("Patient", "p1", 4, `{"resourceType":"Patient","id":"p1","birthDate":"1950-01-02"}`)
	for _, tc := range []struct {
		name      string
		change    func() event.Change
		wantID    string
		wantData  string // "resource" or "bundle"
		wantCount int
	}{
		{"one resource", func() event.Change { return event.New("t1", bus.OpUpdated, "", t1) },
			"Task/t1/_history/2", "resource", 1},
		{"a resource with its related ones", func() event.Change {
			return event.New("t1", bus.OpCreated, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", ep, cp, t1, t2)
		}, "EpisodeOfCare/ep1/_history/3", "bundle", 4},
		{"a batch of one type", func() event.Change { return event.New("t1", bus.OpUpdated, "", t1, t2) },
			"Task-batch/", "bundle", 2},
		{"an intake stay", func() event.Change {
			c := event.New("t1", bus.OpUpdated, "", enc, pat)
			c.IntakeEvent = "discharge"
			return c
		}, "Encounter/e1/_history/1", "bundle", 2},
		{"a message id given", func() event.Change {
			c := event.New("t1", bus.OpUpdated, "", t1, t2)
			c.MsgID = "chosen"
			return c
		}, "chosen", "bundle", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.change()
			ev, err := want.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(ev.MsgID, tc.wantID) {
				t.Errorf("message id %q, want %q", ev.MsgID, tc.wantID)
			}
			lead := want.Resources[0]
			if wantSubject := bus.ResourceSubject("t1", lead.Type, want.Op); ev.Subject != wantSubject || ev.Key != lead.Type+"/"+lead.ID {
				t.Errorf("subject %q key %q, want %q and %s/%s", ev.Subject, ev.Key, wantSubject, lead.Type, lead.ID)
			}
			var root map[string]any
			if err := json.Unmarshal(ev.Data, &root); err != nil {
				t.Fatalf("event data is not JSON: %v\n%s", err, ev.Data)
			}
			if isBundle := root["resourceType"] == "Bundle" && root["type"] == "history"; isBundle != (tc.wantData == "bundle") {
				t.Errorf("data is a history Bundle: %v, want %s", isBundle, tc.wantData)
			}
			got, err := event.Decode(msgOf(ev))
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Resources) != tc.wantCount {
				t.Fatalf("%d resources decoded, want %d", len(got.Resources), tc.wantCount)
			}
			for i, r := range got.Resources {
				var body map[string]any
				if err := json.Unmarshal(want.Resources[i].Body, &body); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(r.Obj, body) {
					t.Errorf("resource %d decoded as %v, want %v", i, r.Obj, body)
				}
				// Decode gives the JSON decoded, not its text.
				got.Resources[i].Obj, want.Resources[i].Body = nil, nil
			}
			want.MsgID = ev.MsgID
			want.Delivery = 1
			if !reflect.DeepEqual(got, want) {
				t.Errorf("decoded\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

// TestOrderKey: the order key header is the patient the lead is about —
// itself, or its subject, patient, for or beneficiary when it names a
// Patient —, else the lead itself; read from the stored JSON (what
// producers give) and from the decoded form (what a consumer edits and
// emits again) alike.
func TestOrderKey(t *testing.T) {
	for _, tc := range []struct {
		typ, body, want string
	}{
		{"Patient", `{"resourceType":"Patient","id":"x"}`, "Patient/x"},
		{"Encounter", `{"resourceType":"Encounter","id":"x","subject":{"reference":"Patient/p1"}}`, "Patient/p1"},
		{"EpisodeOfCare", `{"resourceType":"EpisodeOfCare","id":"x","status":"active","patient":{"reference":"Patient/p2"}}`, "Patient/p2"},
		{"Task", `{"resourceType":"Task","id":"x","for":{"reference":"Patient/p3"},"owner":{"reference":"PractitionerRole/r"}}`, "Patient/p3"},
		{"Coverage", `{"resourceType":"Coverage","id":"x","beneficiary":{"reference":"Patient/p4"}}`, "Patient/p4"},
		{"Observation", `{"resourceType":"Observation","id":"x","subject":{"reference":"Group/g1"}}`, "Observation/x"},
		{"Observation", `{"resourceType":"Observation","id":"x","subject":{"reference":"Patient/p5/_history/2"}}`, "Observation/x"},
		{"Communication", `{"resourceType":"Communication","id":"x","recipient":[{"reference":"Patient/p6"}]}`, "Communication/x"},
		{"Flag", `{"resourceType":"Flag","id":"x","subject":"Patient/p7"}`, "Flag/x"},
		{"Organization", `{"resourceType":"Organization","id":"x"}`, "Organization/x"},
	} {
		r := res(tc.typ, "x", 1, tc.body)
		ev, err := event.New("t1", bus.OpCreated, "", r).Encode()
		if err != nil {
			t.Fatal(err)
		}
		if got := ev.Headers[bus.HeaderOrderKey]; got != tc.want {
			t.Errorf("%s: order key %q from the stored JSON, want %q", tc.body, got, tc.want)
		}
		c, err := event.Decode(msgOf(ev))
		if err != nil {
			t.Fatal(err)
		}
		if got := event.OrderKey(c.Resources[0]); got != tc.want {
			t.Errorf("%s: order key %q from the decoded resource, want %q", tc.body, got, tc.want)
		}
		if ev2, err := c.Encode(); err != nil || ev2.Headers[bus.HeaderOrderKey] != tc.want {
			t.Errorf("%s: encoded again, order key %q (%v), want %q", tc.body, ev2.Headers[bus.HeaderOrderKey], err, tc.want)
		}
	}
	// The lead's, not the related resources'.
	enc := res("Encounter", "e1", 1, `{"resourceType":"Encounter","id":"e1","subject":{"reference":"Patient/p1"}}`)
	cp := res("CarePlan", "cp1", 1, `{"resourceType":"CarePlan","id":"cp1","subject":{"reference":"Patient/other"}}`)
	ev, err := event.New("t1", bus.OpUpdated, "", enc, cp).Encode()
	if err != nil {
		t.Fatal(err)
	}
	if got := ev.Headers[bus.HeaderOrderKey]; got != "Patient/p1" {
		t.Errorf("order key of a Bundle led by Encounter/e1: %q, want Patient/p1", got)
	}
}

func TestEncodeRefuses(t *testing.T) {
	if _, err := (event.Change{Tenant: "t1", Op: bus.OpCreated}).Encode(); !errors.Is(err, event.ErrEmpty) {
		t.Errorf("a change without resources: %v, want ErrEmpty", err)
	}
	b := res("Bundle", "b1", 1, `{"resourceType":"Bundle","id":"b1","type":"collection"}`)
	if _, err := event.New("t1", bus.OpCreated, "", b).Encode(); !errors.Is(err, event.ErrBundle) {
		t.Errorf("a Bundle resource: %v, want ErrBundle", err)
	}
}

// TestDecodeRecorded reads messages as the producers wrote them before
// this package, and checks that encoding what was decoded gives the same
// message again: subject, id, ordering key, headers and JSON — except that
// intake's fullUrls, absolute then, are relative now as everyone else's.
func TestDecodeRecorded(t *testing.T) {
	for name, rec := range loadRecorded(t) {
		t.Run(name, func(t *testing.T) {
			c, err := event.Decode(rec.msg())
			if err != nil {
				t.Fatal(err)
			}
			parts := strings.Split(rec.Subject, ".")
			if c.Tenant != "demo" || c.Op != parts[3] || c.Resources[0].Type != parts[2] || c.Trace != rec.Header[bus.HeaderTraceparent] {
				t.Errorf("tenant %q op %q lead %s trace %q, from %s", c.Tenant, c.Op, c.Resources[0].Type, c.Trace, rec.Subject)
			}
			for i, r := range c.Resources {
				if r.ID == "" || r.Version <= 0 || r.Obj["id"] != r.ID {
					t.Errorf("resource %d: %s/%s version %d", i, r.Type, r.ID, r.Version)
				}
			}
			if strings.HasPrefix(name, "intake-") && c.IntakeEvent != "discharge" {
				t.Errorf("intake event %q, want discharge", c.IntakeEvent)
			}
			again := c
			again.MsgID = "" // derived again, as a producer does
			ev, err := again.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if ev.Subject != rec.Subject || ev.MsgID != rec.Header[bus.HeaderMsgID] || ev.Key != c.Resources[0].Type+"/"+c.Resources[0].ID {
				t.Errorf("encoded on %s as %s key %s; recorded on %s as %s", ev.Subject, ev.MsgID, ev.Key, rec.Subject, rec.Header[bus.HeaderMsgID])
			}
			for k, v := range ev.Headers {
				if k == bus.HeaderOrderKey {
					// Recorded before the header existed (TestOrderKey).
					continue
				}
				if rec.Header[k] != v {
					t.Errorf("header %s = %q, recorded %q", k, v, rec.Header[k])
				}
			}
			for _, k := range []string{bus.HeaderResourceType, bus.HeaderVersion, bus.HeaderTenant, bus.HeaderTraceparent, bus.HeaderIntakeEvent} {
				if _, ok := ev.Headers[k]; rec.Header[k] != "" && !ok {
					t.Errorf("header %s recorded, not encoded", k)
				}
			}
			if g, w := relativeURLs(t, ev.Data), relativeURLs(t, rec.Data); !reflect.DeepEqual(g, w) {
				t.Errorf("encoded JSON differs from the recorded one:\n%s", ev.Data)
			}
		})
	}
}

// relativeURLs decodes an event's JSON with every Bundle fullUrl made
// relative ("<Type>/<id>").
func relativeURLs(t *testing.T, data []byte) any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	for _, e := range asList(v["entry"]) {
		e := e.(map[string]any)
		if u, ok := e["fullUrl"].(string); ok {
			if i := strings.Index(u, "/fhir/"); i >= 0 {
				e["fullUrl"] = u[i+len("/fhir/"):]
			}
		}
	}
	return v
}

func asList(v any) []any { l, _ := v.([]any); return l }

// TestDecodeOlderForms reads what producers wrote before: a history Bundle
// of one entry (pathway's episode changes), a single resource without the
// version header (its meta.versionId stands in), no tenant header (the
// subject's tenant stands in).
func TestDecodeOlderForms(t *testing.T) {
	rec := loadRecorded(t)["pathway-episode-created.json"]
	var b struct {
		Entry []json.RawMessage `json:"entry"`
	}
	if err := json.Unmarshal(rec.Data, &b); err != nil {
		t.Fatal(err)
	}
	one := bus.Msg{Subject: rec.Subject, Header: map[string]string{bus.HeaderTenant: "demo"},
		Data: []byte(`{"resourceType":"Bundle","type":"history","entry":[` + string(b.Entry[0]) + `]}`)}
	c, err := event.Decode(one)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Resources) != 1 || c.Resources[0].Type != "EpisodeOfCare" || len(c.Of("EpisodeOfCare")) != 1 || c.Resources[0].Version != 1 {
		t.Errorf("one-entry Bundle: %+v", c.Resources)
	}
	bare := bus.Msg{Subject: "fhir.other.Task.updated", Data: []byte(`{"resourceType":"Task","id":"t9","meta":{"versionId":"7"}}`)}
	c, err = event.Decode(bare)
	if err != nil {
		t.Fatal(err)
	}
	if c.Tenant != "other" || c.Op != bus.OpUpdated || c.Resources[0].Version != 7 || c.TenantOr("x") != "other" {
		t.Errorf("bare Task: tenant %q op %q version %d", c.Tenant, c.Op, c.Resources[0].Version)
	}
	if (event.Change{}).TenantOr("x") != "x" {
		t.Error("TenantOr without a tenant")
	}
}

func TestDecodeRefuses(t *testing.T) {
	for name, data := range map[string]string{
		"not JSON":              `{`,
		"a list":                `[]`,
		"no resourceType":       `{"id":"x"}`,
		"empty Bundle":          `{"resourceType":"Bundle","type":"history","entry":[]}`,
		"entry without a body":  `{"resourceType":"Bundle","entry":[{"fullUrl":"Task/a"}]}`,
		"entry not an object":   `{"resourceType":"Bundle","entry":[{"resource":"Task/a"}]}`,
		"a Bundle in a Bundle":  `{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Bundle","entry":[]}}]}`,
		"entry list not a list": `{"resourceType":"Bundle","entry":{"resource":{"resourceType":"Task"}}}`,
	} {
		if _, err := event.Decode(bus.Msg{Subject: "fhir.demo.Task.updated", Data: []byte(data)}); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

// FuzzDecode: whatever a message holds, Decode does not panic, and what it
// decodes encodes to a message that decodes to the same change. The seeds
// are the recorded events; `go test` runs them as a normal test.
func FuzzDecode(f *testing.F) {
	for _, rec := range loadRecorded(f) {
		f.Add(rec.Subject, rec.Header[bus.HeaderTenant], rec.Header[bus.HeaderVersion], rec.Header[bus.HeaderIntakeEvent], []byte(rec.Data))
	}
	f.Add("fhir.demo.Task.updated", "", "", "", []byte(`{"resourceType":"Task","id":"t1","meta":{"versionId":"2"}}`))
	f.Fuzz(func(t *testing.T, subject, tenant, version, intake string, data []byte) {
		h := map[string]string{bus.HeaderTenant: tenant, bus.HeaderVersion: version, bus.HeaderIntakeEvent: intake, bus.HeaderMsgID: "m1"}
		c, err := event.Decode(bus.Msg{Subject: subject, Header: h, Data: data})
		if err != nil {
			return
		}
		if len(c.Resources) == 0 {
			t.Fatal("decoded a change without resources")
		}
		ev, err := c.Encode()
		if err != nil {
			t.Fatalf("a decoded change does not encode: %v", err)
		}
		again, err := event.Decode(msgOf(ev))
		if err != nil {
			t.Fatalf("an encoded change does not decode: %v\n%s", err, ev.Data)
		}
		c.Delivery, again.Delivery = 0, 0
		if !reflect.DeepEqual(c, again) {
			t.Fatalf("decode → encode → decode changed the change:\n%+v\n%+v", c, again)
		}
	})
}

// BenchmarkDecode decodes pathway's episode event of a discharge (the
// EpisodeOfCare with its CarePlan, Goals and 13 Tasks), as each of its three
// consumers does once per delivery.
func BenchmarkDecode(b *testing.B) {
	m := loadRecorded(b)["pathway-episode-created.json"].msg()
	b.SetBytes(int64(len(m.Data)))
	for b.Loop() {
		if _, err := event.Decode(m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncode encodes the same change from the stored resources, as
// pathway does once per change.
func BenchmarkEncode(b *testing.B) {
	d, err := event.Decode(loadRecorded(b)["pathway-episode-created.json"].msg())
	if err != nil {
		b.Fatal(err)
	}
	var rs []store.Resource
	for _, r := range d.Resources {
		body, err := json.Marshal(r.Obj)
		if err != nil {
			b.Fatal(err)
		}
		rs = append(rs, store.Resource{Type: r.Type, ID: r.ID, Version: r.Version, Body: body})
	}
	c := event.New(d.Tenant, d.Op, "", rs...)
	for b.Loop() {
		if _, err := c.Encode(); err != nil {
			b.Fatal(err)
		}
	}
}
