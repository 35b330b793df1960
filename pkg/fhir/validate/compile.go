package validate

import (
	"fmt"
	"strings"

	"github.com/passerelle-sante/passerelle/pkg/fhir/profile"
)

// The snapshots are compiled once, at New, into trees of elem: children
// indexed by JSON property name, choice types unfolded into their property
// names (valueCoding, valueQuantity…), value sets expanded, fixed and
// pattern values parsed, slice discriminators resolved. Validation then
// walks a message and the tree together, without looking anything up by
// path.

type primKind uint8

const (
	pNone primKind = iota
	pBoolean
	pInteger
	pPositiveInt
	pUnsignedInt
	pDecimal
	pString
	pMarkdown
	pCode
	pID
	pURI
	pURL
	pCanonical
	pOID
	pUUID
	pDate
	pDateTime
	pInstant
	pTime
	pBase64
	pXHTML
)

var primByName = map[string]primKind{
	"boolean": pBoolean, "integer": pInteger, "positiveInt": pPositiveInt, "unsignedInt": pUnsignedInt,
	"decimal": pDecimal, "string": pString, "markdown": pMarkdown, "code": pCode, "id": pID,
	"uri": pURI, "url": pURL, "canonical": pCanonical, "oid": pOID, "uuid": pUUID,
	"date": pDate, "dateTime": pDateTime, "instant": pInstant, "time": pTime,
	"base64Binary": pBase64, "xhtml": pXHTML,
}

// systemTypes maps the FHIRPath system types R4 uses for id, url and value
// elements when no fhir-type extension names the FHIR type.
var systemTypes = map[string]string{
	"http://hl7.org/fhirpath/System.String":   "string",
	"http://hl7.org/fhirpath/System.Boolean":  "boolean",
	"http://hl7.org/fhirpath/System.Integer":  "integer",
	"http://hl7.org/fhirpath/System.Decimal":  "decimal",
	"http://hl7.org/fhirpath/System.Date":     "date",
	"http://hl7.org/fhirpath/System.DateTime": "dateTime",
	"http://hl7.org/fhirpath/System.Time":     "time",
}

const coreBase = "http://hl7.org/fhir/StructureDefinition/"

// typeDef is a compiled StructureDefinition.
type typeDef struct {
	url        string
	name       string // StructureDefinition.name, for messages
	typ        string // the FHIR type it constrains or defines
	isResource bool
	root       *elem
	kids       *childSet
}

// elem is a compiled ElementDefinition.
type elem struct {
	def        *typeDef
	path       string
	name       string // JSON name, without [x]
	choice     bool
	min, max   int // max -1: unbounded
	array      bool
	types      []*etype
	resources  bool // the types are resource types: dispatch on resourceType
	fixed      *value
	pattern    *value
	binding    *binding
	slicing    *profile.Slicing
	slices     []*elem
	sliceName  string
	disc       []discValue // for a slice: what its discriminators must find
	invs       []*invariant
	maxLength  int
	modifier   bool // a modifierExtension element
	inline     []*elem
	kids       *childSet // inline children, when the snapshot lists them
	contentRef string
}

// etype is one type of an element.
type etype struct {
	code     string
	prim     primKind
	key      string    // JSON property name
	kids     *childSet // the element's own children (inline)
	def      *typeDef  // the type's (or its profile's) definition
	typeRoot *elem     // the datatype's root, whose invariants apply
	profiles []*typeDef
	targets  []string // resource types a Reference may point to; nil: any
	invs     []*invariant
}

// children returns the child elements of a value of this type.
func (t *etype) children() *childSet {
	if t.kids != nil {
		return t.kids
	}
	if t.def != nil {
		return t.def.kids
	}
	return nil
}

type childSet struct {
	list   []*elem
	byKey  map[string]keyRef
	byName map[string]int
}

type keyRef struct {
	idx int
	t   *etype
}

type binding struct {
	url string
	exp *profile.Expansion
}

