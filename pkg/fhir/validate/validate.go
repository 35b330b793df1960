package validate

import (
	"errors"
	"fmt"
	"github.com/passerelle-sante/passerelle/pkg/fhir"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/passerelle-sante/passerelle/pkg/fhir/ident"
	"github.com/passerelle-sante/passerelle/pkg/fhir/profile"
)

// MessageBundleProfile is the profile ValidateBundle checks messages
// against.
const MessageBundleProfile = "https://passerelle.health/fhir/StructureDefinition/passerelle-message-bundle"

// Issue is one problem found in a message.
type Issue struct {
	// Severity: error, warning or information.
	Severity string
	// Code from the FHIR issue-type value set; see the package comment.
	Code string
	// FR and EN say what is wrong.
	FR, EN string
	// Expression locates it: a FHIRPath such as
	// Bundle.entry[2].resource.subject.
	Expression string
}

// Validator validates resources and messages against the profiles of a
// registry. It is safe for concurrent use.
type Validator struct {
	reg         *profile.Registry
	defs        map[string]*typeDef
	bundle      *typeDef
	extBase     *typeDef
	exts        map[string]*typeDef // extension definitions by URL
	idChecks    map[string]func(string) error
	msgDefs     map[string]*msgDef // by event system|code
	codeSystems map[string]map[string]struct{}
	pool        sync.Pool
}

type msgDef struct {
	url   string
	event string
	focus []msgFocus
}

type msgFocus struct {
	code     string
	def      *typeDef
	min, max int
}

// New compiles the registry's snapshots, value sets, message definitions
// and identifier systems. It fails when a profile cannot be compiled: a
// required binding to a value set the package lacks, a slice whose
// discriminator it cannot evaluate, a check algorithm it does not know.
func New(reg *profile.Registry) (*Validator, error) {
	c := &compiler{reg: reg, defs: map[string]*typeDef{}, exprs: map[string]*fpNode{}, rtypes: map[string]bool{}}
	if cs := reg.CodeSystem("http://hl7.org/fhir/resource-types"); cs != nil {
		for _, code := range cs.Codes() {
			c.rtypes[code] = true
		}
	}
	v := &Validator{reg: reg, exts: map[string]*typeDef{}, idChecks: map[string]func(string) error{},
		msgDefs: map[string]*msgDef{}, codeSystems: map[string]map[string]struct{}{}}
	for _, sd := range reg.StructureDefinitions() {
		d, err := c.def(sd.URL)
		if err != nil {
			return nil, fmt.Errorf("compile profiles: %w", err)
		}
		if sd.Type == "Extension" && sd.Derivation == "constraint" {
			v.exts[sd.URL] = d
		}
	}
	if err := c.discriminators(); err != nil {
		return nil, fmt.Errorf("compile profiles: %w", err)
	}
	v.defs = c.defs
	v.bundle = c.defs[MessageBundleProfile]
	if v.bundle == nil {
		return nil, fmt.Errorf("compile profiles: the package has no %s", MessageBundleProfile)
	}
	v.extBase = c.defs[coreBase+"Extension"]
	for _, md := range reg.MessageDefinitions() {
		m := &msgDef{url: md.URL, event: md.EventCoding.Code}
		for _, f := range md.Focus {
			mf := msgFocus{code: f.Code, min: f.Min, max: f.MaxInt()}
			if f.Profile != "" {
				d := c.defs[strings.SplitN(f.Profile, "|", 2)[0]]
				if d == nil || d.typ != f.Code {
					return nil, fmt.Errorf("compile message definitions: %s: focus profile %s is not a %s profile of the package", md.URL, f.Profile, f.Code)
				}
				mf.def = d
			}
			m.focus = append(m.focus, mf)
		}
		v.msgDefs[md.EventCoding.System+"|"+md.EventCoding.Code] = m
	}
	for _, ns := range reg.NamingSystems() {
		if ns.Check == "" {
			continue
		}
		check := ident.Checkers[ns.Check]
		if check == nil {
			return nil, fmt.Errorf("compile naming systems: %s: unknown identifier check %q", ns.Name, ns.Check)
		}
		for _, s := range ns.Systems() {
			v.idChecks[s] = check
		}
	}
	// Codes of complete code systems are checked wherever a Coding uses
	// the system, bound or not: a code its own system does not define is
	// wrong in any context.
	for _, url := range reg.CodeSystemURLs() {
		cs := reg.CodeSystem(url)
		if cs == nil || cs.Content != "complete" {
			continue
		}
		set := map[string]struct{}{}
		for _, code := range cs.Codes() {
			set[code] = struct{}{}
		}
		v.codeSystems[url] = set
	}
	v.pool.New = func() any { return &walker{parser: parser{reuse: true}} }
	return v, nil
}

