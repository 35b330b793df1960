package outcomes

import (
	"context"
	"encoding/csv"
	"strings"
	"testing"

	"github.com/passerelle-sante/passerelle/pkg/store"
)

// TestRowExportAuditedPerPatient: the row-per-episode export is in the
// trail of every patient whose rows it holds.
func TestRowExportAuditedPerPatient(t *testing.T) {
	st := openSQLite(t)
	r := newRig(t, st)
	r.scenario()
	w := get(t, serve(r.svc, coordinator), "/api/outcomes.csv?periodStart=2025-01-01&periodEnd=2025-12-31")
	if w.Code != 200 {
		t.Fatalf("csv: %d %s", w.Code, w.Body)
	}
	rows, err := csv.NewReader(w.Body).ReadAll()
	if err != nil || len(rows) < 2 {
		t.Fatalf("csv rows: %d %v", len(rows), err)
	}
	recs, err := st.AuditLog().Find(context.Background(), store.AuditFilter{Tenant: tenant})
	if err != nil {
		t.Fatal(err)
	}
	patients := map[string]bool{}
	for _, rec := range recs {
		if !strings.HasPrefix(rec.Entity, "outcomes.csv?") {
			continue
		}
		if !strings.HasPrefix(rec.Patient, "Patient/") || patients[rec.Patient] || rec.Agent != "PractitionerRole/pr-coord" {
			t.Errorf("export record: %+v", rec)
		}
		patients[rec.Patient] = true
	}
	if len(patients) == 0 || len(patients) > len(rows)-1 {
		t.Errorf("%d patients audited for %d rows", len(patients), len(rows)-1)
	}
}