// discValue is what a slice's discriminator must find in an item: at path
// (property names; empty for $this), a value equal to or matching want,
// or a resource of one of types.
type discValue struct {
	typ   string
	path  []string
	want  *value
	types []string
}

type compiler struct {
	reg     *profile.Registry
	defs    map[string]*typeDef
	exprs   map[string]*fpNode
	jp      parser
	pending []*elem // elements whose slices need discriminators
	rtypes  map[string]bool
}

func (c *compiler) def(url string) (*typeDef, error) {
	url, _, _ = strings.Cut(url, "|")
	if d := c.defs[url]; d != nil {
		return d, nil
	}
	sd := c.reg.StructureDefinition(url)
	if sd == nil {
		return nil, fmt.Errorf("StructureDefinition %s is not in the package", url)
	}
	d := &typeDef{url: sd.URL, name: sd.Name, typ: sd.Type, isResource: sd.Kind == "resource"}
	c.defs[url] = d
	if err := c.compile(d, sd); err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	return d, nil
}

func (c *compiler) compile(d *typeDef, sd *profile.StructureDefinition) error {
	els := sd.Snapshot.Element
	if len(els) == 0 {
		return fmt.Errorf("no snapshot")
	}
	byID := make(map[string]*elem, len(els))
	list := make([]*elem, len(els))
	for i, ed := range els {
		name := ed.Path[strings.LastIndexByte(ed.Path, '.')+1:]
		el := &elem{def: d, path: ed.Path, min: ed.Min, max: ed.MaxInt(), array: ed.IsArray(),
			sliceName: ed.SliceName, maxLength: ed.MaxLength, slicing: ed.Slicing, contentRef: ed.ContentReference}
		if n, ok := strings.CutSuffix(name, "[x]"); ok {
			el.choice, name = true, n
		}
		el.name = name
		el.modifier = name == "modifierExtension"
		list[i] = el
		byID[ed.ID] = el
		if i == 0 {
			d.root = el
			continue
		}
		dot := strings.LastIndexByte(ed.ID, '.')
		if dot < 0 {
			return fmt.Errorf("element %s outside the root", ed.ID)
		}
		if ed.SliceName != "" && strings.HasSuffix(ed.ID, ":"+ed.SliceName) {
			base := byID[strings.TrimSuffix(ed.ID, ":"+ed.SliceName)]
			if base == nil {
				return fmt.Errorf("slice %s before its element", ed.ID)
			}
			base.slices = append(base.slices, el)
			continue
		}
		parent := byID[ed.ID[:dot]]
		if parent == nil {
			return fmt.Errorf("element %s before its parent", ed.ID)
		}
		parent.inline = append(parent.inline, el)
	}
	// Types first, so that child sets can index them.
	for i, ed := range els {
		if err := c.element(d, list[i], ed); err != nil {
			return fmt.Errorf("%s: %w", ed.ID, err)
		}
	}
	// A contentReference element has the referenced element's types and
	// children under its own name.
	var refs []*elem
	for i, ed := range els {
		el := list[i]
		if el.contentRef == "" {
			continue
		}
		target := byID[strings.TrimPrefix(el.contentRef, "#")]
		if target == nil {
			return fmt.Errorf("%s: contentReference %s not found", ed.ID, el.contentRef)
		}
		for _, tt := range target.types {
			t := *tt
			t.key = el.name
			el.types = append(el.types, &t)
		}
		el.inline = nil
		refs = append(refs, el, target)
	}
	primitive := sd.Kind == "primitive-type"
	for _, el := range list {
		if len(el.inline) == 0 {
			continue
		}
		el.kids = childSetOf(el.inline, primitive && el == d.root)
		for _, t := range el.types {
			t.kids = el.kids
		}
	}
	for i := 0; i < len(refs); i += 2 {
		el, target := refs[i], refs[i+1]
		el.kids = target.kids
		for _, t := range el.types {
			if t.kids == nil {
				t.kids = target.kids
			}
		}
	}
	d.kids = d.root.kids
	if d.kids == nil {
		d.kids = &childSet{byKey: map[string]keyRef{}, byName: map[string]int{}}
	}
	// Every resource's id is an id, whatever R4's System.String says.
	if d.isResource {
		if ref, ok := d.kids.byKey["id"]; ok {
			ref.t.prim = pID
		}
	}
	for _, el := range list {
		if el.slicing != nil && len(el.slices) > 0 {
			c.pending = append(c.pending, el)
		}
	}
	return nil
}

