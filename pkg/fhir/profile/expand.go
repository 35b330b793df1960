package profile

import (
	"fmt"
	"slices"
	"strings"
)

// Expansion is the content of a value set as far as Passerelle can know
// it: the system|code pairs it lists, and the systems it includes whole
// without their concepts being known (BCP 13 media types, BCP 47 languages,
// code systems absent from the package, filters not supported). A code of
// such an open system is accepted: Passerelle cannot tell it is wrong.
type Expansion struct {
	URL   string
	pairs map[[2]string]struct{}
	codes map[string]struct{}
	open  map[string]bool
	// Notes says what could not be expanded and was left open.
	Notes []string
}

// Contains reports whether system|code belongs to the value set.
func (e *Expansion) Contains(system, code string) bool {
	if _, ok := e.pairs[[2]string{system, code}]; ok {
		return true
	}
	return e.open[system]
}

// ContainsCode reports whether a bare code (a FHIR code element, whose
// system is implied by its binding) belongs to the value set.
func (e *Expansion) ContainsCode(code string) bool {
	if _, ok := e.codes[code]; ok {
		return true
	}
	return len(e.open) > 0
}

// Open reports whether the value set includes a system it cannot enumerate.
func (e *Expansion) Open() bool { return len(e.open) > 0 }

// Codes returns the listed system|code pairs, sorted.
func (e *Expansion) Codes() [][2]string {
	out := make([][2]string, 0, len(e.pairs))
	for p := range e.pairs {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b [2]string) int {
		if c := strings.Compare(a[0], b[0]); c != 0 {
			return c
		}
		return strings.Compare(a[1], b[1])
	})
	return out
}

func newExpansion(url string) *Expansion {
	return &Expansion{URL: url, pairs: map[[2]string]struct{}{}, codes: map[string]struct{}{}, open: map[string]bool{}}
}

func (e *Expansion) add(system, code string) {
	e.pairs[[2]string{system, code}] = struct{}{}
}

// Expand returns the expansion of the value set with that canonical URL.
// It supports compose.include and compose.exclude made of whole code
// systems, listed concepts and other value sets; filters leave their system
// open (see Expansion). Results are cached.
func (r *Registry) Expand(url string) (*Expansion, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.expand(canonical(url), map[string]bool{})
}

func (r *Registry) expand(url string, visiting map[string]bool) (*Expansion, error) {
	if e := r.expansions[url]; e != nil {
		return e, nil
	}
	if visiting[url] {
		return nil, fmt.Errorf("value set %s includes itself", url)
	}
	visiting[url] = true
	defer delete(visiting, url)
	vs := r.valueSets[url]
	if vs == nil {
		return nil, fmt.Errorf("value set %s is not in the package", url)
	}
	e := newExpansion(url)
	if vs.Compose == nil {
		return nil, fmt.Errorf("value set %s has no compose", url)
	}
	for _, inc := range vs.Compose.Include {
		part, err := r.conceptSet(url, inc, visiting)
		if err != nil {
			return nil, err
		}
		for p := range part.pairs {
			e.pairs[p] = struct{}{}
		}
		for s := range part.open {
			e.open[s] = true
		}
		e.Notes = append(e.Notes, part.Notes...)
	}
	for _, exc := range vs.Compose.Exclude {
		part, err := r.conceptSet(url, exc, visiting)
		if err != nil {
			return nil, err
		}
		for p := range part.pairs {
			delete(e.pairs, p)
		}
		// Excluding a whole open system cannot be done concept by concept;
		// closing it is the safe reading.
		for s := range part.open {
			delete(e.open, s)
		}
	}
	for p := range e.pairs {
		e.codes[p[1]] = struct{}{}
	}
	r.expansions[url] = e
	return e, nil
}

// conceptSet expands one include or exclude: the system part intersected
// with each value set it names, as FHIR defines.
func (r *Registry) conceptSet(url string, inc ConceptSet, visiting map[string]bool) (*Expansion, error) {
	var sets []*Expansion
	if inc.System != "" {
		s := newExpansion(url)
		cs := r.codeSystems[canonical(inc.System)]
		switch {
		case len(inc.Filter) > 0:
			s.open[inc.System] = true
			s.Notes = append(s.Notes, fmt.Sprintf("%s: filter on %s not supported, any code of it accepted", url, inc.System))
		case len(inc.Concept) > 0:
			for _, c := range inc.Concept {
				if cs != nil && cs.Content == "complete" && !cs.has(c.Code) {
					return nil, fmt.Errorf("value set %s lists %s|%s, which the code system does not define", url, inc.System, c.Code)
				}
				s.add(inc.System, c.Code)
			}
		case cs != nil && cs.Content == "complete":
			cs.walk(func(c *Concept) { s.add(inc.System, c.Code) })
		default:
			s.open[inc.System] = true
			s.Notes = append(s.Notes, fmt.Sprintf("%s: code system %s not enumerable here, any code of it accepted", url, inc.System))
		}
		sets = append(sets, s)
	}
	for _, v := range inc.ValueSet {
		sub, err := r.expand(canonical(v), visiting)
		if err != nil {
			return nil, err
		}
		sets = append(sets, sub)
	}
	if len(sets) == 0 {
		return nil, fmt.Errorf("value set %s: an include names neither a system nor a value set", url)
	}
	out := sets[0]
	for _, other := range sets[1:] {
		out = intersect(url, out, other)
	}
	return out, nil
}

func intersect(url string, a, b *Expansion) *Expansion {
	out := newExpansion(url)
	for p := range a.pairs {
		if b.Contains(p[0], p[1]) {
			out.add(p[0], p[1])
		}
	}
	for p := range b.pairs {
		if a.open[p[0]] {
			out.add(p[0], p[1])
		}
	}
	for s := range a.open {
		if b.open[s] {
			out.open[s] = true
		}
	}
	out.Notes = append(slices.Clone(a.Notes), b.Notes...)
	return out
}

func (cs *CodeSystem) walk(f func(*Concept)) {
	var rec func([]Concept)
	rec = func(cs []Concept) {
		for i := range cs {
			f(&cs[i])
			rec(cs[i].Concept)
		}
	}
	rec(cs.Concept)
}

func (cs *CodeSystem) has(code string) bool {
	found := false
	cs.walk(func(c *Concept) {
		if c.Code == code {
			found = true
		}
	})
	return found
}

// Codes returns every code of the code system, nested ones included.
func (cs *CodeSystem) Codes() []string {
	var out []string
	cs.walk(func(c *Concept) { out = append(out, c.Code) })
	return out
}
