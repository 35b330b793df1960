package profile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
)

const coreBase = "http://hl7.org/fhir/StructureDefinition/"

// Core is the FHIR R4 core definitions bundle set (profiles-types.json,
// profiles-resources.json, valuesets.json) the snapshot generator starts
// from. Only what a package uses is parsed beyond a first look.
type Core struct {
	sds   map[string]json.RawMessage // StructureDefinitions by URL
	terms map[string]json.RawMessage // ValueSets and CodeSystems by URL
	kinds map[string]string          // URL → resourceType of terms
	// resourceTypes are the names of the concrete resource types.
	resourceTypes map[string]bool
}

// LoadCore reads the core definitions from fsys, a directory holding the
// official R4 definition bundles.
func LoadCore(fsys fs.FS) (*Core, error) {
	c := &Core{
		sds:           map[string]json.RawMessage{},
		terms:         map[string]json.RawMessage{},
		kinds:         map[string]string{},
		resourceTypes: map[string]bool{},
	}
	for _, name := range []string{"profiles-types.json", "profiles-resources.json", "valuesets.json"} {
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("load core definitions: %w", err)
		}
		var bundle struct {
			Entry []struct {
				Resource json.RawMessage `json:"resource"`
			} `json:"entry"`
		}
		if err := json.Unmarshal(b, &bundle); err != nil {
			return nil, fmt.Errorf("load core definitions: %s: %w", name, err)
		}
		for _, e := range bundle.Entry {
			var head struct {
				ResourceType string `json:"resourceType"`
				URL          string `json:"url"`
			}
			if err := json.Unmarshal(e.Resource, &head); err != nil {
				return nil, fmt.Errorf("load core definitions: %s: %w", name, err)
			}
			switch head.ResourceType {
			case "StructureDefinition":
				var sd struct {
					Kind       string `json:"kind"`
					Type       string `json:"type"`
					Abstract   bool   `json:"abstract"`
					Derivation string `json:"derivation"`
				}
				if err := json.Unmarshal(e.Resource, &sd); err != nil {
					return nil, fmt.Errorf("load core definitions: %s: %s: %w", name, head.URL, err)
				}
				c.sds[head.URL] = e.Resource
				if sd.Kind == "resource" && sd.Derivation == "specialization" && !sd.Abstract {
					c.resourceTypes[sd.Type] = true
				}
			case "ValueSet", "CodeSystem":
				c.terms[head.URL] = e.Resource
				c.kinds[head.URL] = head.ResourceType
			}
		}
	}
	if len(c.sds) == 0 || len(c.resourceTypes) == 0 {
		return nil, errors.New("load core definitions: no StructureDefinition found")
	}
	return c, nil
}

// sdDoc is a StructureDefinition being generated or cleaned.
type sdDoc struct {
	obj        object
	url        string
	typ        string
	kind       string
	base       string
	derivation string
	snapshot   []object
	diff       []object
	ours       bool
}

func parseSD(b []byte) (*sdDoc, error) {
	obj, err := parseObject(b)
	if err != nil {
		return nil, err
	}
	d := &sdDoc{obj: obj, url: obj.str("url"), typ: obj.str("type"), kind: obj.str("kind"),
		base: obj.str("baseDefinition"), derivation: obj.str("derivation")}
	if d.snapshot, err = elementList(obj.get("snapshot")); err != nil {
		return nil, fmt.Errorf("%s snapshot: %w", d.url, err)
	}
	if d.diff, err = elementList(obj.get("differential")); err != nil {
		return nil, fmt.Errorf("%s differential: %w", d.url, err)
	}
	return d, nil
}

