// Command gen writes the generated part of the FHIR package fhir-profiles/:
// the snapshots of its differentials, the core datatype definitions and
// the core terminology they need (see profile.Generate). Files of
// snapshots/ it no longer produces are removed, so that a deleted profile
// does not linger.
//
// Run it with go generate in pkg/fhir/profile.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/passerelle-sante/passerelle/pkg/fhir/profile"
)

func main() {
	coreDir := flag.String("core", "", "directory of the FHIR R4 core definition bundles")
	pkgDir := flag.String("pkg", "", "directory of the FHIR package (package.json)")
	flag.Parse()
	if *coreDir == "" || *pkgDir == "" {
		log.Fatal("usage: gen -core <fhir-r4 dir> -pkg <package dir>")
	}
	if err := run(*coreDir, *pkgDir); err != nil {
		log.Fatal(err)
	}
}

func run(coreDir, pkgDir string) error {
	core, err := profile.LoadCore(os.DirFS(coreDir))
	if err != nil {
		return err
	}
	files, err := profile.Generate(os.DirFS(pkgDir), core)
	if err != nil {
		return err
	}
	snapDir := filepath.Join(pkgDir, "snapshots")
	if err := os.MkdirAll(snapDir, 0o755); err != nil {
		return err
	}
	old, err := os.ReadDir(snapDir)
	if err != nil {
		return err
	}
	for _, e := range old {
		name := "snapshots/" + e.Name()
		if _, keep := files[name]; !keep && !e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			if err := os.Remove(filepath.Join(pkgDir, filepath.FromSlash(name))); err != nil {
				return err
			}
		}
	}
	for name, b := range files {
		p := filepath.Join(pkgDir, filepath.FromSlash(name))
		if cur, err := os.ReadFile(p); err == nil && string(cur) == string(b) {
			continue
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
	}
	return nil
}
