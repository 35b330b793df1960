package layout

import (
	"go/build"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/passerelle-sante/passerelle"

// drivers may import services: the binary wires them, the demo drives them
// through their Go entry points, the benchmarks under bench/ measure them.
// No service imports a driver.
func driver(path string) bool {
	return path == module+"/services/passerelle" || path == module+"/internal/demo" || strings.HasPrefix(path, module+"/bench/")
}

// TestServicesImportNoOtherService: a service shares constants and types
// with another only through pkg/ (the package that owns the contract),
// never by importing it, so each service can be read, tested and deployed
// alone. A service's sub-packages (services/worklist/ui) are part of it.
// Tests may import other services to drive a discharge end to end; only
// the code that is built into the binary counts.
func TestServicesImportNoOtherService(t *testing.T) {
	root := moduleRoot(t)
	pkgs := 0
	var bad []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		name := d.Name()
		if path != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "node_modules") {
			return filepath.SkipDir
		}
		p, err := build.ImportDir(path, 0)
		if err != nil {
			if _, ok := err.(*build.NoGoError); ok {
				return nil
			}
			t.Errorf("%s: %v", path, err)
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		self := module
		if rel != "." {
			self += "/" + filepath.ToSlash(rel)
		}
		pkgs++
		for _, imp := range p.Imports {
			if msg := forbidden(self, imp); msg != "" {
				bad = append(bad, msg)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if pkgs < 20 {
		t.Fatalf("only %d packages found under %s: the walk missed the module", pkgs, root)
	}
	sort.Strings(bad)
	for _, b := range bad {
		t.Error(b)
	}
}

// forbidden says why self may not import imp, or "" when it may.
func forbidden(self, imp string) string {
	svc, ok := service(imp)
	if !ok || driver(self) {
		return ""
	}
	if own, ok := service(self); ok && own == svc {
		return ""
	}
	return self + " imports " + imp + ": move what they share to the pkg/ package that owns it"
}

// service names the service a package belongs to (services/worklist/ui →
// worklist).
func service(path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, module+"/services/")
	if !ok {
		return "", false
	}
	name, _, _ := strings.Cut(rest, "/")
	return name, true
}

func TestForbidden(t *testing.T) {
	for _, c := range []struct {
		self, imp string
		ok        bool
	}{
		{module + "/services/pathway", module + "/services/intake", false},
		{module + "/services/outcomes", module + "/services/worklist/ui", false},
		{module + "/pkg/pathway", module + "/services/pathway", false},
		{module + "/services/worklist/ui", module + "/services/worklist", true},
		{module + "/services/pathway", module + "/pkg/intake", true},
		{module + "/services/passerelle", module + "/services/intake", true},
		{module + "/internal/demo", module + "/services/worklist", true},
		{module + "/bench/outcomes", module + "/services/outcomes", true},
		{module + "/services/intake", "github.com/other/services/pathway", true},
	} {
		if got := forbidden(c.self, c.imp) == ""; got != c.ok {
			t.Errorf("%s importing %s: allowed %v, want %v", c.self, c.imp, got, c.ok)
		}
	}
}

func moduleRoot(t *testing.T) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test's directory")
		}
		dir = parent
	}
}
