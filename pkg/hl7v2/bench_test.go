package hl7v2

import (
	"os"
	"testing"
	"time"
)

// reportRate reports messages per wall-clock second and per CPU-second of
// the whole process (GC included), the latter being what "per core" means
// on a machine other work shares.
func reportRate(b *testing.B, cpu0 time.Duration) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	if cpu := processCPU() - cpu0; cpu > 0 {
		b.ReportMetric(float64(b.N)/cpu.Seconds(), "msgs/cpu-s")
	}
}

func BenchmarkParseA03(b *testing.B) {
	data, err := os.ReadFile("testdata/" + a03)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	cpu0 := processCPU()
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, cpu0)
}

func BenchmarkEncodeA03(b *testing.B) {
	m := mustParseFile(b, a03)
	b.SetBytes(int64(len(m.Encode())))
	b.ReportAllocs()
	cpu0 := processCPU()
	for b.Loop() {
		_ = m.Encode()
	}
	reportRate(b, cpu0)
}

// BenchmarkParseA03Typed is what a receiver does per message: parse and read
// every typed segment.
func BenchmarkParseA03Typed(b *testing.B) {
	data, err := os.ReadFile("testdata/" + a03)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	cpu0 := processCPU()
	for b.Loop() {
		m, err := Parse(data)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = m.MSH()
		_, _ = m.PID()
		_, _ = m.PV1()
		_, _ = m.ZBE()
		_, _ = m.DG1()
		_ = m.ROL()
		_ = m.ZFM()
	}
	reportRate(b, cpu0)
}
