package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/store/sqlite"
)

// directoryDataDir is a data directory whose database holds the
// development directory, as after a first `passerelle run`.
func directoryDataDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	s, err := sqlite.Open(context.Background(), filepath.Join(dir, "passerelle.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := directory.SeedDev(context.Background(), s, "demo"); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PASSERELLE_DATA_DIR", dir)
	t.Setenv("PASSERELLE_DATABASE_URL", "")
	t.Setenv("PASSERELLE_TENANT", "demo")
	t.Setenv("LC_ALL", "")
	t.Setenv("LC_MESSAGES", "")
	t.Setenv("LANG", "C.UTF-8")
	return dir
}

func runMain(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := Main(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestDirectoryImportCommand(t *testing.T) {
	dir := directoryDataDir(t)
	example := filepath.Join("..", "..", "pkg", "directory", "testdata", "members-example.csv")

	code, out, errOut := runMain("directory", "import", "--dry-run", example)
	if code != 0 || out != "dry run, nothing written: imported 6 members: 6 created, 0 updated, 0 unchanged\n" {
		t.Fatalf("dry run: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, errOut = runMain("directory", "import", example)
	if code != 0 || out != "imported 6 members: 6 created, 0 updated, 0 unchanged\n" {
		t.Fatalf("import: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, _ = runMain("directory", "import", example)
	if code != 0 || out != "imported 6 members: 0 created, 0 updated, 6 unchanged\n" {
		t.Fatalf("re-import: exit %d, stdout %q", code, out)
	}

	// The members are in the instance's database, announced and audited.
	s, err := sqlite.Open(context.Background(), filepath.Join(dir, "passerelle.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ms, err := directory.LoadMembers(context.Background(), s, "demo")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, m := range ms {
		if m.Login == "idec.sophie" && m.Code == directory.RoleCoordinatingNurse && len(m.Communes) == 3 {
			found = true
		}
	}
	rows, err := s.Outbox().Pending(context.Background(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	events := 0
	for _, r := range rows {
		if strings.HasPrefix(r.Event.Subject, "fhir.demo.Practitioner") && strings.HasSuffix(r.Event.Subject, ".created") {
			events++
		}
	}
	_ = s.Close()
	if !found {
		t.Errorf("idec.sophie is not a coordinating nurse of the directory: %+v", ms)
	}
	if events != 12 {
		t.Errorf("%d creation events for Practitioner and PractitionerRole, want 12", events)
	}
	code, out, _ = runMain("audit", "verify")
	if code != 0 || !strings.HasPrefix(out, "audit trail intact") {
		t.Errorf("audit verify after the import: %d %q", code, out)
	}

	// A file with bad rows: every error, on stderr, and nothing imported.
	bad := filepath.Join("..", "..", "pkg", "directory", "testdata", "members-bad-rows.csv")
	code, out, errOut = runMain("directory", "import", bad)
	if code == 0 || out != "" {
		t.Fatalf("bad rows: exit %d, stdout %q", code, out)
	}
	want := []string{
		"line 2, column rpps: character 11 is not a digit",
		"line 3, column family: family name missing",
		`line 4, column role: unknown team role "astronaut" (gp, nurse, pharmacist, cardiologist, coordinating-nurse, coordinator, admin)`,
		"passerelle: " + bad + ": 3 error(s), nothing was imported",
	}
	if got := strings.Split(strings.TrimSpace(errOut), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("bad rows: stderr\n%s\nwant\n%s", errOut, strings.Join(want, "\n"))
	}

	// In French when the operator's locale is French.
	t.Setenv("LANG", "fr_FR.UTF-8")
	_, _, errOut = runMain("directory", "import", bad)
	if !strings.Contains(errOut, "ligne 3, colonne family : nom de famille manquant") {
		t.Errorf("French errors: %q", errOut)
	}

	// A Bundle, by its extension.
	t.Setenv("LANG", "C")
	bundle := filepath.Join("..", "..", "pkg", "directory", "testdata", "members-bundle.json")
	code, out, errOut = runMain("directory", "import", bundle)
	if code != 0 || out != "imported 2 members: 2 created, 0 updated, 0 unchanged (1 organizations written)\n" {
		t.Errorf("bundle: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// A CSV without an extension is recognised too.
	noExt := filepath.Join(t.TempDir(), "members")
	data, _ := os.ReadFile(example)
	if err := os.WriteFile(noExt, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, _ = runMain("directory", "import", noExt); code != 0 || !strings.Contains(out, "6 unchanged") {
		t.Errorf("CSV without extension: exit %d, %q", code, out)
	}
	if code, _, errOut = runMain("directory", "import"); code == 0 || !strings.Contains(errOut, "usage: passerelle directory import") {
		t.Errorf("no file: exit %d, %q", code, errOut)
	}
}
