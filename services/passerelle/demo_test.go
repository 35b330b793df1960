package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/passerelle-sante/passerelle/internal/demo"
)

// startDemo runs a whole --demo instance with a short simulation on dir
// and waits until /readyz says it is over, checking that it answered 503
// with the demo's progress meanwhile.
func startDemo(t *testing.T, dir string, months int, seed uint64) *testPlatform {
	t.Helper()
	old := demoOptions
	demoOptions = demo.Options{Seed: seed, Months: months}
	t.Cleanup(func() { demoOptions = old })
	tp := startPlatform(t, map[string]string{"--demo": "true", "PASSERELLE_DATA_DIR": dir})
	deadline := time.Now().Add(10 * time.Minute)
	for {
		r := tp.do(t, http.MethodGet, "/readyz", "", "")
		if r.status == http.StatusOK {
			break
		}
		if r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "demo") {
			t.Fatalf("readyz during the demo: %d %s", r.status, r.body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo not ready after 10 minutes: %s", r.body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return tp
}

// populations evaluates every shipped measure over everything and returns
// its populations, as the coordinator sees them.
func populations(t *testing.T, tp *testPlatform) map[string]map[string]int {
	t.Helper()
	coord := tp.token(t, "coord.cpts")
	out := map[string]map[string]int{}
	for _, m := range []string{"readmission-30d", "readmission-180d", "hf-readmission-180d", "mortality-180d", "mortality-365d",
		"first-contact-7d", "tasks-on-time"} {
		r := tp.do(t, http.MethodGet, "/fhir/Measure/"+m+"/$evaluate-measure?periodStart=2000-01-01&periodEnd=2100-01-01", coord, "")
		if r.status != http.StatusOK {
			t.Fatalf("%s: %d %s", m, r.status, r.body)
		}
		var rep struct {
			Group []struct {
				Population []struct {
					Code struct {
						Coding []struct{ Code string }
					}
					Count int
				}
			}
		}
		if err := json.Unmarshal(r.body, &rep); err != nil || len(rep.Group) == 0 {
			t.Fatalf("%s: %v %s", m, err, r.body)
		}
		out[m] = map[string]int{}
		for _, p := range rep.Group[0].Population {
			out[m][p.Code.Coding[0].Code] = p.Count
		}
	}
	return out
}

// The demo goes through the platform: the hospitals' messages, the
// professionals' work, alerts, notifications; its accounts can log in;
// measures have something to count; a restart on the same data starts at
// once without simulating again; the same seed tells the same story.
func TestDemo(t *testing.T) {
	dir := t.TempDir()
	tp := startDemo(t, dir, 1, 7)
	for _, typ := range []string{"Patient", "EpisodeOfCare", "CareTeam", "Task", "Observation", "QuestionnaireResponse", "Flag",
		"Communication", "Provenance"} {
		if n := tp.count(t, typ); n == 0 {
			t.Errorf("no %s after the demo", typ)
		}
	}
	pops := populations(t, tp)
	if pops["readmission-30d"]["initial-population"] < 10 || pops["tasks-on-time"]["numerator"] == 0 || pops["first-contact-7d"]["numerator"] == 0 {
		t.Errorf("measures: %v", pops)
	}
	// A demo member logs in and sees her tasks.
	nurse := tp.token(t, "ide.alouette")
	r := tp.do(t, http.MethodGet, "/fhir/Task?_count=5", nurse, "")
	if r.status != http.StatusOK {
		t.Fatalf("a demo member's search: %d %s", r.status, r.body)
	}
	patients := tp.count(t, "Patient")
	tp.stop()
	tp.stop = nil

	// Started again on the same data: ready at once, nothing simulated again.
	began := time.Now()
	again := startDemo(t, dir, 1, 7)
	if took := time.Since(began); took > 30*time.Second {
		t.Errorf("restart took %v: the simulation ran again?", took)
	}
	if n := again.count(t, "Patient"); n != patients {
		t.Errorf("%d patients after the restart, %d before", n, patients)
	}
	again.stop()
	again.stop = nil

	// The same seed on another data directory: the same figures.
	other := startDemo(t, t.TempDir(), 1, 7)
	if a, b := fmt.Sprint(pops), fmt.Sprint(populations(t, other)); a != b {
		t.Errorf("two runs with one seed differ:\n%s\n%s", a, b)
	}
}
