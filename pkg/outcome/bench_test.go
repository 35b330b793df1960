package outcome

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/clock"
)

// BenchmarkDecodeAndEvaluate measures the in-memory half of an evaluation:
// decoding a record's text and counting readmission-30d with its strata.
func BenchmarkDecodeAndEvaluate(b *testing.B) {
	recs := cohort()
	texts := make([]string, len(recs))
	for i, r := range recs {
		texts[i], _ = r.EncodeParts()
	}
	p := Params{Start: CivilDay(2024, 1, 1), End: CivilDay(2025, 12, 31), Now: paris("2026-06-01 12:00")}
	ev, _ := NewEvaluator(p, Readmission30)
	var rec Record
	b.ReportAllocs()
	for b.Loop() {
		for _, t := range texts {
			if err := DecodeInto(&rec, t); err != nil {
				b.Fatal(err)
			}
			ev.Add(&rec)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(texts)), "ns/record")
}

// synthetic returns n varied records, like bench/outcomes's data set:
// discharges over 2023–2024, about 30 % readmitted within 180 days (12 %
// within 30), 15 % dead within a year, four dated tasks each.
func synthetic(n int) []*Record {
	rng := rand.New(rand.NewPCG(42, 7))
	out := make([]*Record, n)
	for i := range out {
		pid := fmt.Sprintf("bp%07d", i)
		dis := time.Date(2023, 1, 1, 8, 0, 0, 0, clock.Paris).Add(time.Duration(rng.IntN(730*24*60)) * time.Minute)
		r := &Record{Patient: pid, BirthDate: CivilDay(1930+rng.IntN(60), 1, 1), Sex: []string{"M", "F"}[rng.IntN(2)]}
		r.Stays = append(r.Stays, Stay{Encounter: "e" + pid, Class: "IMP", Start: dis.Add(-72 * time.Hour), End: dis, FINESS: "42000000" + fmt.Sprint(rng.IntN(5)), HF: 'y'})
		if x := rng.Float64(); x < 0.30 {
			day := 1 + rng.IntN(180)
			if x < 0.12 {
				day = 1 + rng.IntN(30)
			}
			r.Stays = append(r.Stays, Stay{Encounter: "a" + pid, Class: "IMP", Start: dis.Add(time.Duration(day) * 24 * time.Hour), FINESS: "420000003", HF: []byte{'y', 'n', '?'}[rng.IntN(3)]})
		}
		if rng.Float64() < 0.15 {
			r.SetDeath(dis.Add(time.Duration(rng.IntN(365*24))*time.Hour), "insee")
		}
		e := Episode{ID: "ep" + pid, Status: "finished", Pathway: hf, CPTS: "Organization/cpts", IndexEncounter: "e" + pid, Discharge: dis}
		for k, role := range []string{"nurse", "gp", "pharmacist", "cardiologist"} {
			due := dis.Add(time.Duration(3+k*5) * 24 * time.Hour)
			e.Tasks = append(e.Tasks, Task{ID: fmt.Sprintf("t%s-%d", pid, k), Role: role, Status: "completed", Due: due, Done: due.Add(time.Duration(rng.IntN(96)-72) * time.Hour)})
		}
		r.Episodes = append(r.Episodes, e)
		out[i] = r
	}
	return out
}

// BenchmarkEvaluateMillion is the computing half of $evaluate-measure over
// 1,000,000 episodes: decoding each record's text and counting every
// measure with its strata and the Kaplan–Meier histograms, in one pass.
// 10,000 distinct records are decoded 100 times each, so that the texts
// need not hold a million records in memory.
func BenchmarkEvaluateMillion(b *testing.B) {
	recs := synthetic(10_000)
	texts := make([]string, len(recs))
	for i, r := range recs {
		texts[i] = r.Encode()
	}
	covered := func(d Day) bool { return d.Month() <= 202512 }
	p := Params{Start: CivilDay(2023, 1, 1), End: CivilDay(2024, 12, 31), Now: paris("2026-01-15 12:00"), RegisterCovers: covered}
	var rec Record
	b.ReportAllocs()
	for b.Loop() {
		ev, _ := NewEvaluator(p)
		for range 100 {
			for _, t := range texts {
				if err := DecodeInto(&rec, t); err != nil {
					b.Fatal(err)
				}
				ev.Add(&rec)
			}
		}
		if rs := ev.Results(); rs[0].Initial != 1_000_000 || !rs[0].KM.OK {
			b.Fatalf("initial population %d", rs[0].Initial)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e9, "s/1M-episodes")
}
