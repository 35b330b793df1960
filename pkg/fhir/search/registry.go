package search

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"github.com/passerelle-sante/passerelle/pkg/fhir/search/internal/corefile"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/passerelle-sante/passerelle/pkg/fhir/search/internal/fhirpath"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// AllTypes is the pseudo resource type of the parameters that apply to every
// type: _id and _lastUpdated.
const AllTypes = "Resource"

// Def describes one search parameter of one resource type.
type Def struct {
	// Resource is the resource type the parameter searches, or AllTypes.
	Resource string
	// Name is the parameter's name in a query (SearchParameter.code).
	Name string
	Kind store.ParamKind
	// URL is the canonical URL of the SearchParameter that defines it.
	URL string
	// Expression is the FHIRPath expression that finds the indexed values,
	// reduced to the parts for Resource.
	Expression string
	// Targets lists the resource types a reference parameter may point to;
	// empty when it may point to any type (FHIR's Reference(Any)).
	Targets []string
	// Description is the documentation for Resource.
	Description string
}

// Registry holds the search parameters of each resource type with their
// compiled expressions. It is safe for concurrent use; Add may run while
// other goroutines extract and parse.
type Registry struct {
	mu sync.RWMutex
	// byType maps a resource type (or AllTypes) to its parameters by name.
	byType map[string]map[string]*param
	// sorted caches, per type, the type's parameters and the AllTypes ones
	// sorted by name: the order of Extract's entries and of Params.
	sorted map[string][]*param
}

type param struct {
	def  Def
	expr *fhirpath.Expr
}

// coreJSON is the FHIR R4 core subset written by internal/gen.
//
//go:embed core_params.json
var coreJSON []byte

type (
	coreFile = corefile.File
	defJSON  = corefile.Def
	dropped  = corefile.Dropped
)

var core = sync.OnceValues(func() (*Registry, error) {
	return load(coreJSON)
})

// Default returns a registry holding the FHIR R4 core search parameters of
// the resource types Passerelle stores, with _id and _lastUpdated on every
// type. The embedded definitions are parsed once; each call returns an
// independent copy, so that one caller's Add does not change another's
// registry.
func Default() *Registry {
	r, err := core()
	if err != nil {
		// The embedded file is generated and tested: a failure here is a
		// build defect, not a run-time condition.
		panic(fmt.Sprintf("search: embedded core parameters: %v", err))
	}
	return r.clone()
}

// New returns an empty registry, to be filled with Add.
func New() *Registry {
	return &Registry{byType: map[string]map[string]*param{}, sorted: map[string][]*param{}}
}

func load(data []byte) (*Registry, error) {
	var f coreFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, err
	}
	r := New()
	for _, d := range f.Params {
		e, err := fhirpath.ParseFor(d.Expression, d.Resource)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", d.Resource, d.Name, err)
		}
		kind, ok := kinds[d.Type]
		if !ok {
			return nil, fmt.Errorf("%s %s: unsupported type %q", d.Resource, d.Name, d.Type)
		}
		r.put(&param{def: Def{
			Resource:    d.Resource,
			Name:        d.Name,
			Kind:        kind,
			URL:         d.URL,
			Expression:  e.String(),
			Targets:     d.Targets,
			Description: d.Description,
		}, expr: e})
	}
	r.reindex()
	return r, nil
}

var kinds = map[string]store.ParamKind{
	"token":     store.KindToken,
	"reference": store.KindReference,
	"date":      store.KindDate,
	"string":    store.KindString,
	"uri":       store.KindURI,
}

func (r *Registry) clone() *Registry {
	r.mu.RLock()
	defer r.mu.RUnlock()
	c := New()
	for typ, m := range r.byType {
		c.byType[typ] = maps.Clone(m)
	}
	maps.Copy(c.sorted, r.sorted)
	return c
}

func (r *Registry) put(p *param) {
	m := r.byType[p.def.Resource]
	if m == nil {
		m = map[string]*param{}
		r.byType[p.def.Resource] = m
	}
	m[p.def.Name] = p
}

// reindex rebuilds the sorted lists after a change.
func (r *Registry) reindex() {
	r.sorted = make(map[string][]*param, len(r.byType))
	all := slices.Collect(maps.Values(r.byType[AllTypes]))
	for typ, m := range r.byType {
		list := slices.Collect(maps.Values(m))
		if typ != AllTypes {
			for _, p := range all {
				if _, shadowed := m[p.def.Name]; !shadowed {
					list = append(list, p)
				}
			}
		}
		slices.SortFunc(list, func(a, b *param) int { return strings.Compare(a.def.Name, b.def.Name) })
		r.sorted[typ] = list
	}
}

