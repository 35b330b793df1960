//go:build unix

package ui

import (
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// BenchmarkWorklist measures the first page of "Mes tâches" for a nurse
// with 200 open tasks over 50 patients (each with its care team): the
// server time of one request (mean, and p50/p99 over the run), the CPU
// time of the process per request (steadier than wall time on a shared
// machine; it includes the database's goroutines for SQLite), and the
// page's weight, HTML plus the style sheet and script it loads,
// uncompressed.
//
// With the access cache (the steady state of a page refreshed by live
// updates, answers younger than Deps.AccessTTL) and without it (a first
// view, every patient's access asked):
//
//	go test -run '^$' -bench Worklist -benchtime 500x -count 3 ./services/worklist/ui/
func BenchmarkWorklist(b *testing.B) {
	for _, ttl := range []time.Duration{0, -1} {
		name := "cached-access"
		if ttl < 0 {
			name = "uncached-access"
		}
		b.Run("sqlite/"+name, func(b *testing.B) { benchWorklist(b, openSQLite(b), ttl) })
		b.Run("postgres/"+name, func(b *testing.B) { benchWorklist(b, openPostgres(b), ttl) })
	}
}

// benchWorklist runs the page with the access cache's TTL (0: the
// default; negative: the policy asked for every patient of every view).
func benchWorklist(b *testing.B, st store.Store, ttl time.Duration) {
	r := newRig(b, st)
	if ttl != 0 {
		r.ui.d.AccessTTL = ttl
	}
	const patients, perPatient = 50, 4
	for p := range patients {
		pid := fmt.Sprintf("bp%02d", p)
		r.create(obj{"resourceType": "Patient", "id": pid, "name": []any{obj{"family": "PATIENT" + pid, "given": []any{"Anne"}}}, "birthDate": "1950-01-01"})
		r.create(obj{"resourceType": "CareTeam", "id": "ct-" + pid, "status": "active", "subject": obj{"reference": "Patient/" + pid},
			"participant": []any{obj{"role": []any{obj{"coding": []any{obj{"system": directory.SystemTeamRole, "code": "nurse"}}}},
				"member": obj{"reference": "PractitionerRole/pr-ide-leroy"}}}})
		for k := range perPatient {
			t := task(fmt.Sprintf("bt-%s-%d", pid, k), "PractitionerRole/pr-ide-leroy", "nurse", []string{"requested", "accepted"}[k%2],
				"Visite infirmière de suivi (poids, symptômes, éducation)", day((p*perPatient+k)%40-5, 12))
			t["for"] = obj{"reference": "Patient/" + pid}
			r.create(t)
		}
	}
	mux := http.NewServeMux()
	r.ui.Register(mux)
	get := func() *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/worklist", nil)
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: "ide.leroy"})
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		return rec
	}
	first := get()
	if first.Code != http.StatusOK || strings.Count(first.Body.String(), "data-task-id=") != 50 {
		b.Fatalf("first page: %d, %d tasks", first.Code, strings.Count(first.Body.String(), "data-task-id="))
	}
	assets := 0
	for _, name := range []string{"style.css", "app.js"} {
		f, err := fs.ReadFile(r.ui.files, name)
		if err != nil {
			b.Fatal(err)
		}
		assets += len(f)
	}
	var times []time.Duration
	cpu0 := cpuTime()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		if rec := get(); rec.Code != http.StatusOK {
			b.Fatalf("status %d", rec.Code)
		}
		times = append(times, time.Since(start))
	}
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/float64(len(times)), "cpu-ms/op")
	slices.Sort(times)
	pct := func(p float64) float64 { return float64(times[int(p*float64(len(times)-1))].Microseconds()) / 1000 }
	b.ReportMetric(pct(0.5), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(first.Body.Len()), "html-B")
	b.ReportMetric(float64(first.Body.Len()+assets), "page-B")
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