func elementList(b json.RawMessage) ([]object, error) {
	if b == nil {
		return nil, nil
	}
	var holder struct {
		Element []json.RawMessage `json:"element"`
	}
	if err := json.Unmarshal(b, &holder); err != nil {
		return nil, err
	}
	out := make([]object, 0, len(holder.Element))
	for _, e := range holder.Element {
		o, err := parseObject(e)
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, nil
}

// generator turns a package's differentials into snapshots.
type generator struct {
	core  *Core
	ours  map[string]*sdDoc // the package's StructureDefinitions by URL
	terms map[string]bool   // URLs of the package's ValueSets and CodeSystems
	done  map[string]bool
	busy  map[string]bool
	clean map[string]*sdDoc // core StructureDefinitions, cleaned
	notes []string          // corrections made to the core definitions
	open  []string          // bindings left unchecked
}

// Generate writes the snapshots of a FHIR package: for each
// StructureDefinition of pkg written as a differential, the same resource
// with its full snapshot (snapshots/StructureDefinition-<id>.json); the
// core datatype definitions those snapshots use (snapshots/core-types.json)
// and the core ValueSets and CodeSystems their bindings need
// (snapshots/core-terminology.json); and snapshots/README.md, which lists
// what was generated, what the generator had to correct in the core
// definitions and which bindings cannot be checked. It returns file
// contents keyed by path inside the package, and is deterministic: same
// inputs, same bytes.
//
// What the generator supports is documented in the package comment.
func Generate(pkg fs.FS, core *Core) (map[string][]byte, error) {
	g := &generator{core: core, ours: map[string]*sdDoc{}, terms: map[string]bool{},
		done: map[string]bool{}, busy: map[string]bool{}, clean: map[string]*sdDoc{}}
	pkgTerms := map[string]json.RawMessage{}
	err := fs.WalkDir(pkg, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p == "snapshots" || (p != "." && strings.HasPrefix(d.Name(), ".")) {
				return fs.SkipDir
			}
			return nil
		}
		if path.Ext(p) != ".json" || p == "package.json" {
			return nil
		}
		b, err := fs.ReadFile(pkg, p)
		if err != nil {
			return err
		}
		var head struct {
			ResourceType string `json:"resourceType"`
			URL          string `json:"url"`
		}
		if err := json.Unmarshal(b, &head); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		switch head.ResourceType {
		case "StructureDefinition":
			sd, err := parseSD(b)
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			if len(sd.snapshot) > 0 {
				return fmt.Errorf("%s: write differentials only; the snapshot is generated", p)
			}
			if sd.derivation != "constraint" || sd.url == "" || sd.base == "" {
				return fmt.Errorf("%s: a profile needs url, baseDefinition and derivation constraint", p)
			}
			if g.ours[sd.url] != nil {
				return fmt.Errorf("%s: %s defined twice", p, sd.url)
			}
			sd.ours = true
			g.ours[sd.url] = sd
		case "ValueSet", "CodeSystem":
			g.terms[head.URL] = true
			pkgTerms[head.URL] = b
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("generate snapshots: %w", err)
	}
	urls := sortedKeys(g.ours)
	for _, u := range urls {
		if err := g.generate(g.ours[u]); err != nil {
			return nil, fmt.Errorf("generate snapshots: %w", err)
		}
	}
	out := map[string][]byte{}
	for _, u := range urls {
		sd := g.ours[u]
		obj := sd.obj.clone()
		obj.set("snapshot", elementsJSON(sd.snapshot), sdRank)
		b, err := indent(obj)
		if err != nil {
			return nil, err
		}
		id := obj.str("id")
		if id == "" {
			return nil, fmt.Errorf("generate snapshots: %s has no id", u)
		}
		out["snapshots/StructureDefinition-"+id+".json"] = b
	}
	types, err := g.coreTypes(urls)
	if err != nil {
		return nil, fmt.Errorf("generate snapshots: %w", err)
	}
	b, err := bundleJSON("passerelle-core-types", types, func(u string) (json.RawMessage, error) {
		obj := g.clean[u].obj.clone()
		obj.del("text")
		obj.del("mapping")
		obj.set("snapshot", elementsJSON(g.clean[u].snapshot), sdRank)
		obj.del("differential")
		return obj.MarshalJSON()
	})
	if err != nil {
		return nil, err
	}
	out["snapshots/core-types.json"] = b
	terms, err := g.coreTerms(append(slices.Clone(urls), types...), pkgTerms)
	if err != nil {
		return nil, fmt.Errorf("generate snapshots: %w", err)
	}
	b, err = bundleJSON("passerelle-core-terminology", terms, func(u string) (json.RawMessage, error) {
		obj, err := parseObject(g.core.terms[u])
		if err != nil {
			return nil, err
		}
		obj.del("text")
		return obj.MarshalJSON()
	})
	if err != nil {
		return nil, err
	}
	out["snapshots/core-terminology.json"] = b
	out["snapshots/README.md"] = g.readme(out, types, terms)
	return out, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func elementsJSON(els []object) json.RawMessage {
	var b bytes.Buffer
	b.WriteString(`{"element":[`)
	for i, e := range els {
		if i > 0 {
			b.WriteByte(',')
		}
		j, err := e.MarshalJSON()
		if err != nil {
			panic(err) // members were parsed from valid JSON
		}
		b.Write(j)
	}
	b.WriteString("]}")
	return b.Bytes()
}

func indent(v json.Marshaler) ([]byte, error) {
	raw, err := v.MarshalJSON()
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return nil, err
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

func bundleJSON(id string, urls []string, resource func(string) (json.RawMessage, error)) ([]byte, error) {
	var entries []json.RawMessage
	for _, u := range urls {
		r, err := resource(u)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", u, err)
		}
		entries = append(entries, mustJSON(object{{"fullUrl", mustJSON(u)}, {"resource", r}}))
	}
	return indent(object{
		{"resourceType", mustJSON("Bundle")},
		{"id", mustJSON(id)},
		{"type", mustJSON("collection")},
		{"entry", mustJSON(entries)},
	})
}

// sd returns the StructureDefinition with a snapshot for url: one of the
// package's, generated first if needed, or a cleaned core one.
func (g *generator) sd(url string) (*sdDoc, error) {
	url = canonical(url)
	if d := g.ours[url]; d != nil {
		if err := g.generate(d); err != nil {
			return nil, err
		}
		return d, nil
	}
	return g.coreSD(url)
}

func (g *generator) generate(sd *sdDoc) error {
	if g.done[sd.url] {
		return nil
	}
	if g.busy[sd.url] {
		return fmt.Errorf("%s derives from itself", sd.url)
	}
	g.busy[sd.url] = true
	defer delete(g.busy, sd.url)
	base, err := g.sd(sd.base)
	if err != nil {
		return fmt.Errorf("%s: base %s: %w", sd.url, sd.base, err)
	}
	if base.typ != sd.typ {
		return fmt.Errorf("%s: type %s differs from its base's %s", sd.url, sd.typ, base.typ)
	}
	snap := make([]object, len(base.snapshot))
	for i, e := range base.snapshot {
		snap[i] = e.clone()
	}
	for _, d := range sd.diff {
		id := d.str("id")
		if id == "" {
			id = d.str("path")
			if id == "" {
				return fmt.Errorf("%s: a differential element has neither id nor path", sd.url)
			}
		}
		if want := pathOfID(id); d.str("path") != "" && d.str("path") != want {
			return fmt.Errorf("%s: element %s has path %s, want %s", sd.url, id, d.str("path"), want)
		}
		i := find(snap, id)
		if i < 0 {
			if i, err = g.materialize(&snap, id); err != nil {
				return fmt.Errorf("%s: %w", sd.url, err)
			}
		}
		if err := g.merge(&snap[i], d, sd.url); err != nil {
			return fmt.Errorf("%s: %s: %w", sd.url, id, err)
		}
	}
	for _, e := range snap {
		minV, _ := strconv.Atoi(string(e.get("min")))
		if m := parseMax(e.str("max")); m >= 0 && minV > m {
			return fmt.Errorf("%s: %s: min %d above max %d", sd.url, e.str("id"), minV, m)
		}
	}
	sd.snapshot = snap
	g.done[sd.url] = true
	return nil
}

// pathOfID drops the slice names of an element id.
func pathOfID(id string) string {
	parts := strings.Split(id, ".")
	for i, p := range parts {
		if j := strings.IndexByte(p, ':'); j >= 0 {
			parts[i] = p[:j]
		}
	}
	return strings.Join(parts, ".")
}

func find(snap []object, id string) int {
	for i, e := range snap {
		if e.str("id") == id {
			return i
		}
	}
	return -1
}

// groupEnd returns the index after the last element of id's group: the
// element, its descendants and its slices with theirs.
func groupEnd(snap []object, i int) int {
	id := snap[i].str("id")
	j := i + 1
	for j < len(snap) {
		other := snap[j].str("id")
		if !strings.HasPrefix(other, id+".") && !strings.HasPrefix(other, id+":") {
			break
		}
		j++
	}
	return j
}

// materialize inserts the element id into snap, which does not have it yet:
// a new slice (cloned from the sliced element), or the children of an
// element whose type the base snapshot did not unfold (taken from the
// datatype's definition or the element a contentReference points to).
func (g *generator) materialize(snap *[]object, id string) (int, error) {
	dot := strings.LastIndexByte(id, '.')
	last := id[dot+1:]
	if c := strings.IndexByte(last, ':'); c >= 0 {
		baseID := id[:len(id)-len(last)+c]
		slice := last[c+1:]
		if strings.ContainsAny(slice, "/:") {
			return 0, fmt.Errorf("%s: re-slicing is not supported", id)
		}
		bi := find(*snap, baseID)
		if bi < 0 {
			var err error
			if bi, err = g.materialize(snap, baseID); err != nil {
				return 0, err
			}
		}
		if (*snap)[bi].get("slicing") == nil {
			return 0, fmt.Errorf("%s: slice of %s, which has no slicing", id, baseID)
		}
		end := groupEnd(*snap, bi)
		var clones []object
		for j := bi; j < end; j++ {
			other := (*snap)[j].str("id")
			if j > bi && !strings.HasPrefix(other, baseID+".") {
				continue // another slice and its children
			}
			c := (*snap)[j].clone()
			c.set("id", mustJSON(id+other[len(baseID):]), elementRank)
			if j == bi {
				c.set("sliceName", mustJSON(slice), elementRank)
				c.del("slicing")
				// A slice is one part of the sliced element's occurrences:
				// the element's min bounds their total, not each slice.
				c.set("min", json.RawMessage("0"), elementRank)
			}
			clones = append(clones, c)
		}
		*snap = slices.Insert(*snap, end, clones...)
		return end, nil
	}
	if dot < 0 {
		return 0, fmt.Errorf("element %s is not in the base", id)
	}
	parentID := id[:dot]
	pi := find(*snap, parentID)
	if pi < 0 {
		var err error
		if pi, err = g.materialize(snap, parentID); err != nil {
			return 0, err
		}
	}
	parent := (*snap)[pi]
	if groupEnd(*snap, pi) > pi+1 && strings.HasPrefix((*snap)[pi+1].str("id"), parentID+".") {
		return 0, fmt.Errorf("element %s is not in the base", id)
	}
	children, err := g.childrenOf(*snap, parent)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", id, err)
	}
	parentPath := parent.str("path")
	var clones []object
	for _, c := range children {
		cid, cpath := c.str("id"), c.str("path")
		root := cid[:strings.IndexByte(cid, '.')]
		n := c.clone()
		n.set("id", mustJSON(parentID+cid[len(root):]), elementRank)
		n.set("path", mustJSON(parentPath+cpath[len(root):]), elementRank)
		clones = append(clones, n)
	}
	*snap = slices.Insert(*snap, pi+1, clones...)
	if i := find(*snap, id); i >= 0 {
		return i, nil
	}
	return 0, fmt.Errorf("element %s is not in the base", id)
}

// childrenOf returns the elements below parent's type, each with ids and
// paths still rooted at the type (Identifier.system).
func (g *generator) childrenOf(snap []object, parent object) ([]object, error) {
	if ref := parent.str("contentReference"); ref != "" {
		target := strings.TrimPrefix(ref, "#")
		ti := find(snap, target)
		if ti < 0 {
			return nil, fmt.Errorf("contentReference %s not found", ref)
		}
		// Re-root the target's descendants at a one-segment root so that
		// the caller's re-rooting applies.
		var out []object
		end := groupEnd(snap, ti)
		for j := ti + 1; j < end; j++ {
			id := snap[j].str("id")
			if !strings.HasPrefix(id, target+".") {
				continue
			}
			c := snap[j].clone()
			c.set("id", mustJSON("X"+id[len(target):]), elementRank)
			c.set("path", mustJSON("X"+snap[j].str("path")[len(snap[ti].str("path")):]), elementRank)
			out = append(out, c)
		}
		return out, nil
	}
	var types []struct {
		Code    string   `json:"code"`
		Profile []string `json:"profile"`
	}
	if t := parent.get("type"); t != nil {
		if err := json.Unmarshal(t, &types); err != nil {
			return nil, err
		}
	}
	if len(types) != 1 {
		return nil, errors.New("constrain the parent to one type before constraining its children")
	}
	url := coreBase + types[0].Code
	if len(types[0].Profile) == 1 {
		url = types[0].Profile[0]
	}
	def, err := g.sd(url)
	if err != nil {
		return nil, err
	}
	if len(def.snapshot) == 0 {
		return nil, fmt.Errorf("type %s has no snapshot", url)
	}
	return def.snapshot[1:], nil
}

// merge applies a differential element to its snapshot element, refusing
// what a profile may not do: loosen a cardinality, add a type, weaken a
// required binding, change a fixed value.
func (g *generator) merge(s *object, d object, url string) error {
	for _, m := range d {
		switch k := m.key; {
		case k == "id" || k == "path":
		case k == "min":
			var dm, sm int
			if err := json.Unmarshal(m.val, &dm); err != nil {
				return fmt.Errorf("min: %w", err)
			}
			_ = json.Unmarshal(s.get("min"), &sm)
			if dm < sm {
				return fmt.Errorf("min %d below the base's %d", dm, sm)
			}
			s.set(k, m.val, elementRank)
		case k == "max":
			var dm string
			if err := json.Unmarshal(m.val, &dm); err != nil {
				return fmt.Errorf("max: %w", err)
			}
			bm := parseMax(s.str("max"))
			if dm != "*" {
				if _, err := strconv.Atoi(dm); err != nil {
					return fmt.Errorf("max %q is neither * nor a number", dm)
				}
			}
			if n := parseMax(dm); bm >= 0 && (n < 0 || n > bm) {
				return fmt.Errorf("max %s above the base's %d", dm, bm)
			}
			s.set(k, m.val, elementRank)
		case k == "type":
			if err := g.narrowTypes(s.get("type"), m.val); err != nil {
				return err
			}
			s.set(k, m.val, elementRank)
		case k == "binding":
			var db, sb Binding
			if err := json.Unmarshal(m.val, &db); err != nil {
				return fmt.Errorf("binding: %w", err)
			}
			if v := s.get("binding"); v != nil {
				_ = json.Unmarshal(v, &sb)
			}
			if sb.Strength == "required" && db.Strength != "required" {
				return errors.New("a required binding cannot be weakened")
			}
			if db.ValueSet == "" {
				return errors.New("binding without valueSet")
			}
			s.set(k, m.val, elementRank)
		case k == "constraint":
			var have, add []json.RawMessage
			if v := s.get("constraint"); v != nil {
				_ = json.Unmarshal(v, &have)
			}
			if err := json.Unmarshal(m.val, &add); err != nil {
				return fmt.Errorf("constraint: %w", err)
			}
			s.set(k, mustJSON(append(have, add...)), elementRank)
		case strings.HasPrefix(k, "fixed") || strings.HasPrefix(k, "pattern"):
			for _, o := range *s {
				if (strings.HasPrefix(o.key, "fixed") || strings.HasPrefix(o.key, "pattern")) && !sameJSON(o.val, m.val) {
					return fmt.Errorf("%s would replace the base's %s", k, o.key)
				}
			}
			s.set(k, m.val, elementRank)
		case k == "contentReference" || k == "base":
			return fmt.Errorf("a profile cannot set %s", k)
		default:
			s.set(k, m.val, elementRank)
		}
	}
	return nil
}

// narrowTypes checks that every type of the differential is one of the
// base's (a resource type may narrow Resource), and that its target
// profiles designate resource types the base allows.
func (g *generator) narrowTypes(base, diff json.RawMessage) error {
	type tref struct {
		Code          string   `json:"code"`
		Profile       []string `json:"profile"`
		TargetProfile []string `json:"targetProfile"`
	}
	var bt, dt []tref
	if base != nil {
		if err := json.Unmarshal(base, &bt); err != nil {
			return err
		}
	}
	if err := json.Unmarshal(diff, &dt); err != nil {
		return fmt.Errorf("type: %w", err)
	}
	if len(dt) == 0 {
		return errors.New("empty type list")
	}
	for _, d := range dt {
		var match *tref
		for i := range bt {
			b := &bt[i]
			if b.Code == d.Code || ((b.Code == "Resource" || b.Code == "DomainResource") && g.core.resourceTypes[d.Code]) {
				match = b
				break
			}
		}
		if match == nil {
			return fmt.Errorf("type %s is not allowed by the base", d.Code)
		}
		for _, p := range d.Profile {
			sd, err := g.sd(p)
			if err != nil {
				return fmt.Errorf("profile %s: %w", p, err)
			}
			if sd.typ != d.Code {
				return fmt.Errorf("profile %s is a %s, not a %s", p, sd.typ, d.Code)
			}
		}
		if len(match.TargetProfile) == 0 {
			continue
		}
		allowed := map[string]bool{}
		for _, tp := range match.TargetProfile {
			t, err := g.targetType(tp)
			if err != nil {
				return err
			}
			allowed[t] = true
		}
		for _, tp := range d.TargetProfile {
			t, err := g.targetType(tp)
			if err != nil {
				return err
			}
			if !allowed[t] && !allowed["Resource"] {
				return fmt.Errorf("target %s (a %s) is not allowed by the base", tp, t)
			}
		}
	}
	return nil
}

// targetType returns the resource type a target profile designates. The
// core resource profiles are named after their type and not all loaded.
func (g *generator) targetType(url string) (string, error) {
	url = canonical(url)
	if d := g.ours[url]; d != nil {
		return d.typ, nil
	}
	if name, ok := strings.CutPrefix(url, coreBase); ok && (g.core.resourceTypes[name] || name == "Resource") {
		return name, nil
	}
	return "", fmt.Errorf("target profile %s is unknown", url)
}

// coreSD returns a core StructureDefinition whose snapshot has been
// checked against its own differential. The snapshots of the definitions
// bundle must follow from their differentials; where a snapshot carries an
// element the differential and the base do not define, or gives an element
// another type, cardinality or binding than the differential says, the
// differential wins, and the correction is noted in snapshots/README.md.
// (The copy in ../shared/data/fhir-r4 has such differences, for instance
// extra Meta elements that are not FHIR R4.)
func (g *generator) coreSD(url string) (*sdDoc, error) {
	if d := g.clean[url]; d != nil {
		return d, nil
	}
	raw := g.core.sds[url]
	if raw == nil {
		return nil, fmt.Errorf("%s is neither in the package nor in the core definitions", url)
	}
	d, err := parseSD(raw)
	if err != nil {
		return nil, err
	}
	if len(d.snapshot) == 0 {
		return nil, fmt.Errorf("core %s has no snapshot", url)
	}
	for _, e := range d.snapshot {
		e.del("mapping")
	}
	if d.derivation == "specialization" && d.base != "" {
		base, err := g.coreSD(d.base)
		if err != nil {
			return nil, err
		}
		g.reconcile(d, base)
	}
	g.clean[url] = d
	return d, nil
}

func (g *generator) reconcile(d, base *sdDoc) {
	name := d.obj.str("id")
	allowed := map[string]bool{}
	diffByPath := map[string]object{}
	for _, e := range d.diff {
		p := e.str("path")
		allowed[p] = true
		diffByPath[p] = e
		var types []struct {
			Code string `json:"code"`
		}
		if t := e.get("type"); t != nil {
			_ = json.Unmarshal(t, &types)
		}
		for _, t := range types {
			if t.Code == "BackboneElement" || t.Code == "Element" {
				allowed[p+".id"] = true
				allowed[p+".extension"] = true
				allowed[p+".modifierExtension"] = true
			}
		}
	}
	for _, e := range base.snapshot {
		p := e.str("path")
		allowed[d.typ+p[len(base.typ):]] = true
	}
	kept := d.snapshot[:0]
	for _, e := range d.snapshot {
		p := e.str("path")
		if !allowed[p] {
			g.notes = append(g.notes, fmt.Sprintf("%s: removed %s, which the R4 differential does not define", name, p))
			continue
		}
		if de := diffByPath[p]; de != nil && e.str("sliceName") == "" {
			for _, k := range []string{"min", "max", "type", "binding", "contentReference"} {
				dv := de.get(k)
				if dv != nil && !sameJSON(dv, e.get(k)) {
					g.notes = append(g.notes, fmt.Sprintf("%s: %s: %s taken from the differential", name, p, k))
					e.set(k, dv, elementRank)
				}
			}
		}
		kept = append(kept, e)
	}
	d.snapshot = kept
}

// coreTypes returns the URLs of the core datatype definitions the package's
// snapshots reach, directly or through other datatypes, sorted.
func (g *generator) coreTypes(ours []string) ([]string, error) {
	seen := map[string]bool{}
	var queue []*sdDoc
	for _, u := range ours {
		queue = append(queue, g.ours[u])
	}
	for len(queue) > 0 {
		sd := queue[0]
		queue = queue[1:]
		for _, e := range sd.snapshot {
			var types []struct {
				Code    string   `json:"code"`
				Profile []string `json:"profile"`
			}
			if t := e.get("type"); t != nil {
				if err := json.Unmarshal(t, &types); err != nil {
					return nil, err
				}
			}
			for _, t := range types {
				urls := []string{}
				if !strings.HasPrefix(t.Code, "http://hl7.org/fhirpath/") && !g.core.resourceTypes[t.Code] && t.Code != "Resource" {
					urls = append(urls, coreBase+t.Code)
				}
				if !g.core.resourceTypes[t.Code] {
					urls = append(urls, t.Profile...)
				}
				for _, u := range urls {
					u = canonical(u)
					if seen[u] || g.ours[u] != nil {
						continue
					}
					seen[u] = true
					d, err := g.coreSD(u)
					if err != nil {
						return nil, err
					}
					queue = append(queue, d)
				}
			}
		}
	}
	return sortedKeys(seen), nil
}

// coreTerms returns the URLs of the core ValueSets and CodeSystems needed
// to check the required bindings of the shipped definitions, and what
// those value sets include.
func (g *generator) coreTerms(sds []string, pkgTerms map[string]json.RawMessage) ([]string, error) {
	need := map[string]bool{}
	var visitVS func(url, from string) error
	visitVS = func(url, from string) error {
		url = canonical(url)
		if need[url] {
			return nil
		}
		raw := pkgTerms[url]
		if raw == nil {
			raw = g.core.terms[url]
			if raw == nil || g.core.kinds[url] != "ValueSet" {
				g.open = append(g.open, fmt.Sprintf("%s: value set %s is not available: not checked", from, url))
				return nil
			}
			need[url] = true
		}
		var vs ValueSet
		if err := json.Unmarshal(raw, &vs); err != nil {
			return err
		}
		if vs.Compose == nil {
			return nil
		}
		for _, inc := range append(slices.Clone(vs.Compose.Include), vs.Compose.Exclude...) {
			if s := canonical(inc.System); s != "" && pkgTerms[s] == nil {
				if g.core.kinds[s] == "CodeSystem" {
					need[s] = true
				} else {
					g.open = append(g.open, fmt.Sprintf("%s: code system %s is not available: its codes are not checked", url, s))
				}
			}
			for _, v := range inc.ValueSet {
				if err := visitVS(v, url); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for _, u := range sds {
		sd, err := g.sd(u)
		if err != nil {
			return nil, err
		}
		for _, e := range sd.snapshot {
			v := e.get("binding")
			if v == nil {
				continue
			}
			var b Binding
			if err := json.Unmarshal(v, &b); err != nil {
				return nil, err
			}
			// Only required bindings are checked: a code outside an
			// extensible or preferred value set is not an error.
			if b.ValueSet == "" || b.Strength != "required" {
				continue
			}
			if err := visitVS(b.ValueSet, e.str("path")); err != nil {
				return nil, err
			}
		}
	}
	g.open = dedupe(g.open)
	return sortedKeys(need), nil
}

func dedupe(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}

func (g *generator) readme(out map[string][]byte, types, terms []string) []byte {
	var b bytes.Buffer
	b.WriteString("# Generated snapshots — do not edit\n\n")
	b.WriteString("Generated by `go generate ./pkg/fhir/profile` from the differentials of this package and the\n")
	b.WriteString("FHIR R4 core definitions (`../shared/data/fhir-r4`). Edit the differentials, then regenerate;\n")
	b.WriteString("CI regenerates and fails on any difference.\n\n")
	b.WriteString("## Files\n\n")
	for _, k := range sortedKeys(out) {
		fmt.Fprintf(&b, "- `%s`\n", strings.TrimPrefix(k, "snapshots/"))
	}
	b.WriteString("- `README.md` (this file)\n")
	fmt.Fprintf(&b, "\n`core-types.json` holds %d core datatype definitions; `core-terminology.json` %d core value sets\n", len(types), len(terms))
	b.WriteString("and code systems (their narratives and mappings dropped).\n\n")
	b.WriteString("## Corrections to the core definitions\n\n")
	b.WriteString("Each core snapshot is checked against its own differential; the differential wins.\n\n")
	if len(g.notes) == 0 {
		b.WriteString("None.\n")
	}
	for _, n := range dedupe(g.notes) {
		fmt.Fprintf(&b, "- %s\n", n)
	}
	b.WriteString("\n## Bindings that cannot be checked\n\n")
	if len(g.open) == 0 {
		b.WriteString("None.\n")
	}
	for _, n := range g.open {
		fmt.Fprintf(&b, "- %s\n", n)
	}
	return b.Bytes()
}