// ValidateBundle validates a message Bundle against the message Bundle
// profile, each entry's resource against its profile (see the package
// comment), the references between entries and the rules of the event's
// MessageDefinition. It returns every issue found, in document order, the
// message rules and references last; none means valid.
func (v *Validator) ValidateBundle(body []byte) []Issue {
	return v.run(body, "Bundle", func(w *walker, root *value) {
		w.path = append(w.path[:0], "Bundle"...)
		w.indexBundle(root)
		w.resource(root, v.bundle, false)
		w.resolveRefs()
		w.issues = append(w.issues, w.late...)
	})
}

// ValidateResource validates a single resource against the profile with
// that URL; with "" it uses the profiles its meta.profile names that the
// registry holds, or the core definition of its type when the registry has
// it. References are checked for their form and target type; only those to
// contained resources are resolved.
func (v *Validator) ValidateResource(profileURL string, body []byte) []Issue {
	return v.run(body, "Resource", func(w *walker, root *value) {
		rt, _ := root.getString("resourceType")
		if rt == "" {
			rt = "Resource"
		}
		w.path = append(w.path[:0], rt...)
		var def *typeDef
		if profileURL != "" {
			def = v.defs[strings.SplitN(profileURL, "|", 2)[0]]
			if def == nil || !def.isResource {
				w.issue("error", "not-supported", fmt.Sprintf("Profil inconnu : %s", profileURL), fmt.Sprintf("Unknown profile: %s", profileURL))
				return
			}
		} else {
			for _, p := range metaProfiles(root) {
				if d := v.defs[p]; d != nil && d.isResource && d.typ == rt {
					def = d
					break
				}
			}
			if def == nil {
				def = v.defs[coreBase+rt]
			}
			if def == nil {
				w.issue("error", "not-supported",
					fmt.Sprintf("Aucun profil connu pour le type %s : préciser le profil", rt),
					fmt.Sprintf("No known profile for resource type %s: name the profile", rt))
				return
			}
		}
		w.resource(root, def, false)
		w.resolveRefs()
		w.issues = append(w.issues, w.late...)
	})
}

func (v *Validator) run(body []byte, rootName string, f func(*walker, *value)) (issues []Issue) {
	w := v.pool.Get().(*walker)
	w.reset(v)
	defer func() {
		if r := recover(); r != nil {
			// A validator bug must not take the intake down: report it as
			// what it is, with the stack for the logs of whoever reads it.
			issues = []Issue{{Severity: "fatal", Code: "exception", Expression: rootName,
				FR: "Erreur interne du validateur", EN: fmt.Sprintf("internal validator error: %v\n%s", r, debug.Stack())}}
			return
		}
		v.pool.Put(w)
	}()
	root, perr := parseJSON(&w.parser, body)
	if perr != nil {
		return []Issue{{Severity: "error", Code: "structure", Expression: rootName,
			FR: fmt.Sprintf("JSON invalide (octet %d) : %s", perr.offset, perr.fr),
			EN: fmt.Sprintf("invalid JSON (byte %d): %s", perr.offset, perr.en)}}
	}
	if root.kind != kObject {
		return []Issue{{Severity: "error", Code: "structure", Expression: rootName,
			FR: "Le document doit être un objet JSON", EN: "The document must be a JSON object"}}
	}
	f(w, &root)
	out := w.issues
	w.issues = nil
	if w.dedupe {
		out = dedupeIssues(out)
	}
	if len(out) >= maxIssues {
		out = append(out[:maxIssues], Issue{Severity: "error", Code: "too-costly", Expression: rootName,
			FR: fmt.Sprintf("Plus de %d problèmes : les suivants ne sont pas rapportés", maxIssues),
			EN: fmt.Sprintf("More than %d issues: the rest are not reported", maxIssues)})
	}
	return out
}