func childSetOf(list []*elem, skipValue bool) *childSet {
	cs := &childSet{byKey: map[string]keyRef{}, byName: map[string]int{}}
	for _, ch := range list {
		if skipValue && ch.name == "value" {
			continue // a primitive's value is the JSON value itself
		}
		idx := len(cs.list)
		cs.list = append(cs.list, ch)
		cs.byName[ch.name] = idx
		for _, t := range ch.types {
			if _, dup := cs.byKey[t.key]; !dup {
				cs.byKey[t.key] = keyRef{idx: idx, t: t}
			}
		}
	}
	return cs
}

func (c *compiler) element(d *typeDef, el *elem, ed *profile.ElementDefinition) error {
	for _, tr := range ed.Type {
		code := tr.Code
		if code == "" {
			return fmt.Errorf("type without code")
		}
		if st, ok := systemTypes[code]; ok {
			code = st
			if tr.FHIRType != "" {
				code = tr.FHIRType
			}
		}
		t := &etype{code: code, prim: primByName[code], key: el.name}
		if el.choice {
			t.key = el.name + strings.ToUpper(code[:1]) + code[1:]
		}
		switch {
		case c.isResourceType(code):
			el.resources = true
			for _, p := range tr.Profile {
				pd, err := c.def(p)
				if err != nil {
					return err
				}
				t.profiles = append(t.profiles, pd)
			}
		case t.prim != pNone:
			// The primitive's own definition gives the id and extension of
			// its _name companion.
			if pd, err := c.def(coreBase + code); err == nil {
				t.def = pd
			}
		default:
			base, err := c.def(coreBase + code)
			if err == nil {
				t.def = base
				t.typeRoot = base.root
			}
			if len(tr.Profile) > 0 {
				pd, err := c.def(tr.Profile[0])
				if err != nil {
					return err
				}
				t.def = pd
			}
		}
		for _, tp := range tr.TargetProfile {
			name, err := c.targetType(tp)
			if err != nil {
				return err
			}
			if name == "Resource" {
				t.targets = nil
				break
			}
			t.targets = append(t.targets, name)
		}
		el.types = append(el.types, t)
	}
	var err error
	if ed.Fixed != nil {
		if el.fixed, err = c.parse(ed.Fixed.JSON); err != nil {
			return fmt.Errorf("fixed%s: %w", ed.Fixed.Type, err)
		}
	}
	if ed.Pattern != nil {
		if el.pattern, err = c.parse(ed.Pattern.JSON); err != nil {
			return fmt.Errorf("pattern%s: %w", ed.Pattern.Type, err)
		}
	}
	if b := ed.Binding; b != nil && b.Strength == "required" && b.ValueSet != "" {
		exp, err := c.reg.Expand(b.ValueSet)
		if err != nil {
			// The package's own profiles must bind to value sets it ships;
			// a core datatype's binding to one the generator could not
			// bring along is left unchecked (snapshots/README.md).
			if !strings.HasPrefix(d.url, coreBase) {
				return err
			}
		} else {
			el.binding = &binding{url: b.ValueSet, exp: exp}
		}
	}
	for _, k := range ed.Constraint {
		if k.Severity != "error" || k.Expression == "" {
			continue
		}
		n, ok := c.exprs[k.Expression]
		if !ok {
			n, _ = parseFHIRPath(k.Expression) // nil when outside the subset
			c.exprs[k.Expression] = n
		}
		if n != nil {
			el.invs = append(el.invs, &invariant{key: k.Key, en: k.Human, fr: k.HumanFR, expr: n})
		}
	}
	for _, t := range el.types {
		t.invs = el.invs
		if t.typeRoot != nil {
			t.invs = mergeInvariants(el.invs, t.typeRoot.invs)
		}
	}
	return nil
}