// params returns the sorted parameters that apply to typ. For a type the
// registry does not know, the AllTypes parameters: Extract indexes _id and
// _lastUpdated of any resource a store keeps.
func (r *Registry) params(typ string) []*param {
	if l, ok := r.sorted[typ]; ok {
		return l
	}
	return r.sorted[AllTypes]
}

// lookup finds a parameter of a known type.
func (r *Registry) lookup(typ, name string) (*param, bool) {
	m, known := r.byType[typ]
	if !known {
		return nil, false
	}
	if p, ok := m[name]; ok {
		return p, true
	}
	p, ok := r.byType[AllTypes][name]
	return p, ok
}

// Lookup returns the definition of parameter name on resource type typ. A
// type the registry does not know (not in Types) has no parameters.
func (r *Registry) Lookup(typ, name string) (Def, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	p, ok := r.lookup(typ, name)
	if !ok {
		return Def{}, false
	}
	return p.def.clone(), true
}

// Params returns the parameters that apply to resource type typ, _id and
// _lastUpdated included, sorted by name, for the CapabilityStatement. It
// returns nil for a type the registry does not know.
func (r *Registry) Params(typ string) []Def {
	r.mu.RLock()
	defer r.mu.RUnlock()
	list, ok := r.sorted[typ]
	if !ok {
		return nil
	}
	out := make([]Def, len(list))
	for i, p := range list {
		out[i] = p.def.clone()
	}
	return out
}

// Types returns the resource types the registry knows, sorted: those with
// parameters of their own.
func (r *Registry) Types() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []string
	for typ := range r.byType {
		if typ != AllTypes {
			out = append(out, typ)
		}
	}
	slices.Sort(out)
	return out
}

func (d Def) clone() Def {
	d.Targets = slices.Clone(d.Targets)
	return d
}

// searchParameter is the part of a FHIR SearchParameter resource that Add
// reads.
type searchParameter struct {
	ResourceType string   `json:"resourceType"`
	URL          string   `json:"url"`
	Code         string   `json:"code"`
	Base         []string `json:"base"`
	Type         string   `json:"type"`
	Expression   string   `json:"expression"`
	Target       []string `json:"target"`
	Description  string   `json:"description"`
}

// Add registers a SearchParameter resource (FHIR JSON) for each of its base
// types, as profile packages ship them (a Task due date on
// Task.restriction.period, a PractitionerRole territory). It fails, changing
// nothing, when the resource is malformed, its type is not token, reference,
// date, string or uri, its expression uses FHIRPath this package does not
// evaluate, or another SearchParameter (another url) already defines the
// same name on a base type. Adding a parameter with the url of an existing
// one replaces it.
func (r *Registry) Add(sp json.RawMessage) error {
	var s searchParameter
	if err := json.Unmarshal(sp, &s); err != nil {
		return fmt.Errorf("add search parameter: %w: %w", store.ErrInvalid, err)
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("add search parameter %s: %w: %s", s.URL, store.ErrInvalid, fmt.Sprintf(format, args...))
	}
	if s.ResourceType != "SearchParameter" {
		return fail("resourceType is %q, want SearchParameter", s.ResourceType)
	}
	if s.URL == "" {
		return fail("no url")
	}
	// Names starting with "_" belong to FHIR (_id, _count…).
	if !validName(s.Code) || strings.HasPrefix(s.Code, "_") {
		return fail("code %q is not a usable parameter name", s.Code)
	}
	kind, ok := kinds[s.Type]
	if !ok {
		return fail("type %q is not supported (token, reference, date, string, uri)", s.Type)
	}
	if len(s.Base) == 0 {
		return fail("no base")
	}
	for _, t := range s.Target {
		if !fhirpath.IsTypeName(t) {
			return fail("target %q is not a resource type", t)
		}
	}
	var add []*param
	for _, base := range s.Base {
		if !fhirpath.IsTypeName(base) || base == AllTypes || base == "DomainResource" {
			return fail("base %q is not a resource type", base)
		}
		e, err := fhirpath.ParseFor(s.Expression, base)
		if err != nil {
			return fail("expression for %s: %v", base, err)
		}
		add = append(add, &param{def: Def{
			Resource:    base,
			Name:        s.Code,
			Kind:        kind,
			URL:         s.URL,
			Expression:  e.String(),
			Targets:     slices.Clone(s.Target),
			Description: s.Description,
		}, expr: e})
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range add {
		if old, ok := r.lookup(p.def.Resource, p.def.Name); ok && old.def.URL != p.def.URL {
			return fail("%s already has parameter %s (%s)", p.def.Resource, p.def.Name, old.def.URL)
		}
	}
	for _, p := range add {
		r.put(p)
	}
	r.reindex()
	return nil
}

// validName reports whether s can be a parameter name in a query string:
// letters, digits, "-" and "_", so that ":" (modifiers), "." (chaining) and
// "," stay unambiguous.
func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
