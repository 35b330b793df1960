// Command outcomes measures $evaluate-measure over a large synthetic data
// set: it loads N episodes (one outcome record per patient, as the
// outcomes service projects them) once, then times the evaluation of each
// measure (what $evaluate-measure runs: a streaming pass over every record,
// with the Kaplan–Meier estimate of the fixed-horizon measures) and of all
// seven in one pass (the measure-reports export), and reports the counts
// and estimates (identical on both backends for the same seed), the time
// and the memory.
//
//	go run ./bench/outcomes -n 1000000 -load            # SQLite under -dir
//	go run ./bench/outcomes -n 1000000 -load -db 'postgres://…'
//
// Run by hand, not in CI: loading a million episodes takes minutes.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/clock"
	"github.com/passerelle-sante/passerelle/pkg/outcome"
	"github.com/passerelle-sante/passerelle/pkg/store"
	"github.com/passerelle-sante/passerelle/pkg/store/postgres"
	"github.com/passerelle-sante/passerelle/pkg/store/sqlite"
	"github.com/passerelle-sante/passerelle/services/outcomes"
)

const tenant = "bench"

func main() {
	n := flag.Int("n", 1_000_000, "episodes (one patient each)")
	db := flag.String("db", "", "PostgreSQL URL; empty: SQLite under -dir")
	dir := flag.String("dir", "./data-bench-outcomes", "SQLite directory")
	load := flag.Bool("load", false, "load the data set if it is not there yet")
	runs := flag.Int("runs", 3, "evaluations of each measure")
	only := flag.String("measure", "", "one measure id; empty: each measure, then all in one pass")
	batch := flag.Int("batch", 1000, "records per load transaction")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the evaluations")
	flag.Parse()
	ctx := context.Background()

	var st store.Store
	var err error
	if *db != "" {
		st, err = postgres.Open(ctx, *db, postgres.Options{})
	} else {
		st, err = sqlite.Open(ctx, filepath.Join(*dir, "outcomes.db"), sqlite.Options{})
	}
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()

	if *load {
		if err := loadSet(ctx, st, *n, *batch); err != nil {
			log.Fatal(err)
		}
	}

	now := time.Date(2026, 1, 15, 12, 0, 0, 0, clock.Paris)
	svc := outcomes.New(outcomes.Deps{Store: st, Clock: clock.NewFake(now), Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), Tenant: tenant})
	p := outcome.Params{Start: outcome.CivilDay(2023, 1, 1), End: outcome.CivilDay(2024, 12, 31), Now: now}
	var peak atomic.Uint64
	stop := sampleHeap(&peak)
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			log.Fatal(err)
		}
		_ = pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	sets := [][]string{{*only}}
	if *only == "" {
		sets = nil
		for _, d := range outcome.Definitions {
			sets = append(sets, []string{d.ID})
		}
		sets = append(sets, nil) // every measure in one pass
	}
	for _, ids := range sets {
		var times, cpus []time.Duration
		var rs []*outcome.Result
		for i := 0; i < *runs; i++ {
			runtime.GC()
			c0 := cpuTime()
			t0 := time.Now()
			rs, err = svc.Evaluate(ctx, tenant, p, ids...)
			if err != nil {
				log.Fatal(err)
			}
			times = append(times, time.Since(t0).Round(time.Millisecond))
			cpus = append(cpus, (cpuTime() - c0).Round(time.Millisecond))
		}
		name := "all seven in one pass"
		if len(ids) == 1 {
			name = ids[0]
		}
		fmt.Printf("%s\n  wall %v\n  this process's CPU %v\n", name, times, cpus)
		if len(ids) == 1 {
			last := rs[0]
			pr, lo, hi, _ := last.Rate()
			fmt.Printf("  initial %d denominator %d numerator %d censored %d excluded %d rate %.4f [%.4f, %.4f]\n",
				last.Initial, last.Denominator, last.Numerator, last.Censored, last.Exclusions, pr, lo, hi)
			if km := last.KM; km.OK {
				fmt.Printf("  Kaplan–Meier %.4f [%.4f, %.4f] at risk %d of %d\n", km.Estimate, km.Low, km.High, km.AtRisk, km.N)
			}
		}
	}
	stop()
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	fmt.Printf("peak Go heap in use %.1f MB, max RSS %.1f MB\n", float64(peak.Load())/1e6, float64(ru.Maxrss)/1e3)
}

// cpuTime is the user and system CPU time of this process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func sampleHeap(peak *atomic.Uint64) func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

const marker = "outcomes-bench-loaded"

