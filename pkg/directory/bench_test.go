package directory_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/fhir/ident"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// luhnKey completes 10 digits into an RPPS number with a valid key.
func luhnKey(prefix string) string {
	for d := '0'; d <= '9'; d++ {
		if ident.CheckRPPS(prefix+string(d)) == nil {
			return prefix + string(d)
		}
	}
	panic("no key")
}

// membersCSV is a file of n members with valid RPPS numbers.
func membersCSV(n int) []byte {
	roles := []struct{ prof, role string }{{"60", "nurse"}, {"10", "gp"}, {"21", "pharmacist"}, {"10", "cardiologist"}, {"60", "coordinating-nurse"}}
	var b strings.Builder
	b.WriteString("rpps,family,given,profession,role,communes,postal_codes,phone,email,login\n")
	for i := range n {
		r := roles[i%len(roles)]
		rpps := luhnKey(fmt.Sprintf("2%09d", i))
		fmt.Fprintf(&b, "%s,MEMBRE%d,Prénom,%s,%s,42187;42207,42300;42153,+336%08d,membre%d@example.invalid,membre.%d\n",
			rpps, i, r.prof, r.role, i, i, i)
	}
	return []byte(b.String())
}

// BenchmarkImport10k imports 10,000 new members (20,000 resources, their
// events and audit records) in one transaction into a fresh directory.
func BenchmarkImport10k(b *testing.B) {
	data := membersCSV(10000)
	for _, backend := range []struct {
		name string
		open func(testing.TB) store.Store
	}{{"sqlite", openSQLite}, {"postgres", openPostgres}} {
		b.Run(backend.name, func(b *testing.B) {
			var cpu time.Duration
			for b.Loop() {
				b.StopTimer()
				s := backend.open(b)
				im := seeded(b, s)
				c0 := cpuTime()
				b.StartTimer()
				res, err := im.ImportCSV(context.Background(), bytes.NewReader(data))
				if err != nil {
					b.Fatal(err)
				}
				if res.Created != 10000 {
					b.Fatalf("%+v", res)
				}
				b.StopTimer()
				cpu += cpuTime() - c0
				_ = s.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(10000*b.N)/b.Elapsed().Seconds(), "members/s")
			// The process's own CPU (SQLite runs in it; PostgreSQL does not).
			b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
		})
	}
}

// BenchmarkReimport10k imports the same 10,000 members again: nothing
// changes, nothing is written.
func BenchmarkReimport10k(b *testing.B) {
	data := membersCSV(10000)
	s := openSQLite(b)
	im := seeded(b, s)
	if _, err := im.ImportCSV(context.Background(), bytes.NewReader(data)); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		res, err := im.ImportCSV(context.Background(), bytes.NewReader(data))
		if err != nil || res.Unchanged != 10000 {
			b.Fatal(res, err)
		}
	}
}

// cpuTime is the CPU time the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