func dedupeIssues(in []Issue) []Issue {
	out := in[:0]
	seen := map[Issue]bool{}
	for _, i := range in {
		if !seen[i] {
			seen[i] = true
			out = append(out, i)
		}
	}
	return out
}

func metaProfiles(res *value) []string {
	var out []string
	if p := res.get("meta").get("profile"); p != nil && p.kind == kArray {
		for _, it := range p.kids {
			if it.val.kind == kString {
				out = append(out, strings.SplitN(it.val.str, "|", 2)[0])
			}
		}
	}
	return out
}

// walker is the state of one validation.
type walker struct {
	v        *Validator
	parser   parser
	issues   []Issue
	late     []Issue // message rules and references, reported last
	path     []byte
	counts   []int32
	refs     []refUse
	entries  []entryInfo
	override map[*value]*typeDef
	current  []*value // resources being validated, innermost last
	codeErrs int
	dedupe   bool
	fpThis   [1]fpItem
}

type refUse struct {
	expr    string
	ref     string
	targets []string
	res     *value // the resource holding the reference
}

type entryInfo struct {
	fullURL, rt, id string
	res             *value
}

func (w *walker) reset(v *Validator) {
	w.v = v
	w.issues = w.issues[:0]
	w.late = w.late[:0]
	w.path = w.path[:0]
	w.counts = w.counts[:0]
	w.refs = w.refs[:0]
	w.entries = w.entries[:0]
	clear(w.override)
	w.current = w.current[:0]
	w.codeErrs = 0
	w.dedupe = false
}

// maxIssues bounds the report: past it a hostile or broken message would
// cost memory for nothing the sender can use.
const maxIssues = 1000

func (w *walker) issue(severity, code, fr, en string) {
	if len(w.issues) >= maxIssues {
		return
	}
	w.issues = append(w.issues, Issue{Severity: severity, Code: code, FR: fr, EN: en, Expression: string(w.path)})
}

func (w *walker) push(seg string) int {
	n := len(w.path)
	w.path = append(w.path, '.')
	w.path = append(w.path, seg...)
	return n
}

// pushElem appends an element's FHIRPath name: name, or for a choice
// element name.ofType(Type).
func (w *walker) pushElem(el *elem, t *etype) int {
	n := w.push(el.name)
	if el.choice && t != nil {
		w.path = append(w.path, ".ofType("...)
		w.path = append(w.path, t.code...)
		w.path = append(w.path, ')')
	}
	return n
}

func (w *walker) pushIndex(i int) int {
	n := len(w.path)
	w.path = append(w.path, '[')
	w.path = strconv.AppendInt(w.path, int64(i), 10)
	w.path = append(w.path, ']')
	return n
}

func (w *walker) pop(n int) { w.path = w.path[:n] }

func (w *walker) at(expr string, severity, code, fr, en string) Issue {
	return Issue{Severity: severity, Code: code, FR: fr, EN: en, Expression: expr}
}

// resource validates a resource object against def. A contained resource
// is not a container itself: references to #id inside it resolve in the
// resource that contains it.
func (w *walker) resource(res *value, def *typeDef, contained bool) {
	rt, ok := res.getString("resourceType")
	switch {
	case !ok:
		w.issue("error", "structure", "Propriété resourceType absente ou qui n'est pas une chaîne",
			"resourceType is missing or not a string")
		return
	case rt != def.typ:
		w.issue("error", "structure",
			fmt.Sprintf("Ressource %s là où le profil %s attend un(e) %s", rt, def.name, def.typ),
			fmt.Sprintf("A %s where profile %s expects a %s", rt, def.name, def.typ))
		return
	}
	if !contained {
		w.current = append(w.current, res)
		defer func() { w.current = w.current[:len(w.current)-1] }()
	}
	w.object(res, def.kids, true)
	w.invariants(def.root.invs, res, def.kids)
	for i, p := range metaProfiles(res) {
		if p == def.url {
			continue
		}
		other := w.v.defs[p]
		if other == nil || !other.isResource || other.typ != rt {
			mark := w.push("meta.profile")
			w.pushIndex(i)
			w.issue("information", "not-supported",
				fmt.Sprintf("Profil déclaré inconnu, non vérifié : %s", p),
				fmt.Sprintf("Declared profile unknown, not checked: %s", p))
			w.pop(mark)
			continue
		}
		w.dedupe = true
		w.object(res, other.kids, true)
		w.invariants(other.root.invs, res, other.kids)
	}
}

