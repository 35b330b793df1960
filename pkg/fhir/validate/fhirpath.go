package validate

import (
	"strings"
)

// Invariants (ElementDefinition.constraint) are FHIRPath. The validator
// evaluates those written in a small subset, enough for existence rules
// such as "data.exists() or url.exists()" or
// "identifier.where(system = 'x' or system = 'y').exists()":
//
//	paths of element names (choice elements by their name without [x]),
//	string literals, true, false, $this, parentheses,
//	= and != , and, or, xor, implies,
//	exists(), exists(criteria), empty(), not(), where(criteria).
//
// A constraint using anything else (hasValue(), resolve(), %resource…) is
// not evaluated; it is skipped at compile time, never half-evaluated.

type invariant struct {
	key    string
	en, fr string
	expr   *fpNode
}

type fpOp uint8

const (
	fpPath fpOp = iota + 1
	fpString
	fpBool
	fpThis
	fpAnd
	fpOr
	fpXor
	fpImplies
	fpEq
	fpNe
	fpExists
	fpEmpty
	fpNot
	fpWhere
)

type fpNode struct {
	op   fpOp
	lit  []fpItem // fpString: the literal as a collection, built once
	name string   // fpPath: the element name; fpString, fpBool: the literal
	in   *fpNode  // the input of a path step or function; nil: $this
	l, r *fpNode  // operands; r is a function's argument
}

type fpParser struct {
	toks []string
	i    int
	ok   bool
}

func parseFHIRPath(s string) (*fpNode, bool) {
	toks, ok := fpTokens(s)
	if !ok {
		return nil, false
	}
	p := &fpParser{toks: toks, ok: true}
	n := p.expr()
	if !p.ok || p.i != len(p.toks) {
		return nil, false
	}
	return n, true
}

func fpTokens(s string) ([]string, bool) {
	var toks []string
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '\'':
			j := i + 1
			for j < len(s) && s[j] != '\'' {
				if s[j] == '\\' {
					return nil, false
				}
				j++
			}
			if j >= len(s) {
				return nil, false
			}
			toks = append(toks, s[i:j+1])
			i = j + 1
		case c == '!' && i+1 < len(s) && s[i+1] == '=':
			toks = append(toks, "!=")
			i += 2
		case strings.IndexByte("().=", c) >= 0:
			toks = append(toks, s[i:i+1])
			i++
		case c == '$' || c == '_' || (c|0x20 >= 'a' && c|0x20 <= 'z'):
			j := i + 1
			for j < len(s) && (s[j] == '_' || (s[j]|0x20 >= 'a' && s[j]|0x20 <= 'z') || (s[j] >= '0' && s[j] <= '9')) {
				j++
			}
			toks = append(toks, s[i:j])
			i = j
		default:
			return nil, false
		}
	}
	return toks, true
}

func (p *fpParser) peek() string {
	if p.i < len(p.toks) {
		return p.toks[p.i]
	}
	return ""
}

func (p *fpParser) next() string {
	t := p.peek()
	if t == "" {
		p.ok = false
	}
	p.i++
	return t
}

func (p *fpParser) expect(t string) {
	if p.next() != t {
		p.ok = false
	}
}

// expr := or ('implies' or)*
func (p *fpParser) expr() *fpNode {
	n := p.or()
	for p.ok && p.peek() == "implies" {
		p.i++
		n = &fpNode{op: fpImplies, l: n, r: p.or()}
	}
	return n
}

func (p *fpParser) or() *fpNode {
	n := p.and()
	for p.ok {
		switch p.peek() {
		case "or":
			p.i++
			n = &fpNode{op: fpOr, l: n, r: p.and()}
		case "xor":
			p.i++
			n = &fpNode{op: fpXor, l: n, r: p.and()}
		default:
			return n
		}
	}
	return n
}

func (p *fpParser) and() *fpNode {
	n := p.eq()
	for p.ok && p.peek() == "and" {
		p.i++
		n = &fpNode{op: fpAnd, l: n, r: p.eq()}
	}
	return n
}