// loadSet writes n synthetic records unless a previous load finished.
func loadSet(ctx context.Context, st store.Store, n, batch int) error {
	if res, err := st.Read(ctx, "Basic", marker+"-"+strconv.Itoa(n)); err == nil {
		var m struct {
			Note []struct{ Text string } `json:"note"`
		}
		_ = json.Unmarshal(res.Body, &m)
		fmt.Printf("data set already loaded (%s)\n", m.Note[0].Text)
		return nil
	}
	rng := rand.New(rand.NewPCG(42, 7))
	t0 := time.Now()
	for i := 0; i < n; i += batch {
		recs := make([]*outcome.Record, 0, batch)
		for j := i; j < min(i+batch, n); j++ {
			recs = append(recs, synthetic(rng, j))
		}
		err := st.Tx(ctx, func(tx store.Tx) error {
			for _, r := range recs {
				if err := outcomes.PutRecord(ctx, tx, tenant, r); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("load at %d: %w", i, err)
		}
		if (i/batch)%100 == 0 {
			fmt.Printf("loaded %d in %v\n", i+len(recs), time.Since(t0).Round(time.Second))
		}
	}
	note := fmt.Sprintf("%d episodes, loaded in %v", n, time.Since(t0).Round(time.Second))
	b, _ := json.Marshal(map[string]any{"resourceType": "Basic", "id": marker + "-" + strconv.Itoa(n), "code": map[string]any{"text": "bench"}, "note": []any{map[string]any{"text": note}}})
	if err := st.Tx(ctx, func(tx store.Tx) error { _, err := tx.Create(ctx, tenant, b); return err }); err != nil {
		return err
	}
	fmt.Println(note)
	return nil
}

var hospitals = []string{"420000002", "420000003", "420000011", "690000001", "690000002"}
var pathways = []string{"https://passerelle.health/fhir/PlanDefinition/hf-post-discharge", "https://passerelle.health/fhir/PlanDefinition/fall-home-return"}

// synthetic is patient i's record: discharged in 2023–2024; about 12 %
// readmitted within 30 days, 30 % within 180; about 15 % dead within a
// year; a nurse visit within 1–10 days; four dated tasks.
func synthetic(rng *rand.Rand, i int) *outcome.Record {
	pid := fmt.Sprintf("bp%07d", i)
	dis := time.Date(2023, 1, 1, 8, 0, 0, 0, clock.Paris).Add(time.Duration(rng.IntN(730*24*60)) * time.Minute)
	r := &outcome.Record{Patient: pid, Family: "NOM" + pid, Given: []string{"PRENOM"}, BirthDate: outcome.CivilDay(1930+rng.IntN(60), time.Month(1+rng.IntN(12)), 1+rng.IntN(28)),
		Sex: []string{"M", "F"}[rng.IntN(2)], BirthPlace: "42187"}
	hosp := hospitals[rng.IntN(len(hospitals))]
	r.Stays = append(r.Stays, outcome.Stay{Encounter: "e" + pid, Class: "IMP", Start: dis.Add(-time.Duration(2+rng.IntN(10)) * 24 * time.Hour), End: dis, FINESS: hosp, HF: 'y'})
	if x := rng.Float64(); x < 0.30 {
		day := 1 + rng.IntN(180)
		if x < 0.12 {
			day = 1 + rng.IntN(30)
		}
		hf := []byte{'y', 'n', '?'}[rng.IntN(3)]
		r.Stays = append(r.Stays, outcome.Stay{Encounter: "a" + pid, Class: "IMP", Planned: rng.IntN(10) == 0, Start: dis.Add(time.Duration(day)*24*time.Hour + time.Duration(rng.IntN(600))*time.Minute), FINESS: hospitals[rng.IntN(len(hospitals))], HF: hf})
	}
	if rng.Float64() < 0.15 {
		r.SetDeath(dis.Add(time.Duration(rng.IntN(365*24))*time.Hour), []string{"hospital", "team", "insee"}[rng.IntN(3)])
	}
	e := outcome.Episode{ID: "ep" + pid, Status: "finished", Pathway: pathways[rng.IntN(len(pathways))], CPTS: "Organization/cpts-bench", IndexEncounter: "e" + pid, Discharge: dis}
	for k, role := range []string{"nurse", "gp", "pharmacist", "cardiologist"} {
		due := dis.Add(time.Duration(3+k*5) * 24 * time.Hour)
		t := outcome.Task{ID: fmt.Sprintf("t%s-%d", pid, k), Code: "visit", Role: role, Status: "completed", Due: due, Done: due.Add(time.Duration(rng.IntN(96)-72) * time.Hour)}
		e.Tasks = append(e.Tasks, t)
	}
	r.Episodes = append(r.Episodes, e)
	return r
}