// object validates the members of obj against the child elements kids:
// unknown and duplicate properties, then each member, then cardinalities.
func (w *walker) object(obj *value, kids *childSet, root bool) {
	n := 2 * len(kids.list)
	base := len(w.counts)
	w.counts = slices.Grow(w.counts, n)[:base+n]
	clear(w.counts[base:])
	for i := range obj.kids {
		f := &obj.kids[i]
		key := f.key
		if root && key == "resourceType" {
			continue
		}
		under := len(key) > 1 && key[0] == '_'
		k := key
		if under {
			k = key[1:]
		}
		ref, ok := kids.byKey[k]
		if !ok || (under && ref.t.prim == pNone) {
			mark := w.push(key)
			w.issue("error", "structure",
				fmt.Sprintf("Élément inconnu « %s » : ni FHIR R4 ni le profil ne le définissent ici", key),
				fmt.Sprintf("Unknown element %q: neither FHIR R4 nor the profile defines it here", key))
			w.pop(mark)
			continue
		}
		el := kids.list[ref.idx]
		slot := base + 2*ref.idx
		if under {
			slot++
		}
		mark := w.pushElem(el, ref.t)
		if w.counts[slot] != 0 {
			if el.choice {
				w.issue("error", "structure",
					fmt.Sprintf("Un seul type à la fois pour %s[x]", el.name),
					fmt.Sprintf("%s[x] takes one type only", el.name))
			} else {
				w.issue("error", "structure",
					fmt.Sprintf("Propriété « %s » répétée", key), fmt.Sprintf("Property %q repeated", key))
			}
			w.pop(mark)
			continue
		}
		w.counts[slot] = int32(w.member(el, ref.t, &f.val, under, obj, key))
		w.pop(mark)
	}
	for idx, el := range kids.list {
		c := max(w.counts[base+2*idx], w.counts[base+2*idx+1])
		if int(c) >= el.min && (el.max < 0 || int(c) <= el.max) {
			continue
		}
		mark := w.push(el.name)
		switch {
		case int(c) < el.min:
			w.issue("error", "required",
				fmt.Sprintf("Élément obligatoire absent : %s (au moins %d)", el.path, el.min),
				fmt.Sprintf("Required element missing: %s (at least %d)", el.path, el.min))
		case el.max == 0:
			w.issue("error", "structure",
				fmt.Sprintf("Élément interdit par le profil %s : %s", el.def.name, el.path),
				fmt.Sprintf("Element not allowed by profile %s: %s", el.def.name, el.path))
		default:
			w.issue("error", "structure",
				fmt.Sprintf("Trop d'occurrences de %s : %d (au plus %d)", el.path, c, el.max),
				fmt.Sprintf("Too many occurrences of %s: %d (at most %d)", el.path, c, el.max))
		}
		w.pop(mark)
	}
	w.counts = w.counts[:base]
}

