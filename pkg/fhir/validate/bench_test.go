package validate

import "testing"

// BenchmarkValidateSample measures ValidateBundle on the sample discharge
// message (9 entries, about 9 KB). Bundles per second per core is 1e9 over
// ns/op, the benchmark running on one goroutine.
func BenchmarkValidateSample(b *testing.B) {
	v := newValidator(b)
	body := readTestdata(b, "discharge-hf-declared-team.json")
	if issues := v.ValidateBundle(body); len(issues) != 0 {
		b.Fatalf("sample not valid: %+v", issues)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if issues := v.ValidateBundle(body); len(issues) != 0 {
			b.Fatal(issues)
		}
	}
}