func mergeInvariants(a, b []*invariant) []*invariant {
	out := a
	for _, x := range b {
		dup := false
		for _, y := range a {
			if y.key == x.key {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out[:len(out):len(out)], x)
		}
	}
	return out
}

func (c *compiler) parse(raw []byte) (*value, error) {
	v, err := parseJSON(&c.jp, raw)
	if err != nil {
		return nil, fmt.Errorf("%s", err.en)
	}
	return &v, nil
}

func (c *compiler) isResourceType(code string) bool {
	if code == "Resource" || code == "DomainResource" {
		return true
	}
	sd := c.reg.StructureDefinition(coreBase + code)
	if sd != nil {
		return sd.Kind == "resource"
	}
	// The core resource definitions are not shipped; the resource-types
	// code system lists them.
	return c.rtypes[code]
}

func (c *compiler) targetType(url string) (string, error) {
	url, _, _ = strings.Cut(url, "|")
	if sd := c.reg.StructureDefinition(url); sd != nil {
		return sd.Type, nil
	}
	if name, ok := strings.CutPrefix(url, coreBase); ok && (name == "Resource" || c.isResourceType(name)) {
		return name, nil
	}
	return "", fmt.Errorf("target profile %s is unknown", url)
}

// discriminators resolves, for each slice, the values its discriminators
// must find. Supported: value and pattern discriminators on a path of
// child names whose element the slice fixes (or, for an extension's url,
// the extension profile's URL), and type discriminators on $this or a
// child of a resource type.
func (c *compiler) discriminators() error {
	for len(c.pending) > 0 {
		el := c.pending[0]
		c.pending = c.pending[1:]
		for _, s := range el.slices {
			s.disc = s.disc[:0]
			for _, d := range el.slicing.Discriminator {
				dv := discValue{typ: d.Type}
				if d.Path != "$this" {
					dv.path = strings.Split(d.Path, ".")
				}
				target := s
				for _, name := range dv.path {
					target = childNamed(target, name)
					if target == nil {
						break
					}
				}
				switch d.Type {
				case "value", "pattern":
					switch {
					case target != nil && target.fixed != nil:
						dv.want = target.fixed
					case target != nil && target.pattern != nil:
						dv.want = target.pattern
					case d.Path == "url" && len(s.types) == 1 && s.types[0].code == "Extension" && s.types[0].def != nil:
						v := value{kind: kString, str: s.types[0].def.url}
						dv.want = &v
					}
					if dv.want == nil {
						return fmt.Errorf("%s: slice %s fixes no value at %s", el.def.url, s.sliceName, d.Path)
					}
				case "type":
					if target == nil {
						return fmt.Errorf("%s: slice %s has no element %s", el.def.url, s.sliceName, d.Path)
					}
					for _, t := range target.types {
						dv.types = append(dv.types, t.code)
					}
				default:
					return fmt.Errorf("%s: %s discriminators are not supported", el.def.url, d.Type)
				}
				s.disc = append(s.disc, dv)
			}
		}
	}
	return nil
}

// childNamed returns the child element called name of el, from its inline
// children or its single type's definition.
func childNamed(el *elem, name string) *elem {
	var cs *childSet
	if el.kids != nil {
		cs = el.kids
	} else if len(el.types) == 1 {
		cs = el.types[0].children()
	}
	if cs == nil {
		return nil
	}
	i, ok := cs.byName[name]
	if !ok {
		return nil
	}
	return cs.list[i]
}