// member validates one property of an object and returns how many values
// it holds.
func (w *walker) member(el *elem, t *etype, v *value, under bool, parent *value, key string) int {
	if !el.array {
		if v.kind == kArray {
			w.issue("error", "structure",
				fmt.Sprintf("%s prend une seule valeur, pas un tableau", el.path),
				fmt.Sprintf("%s takes a single value, not an array", el.path))
			return 1
		}
		if under {
			w.primitiveExtras(t, v)
			return 1
		}
		if v.kind == kNull {
			w.issue("error", "structure", "null n'est pas une valeur FHIR : omettre l'élément",
				"null is not a FHIR value: leave the element out")
			return 0
		}
		w.item(el, t, v)
		return 1
	}
	if v.kind != kArray {
		w.issue("error", "structure",
			fmt.Sprintf("%s se répète : sa valeur doit être un tableau JSON", el.path),
			fmt.Sprintf("%s repeats: its value must be a JSON array", el.path))
		return 1
	}
	if len(v.kids) == 0 {
		w.issue("error", "structure", "Tableau vide interdit : omettre l'élément",
			"Empty arrays are not allowed: leave the element out")
		return 0
	}
	if under {
		for i := range v.kids {
			mark := w.pushIndex(i)
			if v.kids[i].val.kind != kNull {
				w.primitiveExtras(t, &v.kids[i].val)
			}
			w.pop(mark)
		}
		return len(v.kids)
	}
	if el.slicing != nil && len(el.slices) > 0 {
		w.sliced(el, t, v)
		return len(v.kids)
	}
	// In a primitive array, null holds the place of a value that only has
	// extensions, given in the _name array.
	nullOK := t.prim != pNone && parent.get("_"+key) != nil
	for i := range v.kids {
		mark := w.pushIndex(i)
		item := &v.kids[i].val
		if item.kind == kNull {
			if !nullOK {
				w.issue("error", "structure", "null n'est pas une valeur FHIR", "null is not a FHIR value")
			}
		} else {
			w.item(el, t, item)
		}
		w.pop(mark)
	}
	return len(v.kids)
}

// primitiveExtras validates the _name companion of a primitive: its id
// and extensions.
func (w *walker) primitiveExtras(t *etype, v *value) {
	if v.kind != kObject {
		w.issue("error", "structure", "_élément : un objet (id, extension) attendu",
			"_element: an object (id, extension) was expected")
		return
	}
	if kids := t.children(); kids != nil {
		w.object(v, kids, false)
	}
}

// sliced validates the items of a sliced element: each goes to the first
// slice whose discriminators it matches, or to the element itself.
func (w *walker) sliced(el *elem, t *etype, v *value) {
	var small [8]int32
	counts := small[:0]
	if len(el.slices) > len(small) {
		counts = make([]int32, len(el.slices))
	} else {
		counts = small[:len(el.slices)]
	}
	last, unsliced := -1, false
	for i := range v.kids {
		mark := w.pushIndex(i)
		item := &v.kids[i].val
		s := w.matchSlice(el, item)
		switch {
		case s >= 0:
			if el.slicing.Ordered && s < last {
				w.issue("error", "structure",
					fmt.Sprintf("Ordre des tranches de %s non respecté : %s vient trop tard", el.path, el.slices[s].sliceName),
					fmt.Sprintf("Slices of %s out of order: %s comes too late", el.path, el.slices[s].sliceName))
			}
			if el.slicing.Rules == "openAtEnd" && unsliced {
				w.issue("error", "structure",
					fmt.Sprintf("%s (%s) doit précéder les autres éléments de %s", el.slices[s].sliceName, el.path, el.path),
					fmt.Sprintf("%s (%s) must come before the other items of %s", el.slices[s].sliceName, el.path, el.path))
			}
			last = max(last, s)
			counts[s]++
			sl := el.slices[s]
			st := t
			if len(sl.types) > 0 {
				st = sl.types[0]
			}
			if item.kind == kNull {
				w.issue("error", "structure", "null n'est pas une valeur FHIR", "null is not a FHIR value")
			} else {
				w.item(sl, st, item)
			}
		default:
			if el.slicing.Rules == "closed" {
				w.issue("error", "structure",
					fmt.Sprintf("%s ne correspond à aucune des tranches permises par le profil", el.path),
					fmt.Sprintf("%s matches none of the slices the profile allows", el.path))
			}
			unsliced = true
			if item.kind == kNull {
				w.issue("error", "structure", "null n'est pas une valeur FHIR", "null is not a FHIR value")
			} else {
				w.item(el, t, item)
			}
		}
		w.pop(mark)
	}
	for s, sl := range el.slices {
		c := int(counts[s])
		switch {
		case c < sl.min:
			w.issue("error", "required",
				fmt.Sprintf("%s : la tranche %s est obligatoire (au moins %d)", el.path, sl.sliceName, sl.min),
				fmt.Sprintf("%s: slice %s is required (at least %d)", el.path, sl.sliceName, sl.min))
		case sl.max >= 0 && c > sl.max:
			w.issue("error", "structure",
				fmt.Sprintf("%s : trop d'éléments dans la tranche %s (%d, au plus %d)", el.path, sl.sliceName, c, sl.max),
				fmt.Sprintf("%s: too many items in slice %s (%d, at most %d)", el.path, sl.sliceName, c, sl.max))
		}
	}
}

