package directory_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/passerelle-sante/passerelle/pkg/directory"
)

// FuzzParseCSV: the CSV parser never panics, and every error it reports
// names a line.
func FuzzParseCSV(f *testing.F) {
	for _, name := range []string{"members-example.csv", "members-bad-rows.csv"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("\ufeffrpps,family,given,profession,role,communes,postal_codes,phone,email,login,not_available,capacity\n" +
		"10000000017,\"A\"\"B\",C,60,nurse,2A004;42187,42300,0611223344,a@b.fr,x,2026-01-01/2026-01-02;2026-03-01/,3\n"))
	f.Add([]byte("rpps,family\n\"unterminated\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		rows, errs := directory.ParseCSV(bytes.NewReader(data))
		for _, e := range errs {
			if e.Line < 1 {
				t.Fatalf("error without a line number: %q", e.Error())
			}
			if !strings.HasPrefix(e.Error(), "line ") {
				t.Fatalf("error %q does not start with its line", e.Error())
			}
		}
		for _, r := range rows {
			if r.Line < 2 || r.RPPS == "" || r.Login == "" || r.Role == "" {
				t.Fatalf("row accepted without its line or its required cells: %+v", r)
			}
		}
	})
}