func (p *fpParser) eq() *fpNode {
	n := p.postfix()
	switch p.peek() {
	case "=":
		p.i++
		return &fpNode{op: fpEq, l: n, r: p.postfix()}
	case "!=":
		p.i++
		return &fpNode{op: fpNe, l: n, r: p.postfix()}
	}
	return n
}

func (p *fpParser) postfix() *fpNode {
	n := p.term()
	for p.ok && p.peek() == "." {
		p.i++
		n = p.step(n)
	}
	return n
}

var fpKeywords = map[string]bool{"and": true, "or": true, "xor": true, "implies": true, "true": true, "false": true}

func (p *fpParser) term() *fpNode {
	t := p.peek()
	switch {
	case t == "(":
		p.i++
		n := p.expr()
		p.expect(")")
		return n
	case strings.HasPrefix(t, "'"):
		p.i++
		lit := t[1 : len(t)-1]
		return &fpNode{op: fpString, name: lit, lit: []fpItem{{v: &value{kind: kString, str: lit}}}}
	case t == "true" || t == "false":
		p.i++
		return &fpNode{op: fpBool, name: t}
	case t == "$this":
		p.i++
		return &fpNode{op: fpThis}
	}
	return p.step(nil)
}

// step reads a name or a function call applied to in (nil: $this).
func (p *fpParser) step(in *fpNode) *fpNode {
	name := p.next()
	if !p.ok || fpKeywords[name] || name == "" || !isIdent(name) {
		p.ok = false
		return nil
	}
	if p.peek() != "(" {
		return &fpNode{op: fpPath, name: name, in: in}
	}
	p.i++
	n := &fpNode{in: in}
	switch name {
	case "exists":
		n.op = fpExists
	case "empty":
		n.op = fpEmpty
	case "not":
		n.op = fpNot
	case "where":
		n.op = fpWhere
	default:
		p.ok = false
		return nil
	}
	if p.peek() != ")" {
		if n.op != fpExists && n.op != fpWhere {
			p.ok = false
			return nil
		}
		n.r = p.expr()
	} else if n.op == fpWhere {
		p.ok = false
		return nil
	}
	p.expect(")")
	return n
}

func isIdent(s string) bool {
	c := s[0]
	return c == '_' || (c|0x20 >= 'a' && c|0x20 <= 'z')
}

// fpItem is a node of the evaluated collection: a JSON value and, for an
// object, the definition of its children.
type fpItem struct {
	v    *value
	kids *childSet
}

// The boolean results are shared: evaluation never writes into a
// collection it did not build.
var (
	fpTrueColl  = []fpItem{{v: &value{kind: kBool, str: "true"}}}
	fpFalseColl = []fpItem{{v: &value{kind: kBool, str: "false"}}}
)

func fpBoolean(b bool) []fpItem {
	if b {
		return fpTrueColl
	}
	return fpFalseColl
}

// tri is FHIRPath's three-valued logic: false, true, or empty.
type tri int8

const (
	triEmpty tri = iota
	triFalse
	triTrue
)

func asTri(c []fpItem) tri {
	switch {
	case len(c) == 0:
		return triEmpty
	case len(c) > 1:
		return triEmpty // not a singleton: an error in FHIRPath, no verdict here
	case c[0].v.kind == kBool:
		if c[0].v.str == "true" {
			return triTrue
		}
		return triFalse
	}
	return triTrue // a single non-boolean item is true
}

func fromTri(t tri) []fpItem {
	switch t {
	case triTrue:
		return fpBoolean(true)
	case triFalse:
		return fpBoolean(false)
	}
	return nil
}