func (w *walker) matchSlice(el *elem, item *value) int {
	for i, s := range el.slices {
		if discMatch(s, item) {
			return i
		}
	}
	return -1
}

func discMatch(s *elem, item *value) bool {
	for _, d := range s.disc {
		if !discOne(d, item, 0) {
			return false
		}
	}
	return len(s.disc) > 0
}

func discOne(d discValue, v *value, depth int) bool {
	if v == nil {
		return false
	}
	if v.kind == kArray {
		for i := range v.kids {
			if discOne(d, &v.kids[i].val, depth) {
				return true
			}
		}
		return false
	}
	if depth < len(d.path) {
		return discOne(d, v.get(d.path[depth]), depth+1)
	}
	switch d.typ {
	case "value":
		return equalValue(d.want, v)
	case "pattern":
		return matchPattern(d.want, v)
	case "type":
		rt, _ := v.getString("resourceType")
		return slices.Contains(d.types, rt)
	}
	return false
}

// item validates one value of an element of type t.
func (w *walker) item(el *elem, t *etype, v *value) {
	if el.resources {
		w.embedded(el, v)
		return
	}
	if t.prim != pNone {
		w.primitive(el, t, v)
		return
	}
	if v.kind != kObject {
		w.issue("error", "structure",
			fmt.Sprintf("%s (%s) doit être un objet JSON, pas un(e) %s", el.path, t.code, kindFR(v.kind)),
			fmt.Sprintf("%s (%s) must be a JSON object, not a %s", el.path, t.code, v.kind))
		return
	}
	kids := t.children()
	invs := t.invs
	if t.code == "Extension" && t.kids == nil && t.def == w.v.extBase {
		url, _ := v.getString("url")
		if d := w.v.exts[url]; d != nil {
			kids, invs = d.kids, mergeInvariants(t.invs, d.root.invs)
		} else if url != "" {
			if el.modifier {
				w.issue("error", "extension",
					fmt.Sprintf("Extension modificatrice inconnue %s : le message ne peut pas être compris sans elle", url),
					fmt.Sprintf("Unknown modifier extension %s: the message cannot be understood without it", url))
			} else {
				w.issue("warning", "extension",
					fmt.Sprintf("Extension inconnue %s : ignorée", url),
					fmt.Sprintf("Unknown extension %s: ignored", url))
			}
		}
	}
	before := w.codeErrs
	if kids != nil {
		w.object(v, kids, false)
	}
	if el.fixed != nil && !equalValue(el.fixed, v) {
		w.issue("error", "value",
			fmt.Sprintf("%s doit valoir exactement la valeur fixée par le profil %s", el.path, el.def.name),
			fmt.Sprintf("%s must be exactly the value fixed by profile %s", el.path, el.def.name))
	}
	if el.pattern != nil && !matchPattern(el.pattern, v) {
		w.issue("error", "value",
			fmt.Sprintf("%s ne contient pas la valeur imposée par le profil %s", el.path, el.def.name),
			fmt.Sprintf("%s does not hold the value required by profile %s", el.path, el.def.name))
	}
	switch t.code {
	case "Coding":
		w.coding(el, v)
	case "CodeableConcept":
		w.codeableConcept(el, v, before)
	case "Quantity", "Age", "Count", "Distance", "Duration", "MoneyQuantity", "SimpleQuantity":
		if el.binding != nil {
			w.coding(el, v)
		}
	case "Identifier":
		w.identifier(v)
	case "Reference":
		w.reference(t, v)
	}
	w.invariants(invs, v, kids)
}

func kindFR(k kind) string {
	return [...]string{"null", "booléen", "nombre", "chaîne", "objet", "tableau"}[k]
}

