package directory_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/passerelle-sante/passerelle/internal/testenv"
	"github.com/passerelle-sante/passerelle/pkg/clock"
	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/store"
	"github.com/passerelle-sante/passerelle/pkg/store/postgres"
	"github.com/passerelle-sante/passerelle/pkg/store/sqlite"
)

const tenant = "demo"

func openSQLite(t testing.TB) store.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func openPostgres(t testing.TB) store.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), testenv.PostgresURL(t), postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// seeded is a store holding the development directory.
func seeded(t testing.TB, s store.Store) *directory.Importer {
	t.Helper()
	if _, err := directory.SeedDev(context.Background(), s, tenant); err != nil {
		t.Fatal(err)
	}
	return &directory.Importer{Store: s, Tenant: tenant}
}

func importFile(t *testing.T, im *directory.Importer, name string) (directory.Result, error) {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if strings.HasSuffix(name, ".json") {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return im.ImportBundle(context.Background(), data)
	}
	return im.ImportCSV(context.Background(), f)
}

func members(t *testing.T, s store.Store) map[string]directory.Member {
	t.Helper()
	ms, err := directory.LoadMembers(context.Background(), s, tenant)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]directory.Member{}
	for _, m := range ms {
		out[m.ID] = m
	}
	return out
}

func countOutbox(t *testing.T, s store.Store) int {
	t.Helper()
	n, err := s.Outbox().Backlog(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestImportExampleCSV(t *testing.T) {
	for _, backend := range []struct {
		name string
		open func(testing.TB) store.Store
	}{{"sqlite", openSQLite}, {"postgres", openPostgres}} {
		t.Run(backend.name, func(t *testing.T) {
			s := backend.open(t)
			im := seeded(t, s)
			outbox0 := countOutbox(t, s)
			res, err := importFile(t, im, "members-example.csv")
			if err != nil {
				t.Fatal(err)
			}
			if want := (directory.Result{Members: 6, Created: 6}); res != want {
				t.Fatalf("result %+v, want %+v", res, want)
			}
			if got := countOutbox(t, s) - outbox0; got != 12 {
				t.Errorf("%d outbox events, want 12 (one per Practitioner and PractitionerRole)", got)
			}
			recs, err := s.AuditLog().List(context.Background(), 0, 1000)
			if err != nil {
				t.Fatal(err)
			}
			audited := 0
			for _, r := range recs {
				if r.Agent == directory.ImportAgent && r.Action == "C" {
					audited++
				}
			}
			if audited != 12 {
				t.Errorf("%d audit records by %s, want 12", audited, directory.ImportAgent)
			}

			// What assignment reads back is what the file says.
			ms := members(t, s)
			lucie, ok := ms["pr-rpps-10000000033-nurse"]
			if !ok {
				t.Fatalf("no member pr-rpps-10000000033-nurse among %v", keys(ms))
			}
			want := directory.Member{ID: "pr-rpps-10000000033-nurse", Active: true, Practitioner: "Practitioner/p-rpps-10000000033",
				Code: "nurse", Organization: "Organization/" + directory.DevCPTS, RPPS: "10000000033", Name: "Lucie INFIRMIERE",
				Communes: []string{"42187", "42207"}, PostalCodes: []string{"42300", "42153"},
				Phone: "+33600000031", Email: "lucie.infirmiere@example.invalid", Login: "ide.lucie"}
			if !equalMember(lucie, want) {
				t.Errorf("member\n got %+v\nwant %+v", lucie, want)
			}
			if ph := ms["pr-rpps-10000000041-pharmacist"]; ph.Code != directory.RolePharmacist || ph.Organization != "Organization/"+directory.DevCPTS {
				t.Errorf("pharmacist %+v: want role pharmacist in the CPTS", ph)
			}
			// The new member logs in: the resolver finds them by login.
			r := &directory.Resolver{Store: s}
			a, err := r.Person(context.Background(), tenant, "ide.lucie")
			if err != nil || !a.Has(directory.RoleNurse) {
				t.Errorf("resolver: %+v, %v; want a nurse", a, err)
			}

			// The same file again changes nothing.
			outbox1 := countOutbox(t, s)
			res, err = importFile(t, im, "members-example.csv")
			if err != nil {
				t.Fatal(err)
			}
			if want := (directory.Result{Members: 6, Unchanged: 6}); res != want {
				t.Fatalf("re-import: result %+v, want %+v", res, want)
			}
			if got := countOutbox(t, s); got != outbox1 {
				t.Errorf("re-import emitted %d events", got-outbox1)
			}
			p, err := s.Read(context.Background(), "Practitioner", "p-rpps-10000000033")
			if err != nil || p.Version != 1 {
				t.Fatalf("Practitioner after re-import: version %d, %v; want 1", p.Version, err)
			}

			// A changed phone updates the Practitioner.
			data, _ := os.ReadFile(filepath.Join("testdata", "members-example.csv"))
			changed := strings.Replace(string(data), "+33600000031", "06 11 22 33 44", 1)
			res, err = im.ImportCSV(context.Background(), strings.NewReader(changed))
			if err != nil {
				t.Fatal(err)
			}
			if want := (directory.Result{Members: 6, Updated: 1, Unchanged: 5}); res != want {
				t.Fatalf("changed phone: result %+v, want %+v", res, want)
			}
			p, err = s.Read(context.Background(), "Practitioner", "p-rpps-10000000033")
			if err != nil || p.Version != 2 {
				t.Fatalf("Practitioner after the change: version %d, %v; want 2", p.Version, err)
			}
			if got := members(t, s)["pr-rpps-10000000033-nurse"].Phone; got != "+33611223344" {
				t.Errorf("phone %q, want +33611223344", got)
			}
		})
	}
}

func TestImportBringsBackADeletedMember(t *testing.T) {
	s := openSQLite(t)
	im := seeded(t, s)
	if _, err := importFile(t, im, "members-example.csv"); err != nil {
		t.Fatal(err)
	}
	err := s.Tx(context.Background(), func(tx store.Tx) error {
		_, err := tx.Delete(context.Background(), "Practitioner", "p-rpps-10000000033", 0)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := importFile(t, im, "members-example.csv")
	if err != nil {
		t.Fatal(err)
	}
	if want := (directory.Result{Members: 6, Updated: 1, Unchanged: 5}); res != want {
		t.Fatalf("result %+v, want %+v", res, want)
	}
	p, err := s.Read(context.Background(), "Practitioner", "p-rpps-10000000033")
	if err != nil || p.Version != 3 {
		t.Errorf("Practitioner: version %d, %v; want version 3 (created, deleted, back)", p.Version, err)
	}
}

func keys(m map[string]directory.Member) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func equalMember(a, b directory.Member) bool {
	return a.ID == b.ID && a.Active == b.Active && a.Practitioner == b.Practitioner && a.Code == b.Code &&
		a.Organization == b.Organization && a.RPPS == b.RPPS && a.Name == b.Name &&
		slices.Equal(a.Communes, b.Communes) && slices.Equal(a.PostalCodes, b.PostalCodes) &&
		a.Capacity == b.Capacity && a.Phone == b.Phone && a.Email == b.Email && a.Login == b.Login &&
		slices.EqualFunc(a.NotAvailable, b.NotAvailable, func(x, y directory.Period) bool {
			return x.Start.Equal(y.Start) && x.End.Equal(y.End)
		})
}

func TestImportBadRowsWritesNothing(t *testing.T) {
	s := openSQLite(t)
	im := seeded(t, s)
	outbox0 := countOutbox(t, s)
	_, err := importFile(t, im, "members-bad-rows.csv")
	var errs directory.Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error %v, want directory.Errors", err)
	}
	want := []string{
		"line 2, column rpps: character 11 is not a digit",
		"line 3, column family: family name missing",
		"line 4, column role: unknown team role \"astronaut\"",
	}
	if len(errs) != len(want) {
		t.Fatalf("%d errors, want %d:\n%v", len(errs), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(errs[i].Error(), w) {
			t.Errorf("error %d: %q, want it to start with %q", i, errs[i].Error(), w)
		}
	}
	if !strings.HasPrefix(errs[1].French(), "ligne 3, colonne family : nom de famille manquant") {
		t.Errorf("French: %q", errs[1].French())
	}
	if _, err := s.Read(context.Background(), "Practitioner", "p-rpps-10000000033"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the good row 5 was written (%v): all rows or none", err)
	}
	if got := countOutbox(t, s); got != outbox0 {
		t.Errorf("%d events emitted by a failed import", got-outbox0)
	}
}

func TestImportChecksEveryRow(t *testing.T) {
	s := openSQLite(t)
	im := seeded(t, s)
	csv := "\ufeffrpps,family,given,profession,role,communes,postal_codes,phone,email,login,capacity\n" +
		"10000000017,A,B,99,external,4218,423000,12345,not-an-email,ide.martin,-1\n" + // line 2
		"10000000017,A,B,60,nurse,42187,42300,,,dup.login,\n" + // line 3: same RPPS as line 2
		"10000000025,A,B,60,nurse,2A004,42300,,,dup.login,\n" + // line 4: same login as line 3
		"10000000074,A,B,60,nurse\n" // line 5: too few fields
	_, err := im.ImportCSV(context.Background(), strings.NewReader(csv))
	var errs directory.Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error %v, want directory.Errors", err)
	}
	var got []string
	for _, e := range errs {
		got = append(got, e.Error()[:strings.Index(e.Error(), ":")])
	}
	want := []string{
		"line 2, column profession", "line 2, column role", "line 2, column communes", "line 2, column postal_codes",
		"line 2, column phone", "line 2, column email", "line 2, column capacity",
		"line 3, column rpps", "line 4, column login", "line 5",
	}
	if !slices.Equal(got, want) {
		t.Errorf("errors\n got %q\nwant %q\n%v", got, want, err)
	}
	// Line 2's login ide.martin is taken by another practitioner: reported
	// once the row's own checks pass.
	csv = "rpps,family,given,profession,role,communes,postal_codes,phone,email,login\n" +
		"10000000017,A,B,60,nurse,42187,42300,,,ide.martin\n"
	_, err = im.ImportCSV(context.Background(), strings.NewReader(csv))
	if err == nil || err.Error() != "line 2, column login: login already taken by Practitioner/p-ide-martin" {
		t.Errorf("taken login: %v", err)
	}
	// A header without the required columns.
	_, err = im.ImportCSV(context.Background(), strings.NewReader("rpps,family,shoe_size\n"))
	if err == nil || !strings.Contains(err.Error(), "line 1, column shoe_size: unknown column") || !strings.Contains(err.Error(), "line 1, column login: column missing") {
		t.Errorf("bad header: %v", err)
	}
}

func TestImportKeepsExistingIDsAndOrganizations(t *testing.T) {
	s := openSQLite(t)
	im := seeded(t, s)
	// ide.martin (RPPS 10000001015) and pharma.durand are in the development
	// directory; a new pharmacist belongs to a new pharmacy.
	csv := "rpps,family,given,profession,role,communes,postal_codes,phone,email,login,specialty,capacity,organization_finess,not_available\n" +
		"10000001015,MARTIN,Claire,60,nurse,42187;42218,42300,0611223344,ide.martin@example.invalid,ide.martin,,4,,2026-12-01/2026-12-15;2027-02-01/\n" +
		"10000001031,DURAND,Hélène,21,pharmacist,42187,42300,,pharma.durand@example.invalid,pharma.durand,,,,\n" +
		"10000000074,NOUVELLE,Officine,21,pharmacist,42187,42300,,,pharma.nouvelle,,,420000218,\n" +
		"10000000082,SPECIALISTE,Cardio,10,cardiologist,42187,42300,,,dr.specialiste,SM04,,420000200,\n"
	res, err := im.ImportCSV(context.Background(), strings.NewReader(csv))
	if err != nil {
		t.Fatal(err)
	}
	if want := (directory.Result{Members: 4, Created: 2, Updated: 1, Unchanged: 1, Organizations: 1}); res != want {
		t.Fatalf("result %+v, want %+v", res, want)
	}
	ms := members(t, s)
	martin := ms["pr-ide-martin"]
	paris := clock.Paris
	want := directory.Member{ID: "pr-ide-martin", Active: true, Practitioner: "Practitioner/p-ide-martin", Code: "nurse",
		Organization: "Organization/" + directory.DevCPTS, RPPS: "10000001015", Name: "Claire MARTIN",
		Communes: []string{"42187", "42218"}, PostalCodes: []string{"42300"}, Capacity: 4,
		NotAvailable: []directory.Period{
			{Start: time.Date(2026, 12, 1, 0, 0, 0, 0, paris), End: time.Date(2026, 12, 16, 0, 0, 0, 0, paris)},
			{Start: time.Date(2027, 2, 1, 0, 0, 0, 0, paris)},
		},
		Phone: "+33611223344", Email: "ide.martin@example.invalid", Login: "ide.martin"}
	if !equalMember(martin, want) {
		t.Errorf("ide.martin\n got %+v\nwant %+v", martin, want)
	}
	if martin.AvailableAt(time.Date(2026, 12, 15, 20, 0, 0, 0, paris)) || !martin.AvailableAt(time.Date(2026, 12, 16, 8, 0, 0, 0, paris)) {
		t.Errorf("availability: away until the end of 15 December, back on the 16th")
	}
	if _, ok := ms["pr-rpps-10000001015-nurse"]; ok {
		t.Error("a second role was created for ide.martin instead of keeping pr-ide-martin")
	}
	if got := ms["pr-pharma-durand"].Organization; got != "Organization/"+directory.DevPharmacy {
		t.Errorf("pharma.durand moved to %s; an absent FINESS keeps the role's organization", got)
	}
	if got := ms["pr-rpps-10000000074-pharmacist"].Organization; got != "Organization/org-finess-420000218" {
		t.Errorf("new pharmacist's organization %s", got)
	}
	org, err := s.Read(context.Background(), "Organization", "org-finess-420000218")
	if err != nil || !strings.Contains(string(org.Body), `"value":"420000218"`) {
		t.Errorf("pharmacy: %s, %v", org.Body, err)
	}
	if got := ms["pr-rpps-10000000082-cardiologist"].Organization; got != "Organization/"+directory.DevPharmacy {
		t.Errorf("a FINESS of the directory: organization %s, want the existing one", got)
	}
	role, _ := s.Read(context.Background(), "PractitionerRole", "pr-rpps-10000000082-cardiologist")
	if !strings.Contains(string(role.Body), `"code":"SM04"`) {
		t.Errorf("specialty missing: %s", role.Body)
	}
	// Dry run: counted, nothing written.
	im.DryRun = true
	csv2 := strings.Replace(csv, "dr.specialiste", "dr.autre", 1)
	res, err = im.ImportCSV(context.Background(), strings.NewReader(csv2))
	if err != nil || res.Updated != 1 {
		t.Fatalf("dry run: %+v, %v", res, err)
	}
	if got := members(t, s)["pr-rpps-10000000082-cardiologist"].Login; got != "dr.specialiste" {
		t.Errorf("dry run wrote: login %q", got)
	}
}

func TestImportBundle(t *testing.T) {
	s := openSQLite(t)
	im := seeded(t, s)
	res, err := importFile(t, im, "members-bundle.json")
	if err != nil {
		t.Fatal(err)
	}
	if want := (directory.Result{Members: 2, Created: 2, Organizations: 1}); res != want {
		t.Fatalf("result %+v, want %+v", res, want)
	}
	ms := members(t, s)
	kine := ms["pr-rpps-10000000074-nurse"]
	want := directory.Member{ID: "pr-rpps-10000000074-nurse", Active: true, Practitioner: "Practitioner/p-rpps-10000000074",
		Code: "nurse", Organization: "Organization/" + directory.DevCPTS, RPPS: "10000000074", Name: "Marie SOINS",
		Communes: []string{"42187"}, PostalCodes: []string{"42300"}, Capacity: 5, Phone: "+33600000074",
		Email: "marie.soins@example.invalid", Login: "ide.marie"}
	if !equalMember(kine, want) {
		t.Errorf("member\n got %+v\nwant %+v", kine, want)
	}
	if got := ms["pr-officine-neuve"].Organization; got != "Organization/org-finess-420000218" {
		t.Errorf("pharmacist's organization %q (fullUrl reference not resolved)", got)
	}
	res, err = importFile(t, im, "members-bundle.json")
	if err != nil {
		t.Fatal(err)
	}
	if want := (directory.Result{Members: 2, Unchanged: 2}); res != want {
		t.Fatalf("re-import: result %+v, want %+v", res, want)
	}

	_, err = importFile(t, im, "members-bundle-bad.json")
	var errs directory.Errors
	if !errors.As(err, &errs) {
		t.Fatalf("bad bundle: %v", err)
	}
	wantErrs := []string{
		"Bundle.entry[0].resource.identifier[0].value: wrong Luhn key in the RPPS number",
		"Bundle.entry[1].resource.name: family name missing",
		"Bundle.entry[2].resource.identifier[0].value: a FINESS number must have 9 characters",
		"Bundle.entry[3].resource.code: team-role code missing",
		"Bundle.entry[4].resource.practitioner.reference: \"Practitioner/nobody\" names no Practitioner",
		"Bundle.entry[4].resource.extension[0].extension[0].valueCode: invalid INSEE commune code",
	}
	if len(errs) != len(wantErrs) {
		t.Fatalf("%d errors, want %d:\n%v", len(errs), len(wantErrs), err)
	}
	for i, w := range wantErrs {
		if !strings.HasPrefix(errs[i].Error(), w) {
			t.Errorf("error %d: %q, want it to start with %q", i, errs[i].Error(), w)
		}
	}
}
