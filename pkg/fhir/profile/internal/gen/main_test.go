package main

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	fhirprofiles "github.com/passerelle-sante/passerelle/fhir-profiles"
)

const coreDir = "../../../../../../shared/data/fhir-r4"

// run rewrites the snapshots of a package and removes those it no longer
// produces; on an up-to-date package it changes nothing.
func TestRun(t *testing.T) {
	if _, err := os.Stat(coreDir); err != nil {
		t.Skipf("core definitions not available: %v", err)
	}
	dir := t.TempDir()
	if err := os.CopyFS(dir, fhirprofiles.FS()); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dir, "snapshots", "StructureDefinition-removed.json")
	if err := os.WriteFile(stale, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(coreDir, dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale snapshot kept: %v", err)
	}
	err := fs.WalkDir(fhirprofiles.FS(), "snapshots", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		want, _ := fs.ReadFile(fhirprofiles.FS(), p)
		got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(p)))
		if err != nil {
			return err
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s changed on an up-to-date package", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