// embedded validates a resource held by an element (Bundle.entry.resource,
// contained): against the focus profile the message definition chose, or
// the profile the element gives for its type, or the core definition.
func (w *walker) embedded(el *elem, v *value) {
	if v.kind != kObject {
		w.issue("error", "structure", "Une ressource doit être un objet JSON", "A resource must be a JSON object")
		return
	}
	rt, _ := v.getString("resourceType")
	def := w.override[v]
	if def == nil {
		for _, t := range el.types {
			switch {
			case t.code == rt && len(t.profiles) > 0:
				def = t.profiles[0]
			case t.code == rt || t.code == "Resource" || t.code == "DomainResource":
				def = w.v.defs[coreBase+rt]
			default:
				continue
			}
			break
		}
		if def == nil {
			var allowed []string
			for _, t := range el.types {
				allowed = append(allowed, t.code)
			}
			switch {
			case rt == "":
				w.issue("error", "structure", "Propriété resourceType absente", "resourceType is missing")
			case slices.Contains(allowed, rt) || slices.Contains(allowed, "Resource") || slices.Contains(allowed, "DomainResource"):
				w.issue("error", "not-supported",
					fmt.Sprintf("Ressource %s non prise en charge ici : aucune définition connue", rt),
					fmt.Sprintf("Resource type %s is not supported here: no known definition", rt))
			default:
				w.issue("error", "structure",
					fmt.Sprintf("Ressource %s non permise ici ; permises : %s", rt, strings.Join(allowed, ", ")),
					fmt.Sprintf("Resource type %s is not allowed here; allowed: %s", rt, strings.Join(allowed, ", ")))
			}
			return
		}
	}
	w.resource(v, def, el.name == "contained")
}

func (w *walker) primitive(el *elem, t *etype, v *value) {
	want := primJSON(t.prim)
	if v.kind != want {
		w.issue("error", "structure",
			fmt.Sprintf("%s (%s) : un(e) %s JSON est attendu(e), pas un(e) %s", el.path, t.code, kindFR(want), kindFR(v.kind)),
			fmt.Sprintf("%s (%s): a JSON %s was expected, not a %s", el.path, t.code, want, v.kind))
		return
	}
	if fr, en := checkPrimitive(t.prim, v.str); en != "" {
		w.issue("error", "value",
			fmt.Sprintf("Valeur invalide pour %s (%s) : %s attendu(e)", el.path, t.code, fr),
			fmt.Sprintf("Invalid value for %s (%s): expected %s", el.path, t.code, en))
		return
	}
	if el.maxLength > 0 && utf8Len(v.str) > el.maxLength {
		w.issue("error", "value",
			fmt.Sprintf("%s : au plus %d caractères", el.path, el.maxLength),
			fmt.Sprintf("%s: at most %d characters", el.path, el.maxLength))
	}
	if el.fixed != nil && (el.fixed.kind != v.kind || el.fixed.str != v.str) {
		w.issue("error", "value",
			fmt.Sprintf("%s doit valoir « %s » (profil %s)", el.path, el.fixed.str, el.def.name),
			fmt.Sprintf("%s must be %q (profile %s)", el.path, el.fixed.str, el.def.name))
	}
	if el.pattern != nil && (el.pattern.kind != v.kind || el.pattern.str != v.str) {
		w.issue("error", "value",
			fmt.Sprintf("%s doit valoir « %s » (profil %s)", el.path, el.pattern.str, el.def.name),
			fmt.Sprintf("%s must be %q (profile %s)", el.path, el.pattern.str, el.def.name))
	}
	if el.binding != nil && (t.prim == pCode || t.prim == pString || t.prim == pURI) && !el.binding.exp.ContainsCode(v.str) {
		w.issue("error", "code-invalid",
			fmt.Sprintf("Code « %s » hors du jeu de valeurs %s", v.str, el.binding.url),
			fmt.Sprintf("Code %q is not in value set %s", v.str, el.binding.url))
	}
}

func utf8Len(s string) int {
	n := 0
	for range s {
		n++
	}
	return n
}

