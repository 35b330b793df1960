package layout

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBinaryHasNoInit: the binary wires its services from one table, in
// one order (services/passerelle/run.go); a service added from an init()
// would be wired in an order no one reads, and only by importing a file.
func TestBinaryHasNoInit(t *testing.T) {
	dir := filepath.Join(moduleRoot(t), "services", "passerelle")
	files, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	n := 0
	for _, f := range files {
		name := f.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		n++
		for _, d := range file.Decls {
			if fn, ok := d.(*ast.FuncDecl); ok && fn.Recv == nil && fn.Name.Name == "init" {
				t.Errorf("services/passerelle/%s:%d: func init(): add the service to the table in run.go instead", name, fset.Position(fn.Pos()).Line)
			}
		}
	}
	if n == 0 {
		t.Fatalf("no Go file in %s", dir)
	}
}
