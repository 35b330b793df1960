package intake

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/passerelle-sante/passerelle/internal/golden"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/clock"
	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/hl7v2"
	"github.com/passerelle-sante/passerelle/pkg/store/sqlite"
)

// TestHL7Golden maps each sample of testdata/hl7 and compares the ACK code,
// its ERR segments and the intake event with testdata/hl7/<name>.golden.
func TestHL7Golden(t *testing.T) {
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := directory.SeedDev(context.Background(), s, "demo"); err != nil {
		t.Fatal(err)
	}
	svc := New(Deps{Store: s, Tenant: "demo", Clock: clock.NewFake(time.Date(2026, 10, 3, 16, 0, 0, 0, time.UTC))})
	files, _ := filepath.Glob("testdata/hl7/*.hl7")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, _ := os.ReadFile(f)
			var got bytes.Buffer
			msg, err := hl7v2.Parse(normalise(raw))
			if err != nil {
				got.WriteString("parse error: " + err.Error() + "\n")
			} else {
				mh, _ := msg.MSH()
				finess, _ := svc.sender(context.Background(), mh)
				kind, ignored, rerr := svc.kindOf(msg, mh)
				switch {
				case rerr != nil:
					got.WriteString("ACK AE: " + rerr.Error() + "\n")
				case ignored:
					got.WriteString("ACK AA, ignored\n")
				default:
					ev, rerr := svc.hl7ToEvent(msg, mh, kind, finess)
					if rerr != nil {
						got.WriteString(rerr.code() + ": " + rerr.Error() + "\n")
						break
					}
					got.WriteString("ACK AA\n")
					b, _ := json.MarshalIndent(ev, "", "  ")
					got.Write(b)
					got.WriteString("\n")
				}
			}
			golden.Check(t, strings.TrimSuffix(f, ".hl7")+".golden", got.Bytes())
		})
	}
}