func (w *walker) coding(el *elem, v *value) {
	system, _ := v.getString("system")
	code, _ := v.getString("code")
	if el.binding != nil {
		if !el.binding.exp.Contains(system, code) {
			w.codeErrs++
			w.issue("error", "code-invalid",
				fmt.Sprintf("Code %s (système %s) hors du jeu de valeurs %s", quoteOrNone(code), quoteOrNone(system), el.binding.url),
				fmt.Sprintf("Code %s (system %s) is not in value set %s", quoteOrNone(code), quoteOrNone(system), el.binding.url))
		}
		return
	}
	w.codeInSystem(system, code)
}

func quoteOrNone(s string) string {
	if s == "" {
		return "(absent)"
	}
	return strconv.Quote(s)
}

func (w *walker) codeInSystem(system, code string) {
	if system == "" || code == "" {
		return
	}
	if set := w.v.codeSystems[system]; set != nil {
		if _, ok := set[code]; !ok {
			w.codeErrs++
			w.issue("error", "code-invalid",
				fmt.Sprintf("Le code %q n'existe pas dans le système %s", code, system),
				fmt.Sprintf("Code %q does not exist in code system %s", code, system))
		}
	}
}

func (w *walker) codeableConcept(el *elem, v *value, before int) {
	if el.binding == nil || w.codeErrs > before {
		return // a coding already reported its unknown code
	}
	if cs := v.get("coding"); cs != nil && cs.kind == kArray {
		for i := range cs.kids {
			c := &cs.kids[i].val
			system, _ := c.getString("system")
			code, _ := c.getString("code")
			if code != "" && el.binding.exp.Contains(system, code) {
				return
			}
		}
	}
	w.issue("error", "code-invalid",
		fmt.Sprintf("Aucun code de %s n'appartient au jeu de valeurs %s", el.path, el.binding.url),
		fmt.Sprintf("No code of %s is in value set %s", el.path, el.binding.url))
}

func (w *walker) identifier(v *value) {
	system, _ := v.getString("system")
	check := w.v.idChecks[system]
	if check == nil {
		return
	}
	val, ok := v.getString("value")
	if !ok {
		return
	}
	if err := check(val); err != nil {
		fr, en := err.Error(), err.Error()
		var ie *ident.Error
		if errors.As(err, &ie) {
			fr, en = ie.Kind+" : "+ie.FR, ie.Kind+": "+ie.EN
		}
		mark := w.push("value")
		w.issue("error", "value", fr, en)
		w.pop(mark)
	}
}

func (w *walker) reference(t *etype, v *value) {
	ref, ok := v.getString("reference")
	if !ok {
		return
	}
	var res *value
	if len(w.current) > 0 {
		res = w.current[len(w.current)-1]
	}
	w.refs = append(w.refs, refUse{expr: string(w.path), ref: ref, targets: t.targets, res: res})
}

func (w *walker) invariants(invs []*invariant, v *value, kids *childSet) {
	for _, inv := range invs {
		w.fpThis[0] = fpItem{v: v, kids: kids}
		if asTri(evalFP(inv.expr, w.fpThis[:])) != triFalse {
			continue
		}
		fr := inv.fr
		if fr == "" {
			fr = inv.en
		}
		w.issue("error", "invariant",
			fmt.Sprintf("Contrainte %s non respectée : %s", inv.key, fr),
			fmt.Sprintf("Constraint %s failed: %s", inv.key, inv.en))
	}
}

// ToFHIR turns issues into OperationOutcome issues.
func ToFHIR(issues []Issue) []fhir.Issue {
	out := make([]fhir.Issue, 0, len(issues))
	for _, i := range issues {
		fi := fhir.Issue{Severity: i.Severity, Code: i.Code, FR: i.FR, EN: i.EN}
		if i.Expression != "" {
			fi.Expression = []string{i.Expression}
		}
		out = append(out, fi)
	}
	return out
}

// Bundles adapts a Validator to those that want OperationOutcome issues.
type Bundles struct{ V *Validator }

// ValidateBundle validates a message Bundle.
func (b Bundles) ValidateBundle(body []byte) []fhir.Issue { return ToFHIR(b.V.ValidateBundle(body)) }
