package outcome

import "testing"

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
