package profile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"reflect"
	"slices"
	"strings"
	"sync"
)

// Package is the FHIR package's manifest (package.json).
type Package struct {
	Name         string   `json:"name"`
	Version      string   `json:"version"`
	Canonical    string   `json:"canonical"`
	FHIRVersions []string `json:"fhirVersions"`
}

// Registry holds the conformance resources of a FHIR package, with the
// FHIR core definitions the package's generated snapshots brought along,
// by canonical URL. It is read-only once loaded and safe for concurrent use.
type Registry struct {
	pkg         Package
	sds         map[string]*StructureDefinition
	valueSets   map[string]*ValueSet
	codeSystems map[string]*CodeSystem
	msgDefs     map[string]*MessageDefinition
	naming      []*NamingSystem

	mu         sync.Mutex
	expansions map[string]*Expansion
}

// Load reads a FHIR package from fsys: package.json, then every JSON file
// below it, whatever its folder (a Bundle's entries are read one by one).
// StructureDefinitions, ValueSets, CodeSystems, MessageDefinitions and
// NamingSystems are kept; other resources (PlanDefinition, Measure…) are
// left to their own readers.
//
// A StructureDefinition without a snapshot is a differential written by
// hand: it is not registered, but Load checks that a generated snapshot with
// the same URL and the same differential exists, so that a package whose
// differentials were edited after the last generation fails to load instead
// of silently validating against the old rules.
//
// Passerelle passes fhirprofiles.FS(), the package built into the binary,
// or os.DirFS of PASSERELLE_PROFILES_DIR when that is set.
func Load(fsys fs.FS) (*Registry, error) {
	r := &Registry{
		sds:         map[string]*StructureDefinition{},
		valueSets:   map[string]*ValueSet{},
		codeSystems: map[string]*CodeSystem{},
		msgDefs:     map[string]*MessageDefinition{},
		expansions:  map[string]*Expansion{},
	}
	b, err := fs.ReadFile(fsys, "package.json")
	if err != nil {
		return nil, fmt.Errorf("load FHIR package: %w", err)
	}
	if err := json.Unmarshal(b, &r.pkg); err != nil {
		return nil, fmt.Errorf("load FHIR package: package.json: %w", err)
	}
	var differentials []*StructureDefinition
	var diffFiles []string
	err = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if p != "." && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return fs.SkipDir
			}
			return nil
		}
		if path.Ext(name) != ".json" || p == "package.json" {
			return nil
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		diffs, err := r.add(b)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		for _, d := range diffs {
			differentials = append(differentials, d)
			diffFiles = append(diffFiles, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load FHIR package: %w", err)
	}
	for i, d := range differentials {
		sd := r.sds[d.URL]
		if sd == nil {
			return nil, fmt.Errorf("load FHIR package: %s: no generated snapshot for %s: run go generate ./pkg/fhir/profile", diffFiles[i], d.URL)
		}
		if !sameJSON(sd.Differential.Element, d.Differential.Element) {
			return nil, fmt.Errorf("load FHIR package: %s: the snapshot of %s was generated from another differential: run go generate ./pkg/fhir/profile", diffFiles[i], d.URL)
		}
	}
	return r, nil
}

// add registers the resources of one file and returns the differential-only
// StructureDefinitions it holds.
func (r *Registry) add(b []byte) ([]*StructureDefinition, error) {
	var head struct {
		ResourceType string `json:"resourceType"`
		Entry        []struct {
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return nil, err
	}
	if head.ResourceType == "Bundle" {
		var diffs []*StructureDefinition
		for _, e := range head.Entry {
			d, err := r.add(e.Resource)
			if err != nil {
				return nil, err
			}
			diffs = append(diffs, d...)
		}
		return diffs, nil
	}
	switch head.ResourceType {
	case "StructureDefinition":
		sd := new(StructureDefinition)
		if err := json.Unmarshal(b, sd); err != nil {
			return nil, err
		}
		if sd.URL == "" {
			return nil, errors.New("StructureDefinition without url")
		}
		if len(sd.Snapshot.Element) == 0 {
			return []*StructureDefinition{sd}, nil
		}
		if r.sds[sd.URL] != nil {
			return nil, fmt.Errorf("StructureDefinition %s defined twice", sd.URL)
		}
		r.sds[sd.URL] = sd
	case "ValueSet":
		vs := new(ValueSet)
		if err := json.Unmarshal(b, vs); err != nil {
			return nil, err
		}
		if vs.URL == "" || r.valueSets[vs.URL] != nil {
			return nil, fmt.Errorf("ValueSet %q without url or defined twice", vs.URL)
		}
		r.valueSets[vs.URL] = vs
	case "CodeSystem":
		cs := new(CodeSystem)
		if err := json.Unmarshal(b, cs); err != nil {
			return nil, err
		}
		if cs.URL == "" || r.codeSystems[cs.URL] != nil {
			return nil, fmt.Errorf("CodeSystem %q without url or defined twice", cs.URL)
		}
		r.codeSystems[cs.URL] = cs
	case "MessageDefinition":
		md := new(MessageDefinition)
		if err := json.Unmarshal(b, md); err != nil {
			return nil, err
		}
		k := md.EventCoding.System + "|" + md.EventCoding.Code
		if md.EventCoding.Code == "" || r.msgDefs[k] != nil {
			return nil, fmt.Errorf("MessageDefinition %s: no eventCoding, or the event %s has two definitions", md.URL, k)
		}
		r.msgDefs[k] = md
	case "NamingSystem":
		ns := new(NamingSystem)
		if err := json.Unmarshal(b, ns); err != nil {
			return nil, err
		}
		r.naming = append(r.naming, ns)
	}
	return nil, nil
}

// sameJSON compares two JSON texts by value, ignoring layout.
func sameJSON(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// canonical strips the |version suffix FHIR allows on canonical references.
func canonical(url string) string {
	if i := strings.IndexByte(url, '|'); i >= 0 {
		return url[:i]
	}
	return url
}

// Package returns the package manifest.
func (r *Registry) Package() Package { return r.pkg }

// StructureDefinition returns the definition with that canonical URL (a
// |version suffix is ignored), or nil.
func (r *Registry) StructureDefinition(url string) *StructureDefinition {
	return r.sds[canonical(url)]
}

// StructureDefinitions returns every definition, sorted by URL.
func (r *Registry) StructureDefinitions() []*StructureDefinition {
	out := make([]*StructureDefinition, 0, len(r.sds))
	for _, sd := range r.sds {
		out = append(out, sd)
	}
	slices.SortFunc(out, func(a, b *StructureDefinition) int { return strings.Compare(a.URL, b.URL) })
	return out
}

// ValueSet returns the value set with that canonical URL, or nil.
func (r *Registry) ValueSet(url string) *ValueSet { return r.valueSets[canonical(url)] }

// CodeSystem returns the code system with that canonical URL, or nil.
func (r *Registry) CodeSystem(url string) *CodeSystem { return r.codeSystems[canonical(url)] }

// MessageDefinition returns the definition of the event system|code, or nil.
func (r *Registry) MessageDefinition(system, code string) *MessageDefinition {
	return r.msgDefs[system+"|"+code]
}

// MessageDefinitions returns every message definition, sorted by URL.
func (r *Registry) MessageDefinitions() []*MessageDefinition {
	out := make([]*MessageDefinition, 0, len(r.msgDefs))
	for _, md := range r.msgDefs {
		out = append(out, md)
	}
	slices.SortFunc(out, func(a, b *MessageDefinition) int { return strings.Compare(a.URL, b.URL) })
	return out
}

// NamingSystems returns the identifier systems of the package.
func (r *Registry) NamingSystems() []*NamingSystem { return slices.Clone(r.naming) }

// CodeSystemURLs returns the URLs of every code system, sorted.
func (r *Registry) CodeSystemURLs() []string { return sortedKeys(r.codeSystems) }