func evalFP(n *fpNode, this []fpItem) []fpItem {
	switch n.op {
	case fpString:
		return n.lit
	case fpBool:
		return fpBoolean(n.name == "true")
	case fpThis:
		return this
	case fpPath:
		in := this
		if n.in != nil {
			in = evalFP(n.in, this)
		}
		var out []fpItem
		for _, it := range in {
			out = children(out, it, n.name)
		}
		return out
	case fpExists, fpEmpty, fpNot, fpWhere:
		if (n.op == fpExists || n.op == fpEmpty) && n.r == nil && n.in != nil && n.in.op == fpPath && n.in.in == nil {
			// name.exists() and name.empty(), the common case, without
			// building the collection.
			found := false
			for _, it := range this {
				if hasChild(it, n.in.name) {
					found = true
					break
				}
			}
			return fpBoolean(found == (n.op == fpExists))
		}
		in := this
		if n.in != nil {
			in = evalFP(n.in, this)
		}
		if n.op == fpWhere || (n.op == fpExists && n.r != nil) {
			var kept []fpItem
			for i := range in {
				if asTri(evalFP(n.r, in[i:i+1])) == triTrue {
					kept = append(kept, in[i])
				}
			}
			if n.op == fpWhere {
				return kept
			}
			in = kept
		}
		switch n.op {
		case fpExists:
			return fpBoolean(len(in) > 0)
		case fpEmpty:
			return fpBoolean(len(in) == 0)
		default: // not
			switch asTri(in) {
			case triTrue:
				return fpBoolean(false)
			case triFalse:
				return fpBoolean(true)
			}
			return nil
		}
	case fpEq, fpNe:
		l, r := evalFP(n.l, this), evalFP(n.r, this)
		if len(l) != 1 || len(r) != 1 {
			return nil
		}
		eq := l[0].v.kind == r[0].v.kind && l[0].v.kind != kObject && l[0].v.kind != kArray && l[0].v.str == r[0].v.str
		if l[0].v.kind == kObject || r[0].v.kind == kObject {
			eq = equalValue(l[0].v, r[0].v)
		}
		return fpBoolean(eq == (n.op == fpEq))
	}
	l := asTri(evalFP(n.l, this))
	switch n.op {
	case fpAnd:
		if l == triFalse {
			return fpBoolean(false)
		}
		r := asTri(evalFP(n.r, this))
		switch {
		case r == triFalse:
			return fpBoolean(false)
		case l == triTrue && r == triTrue:
			return fpBoolean(true)
		}
		return nil
	case fpOr:
		if l == triTrue {
			return fpBoolean(true)
		}
		r := asTri(evalFP(n.r, this))
		switch {
		case r == triTrue:
			return fpBoolean(true)
		case l == triFalse && r == triFalse:
			return fpBoolean(false)
		}
		return nil
	case fpXor:
		r := asTri(evalFP(n.r, this))
		if l == triEmpty || r == triEmpty {
			return nil
		}
		return fpBoolean(l != r)
	case fpImplies:
		if l == triFalse {
			return fpBoolean(true)
		}
		r := asTri(evalFP(n.r, this))
		switch {
		case r == triTrue:
			return fpBoolean(true)
		case l == triTrue && r == triFalse:
			return fpBoolean(false)
		}
		return nil
	}
	return nil
}

// children appends to out the values of it's child elements called name
// (every type of a choice element), items of arrays one by one.
func children(out []fpItem, it fpItem, name string) []fpItem {
	if it.v.kind != kObject || it.kids == nil {
		return out
	}
	idx, ok := it.kids.byName[name]
	if !ok {
		return out
	}
	for i := range it.v.kids {
		f := &it.v.kids[i]
		ref, ok := it.kids.byKey[f.key]
		if !ok || ref.idx != idx {
			continue
		}
		kids := ref.t.children()
		if f.val.kind == kArray {
			for j := range f.val.kids {
				if f.val.kids[j].val.kind != kNull {
					out = append(out, fpItem{v: &f.val.kids[j].val, kids: kids})
				}
			}
			continue
		}
		out = append(out, fpItem{v: &f.val, kids: kids})
	}
	return out
}

// hasChild reports whether it has a child element called name.
func hasChild(it fpItem, name string) bool {
	if it.v.kind != kObject || it.kids == nil {
		return false
	}
	idx, ok := it.kids.byName[name]
	if !ok {
		return false
	}
	for i := range it.v.kids {
		f := &it.v.kids[i]
		if ref, ok := it.kids.byKey[f.key]; ok && ref.idx == idx {
			if f.val.kind != kArray {
				return true
			}
			for j := range f.val.kids {
				if f.val.kids[j].val.kind != kNull {
					return true
				}
			}
		}
	}
	return false
}
