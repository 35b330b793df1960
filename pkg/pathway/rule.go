package pathway

import (
	"fmt"
	"strconv"
	"strings"
)

// RuleLanguage is the Expression.language of a template condition.
const RuleLanguage = "text/x-passerelle-rule"

// Rule is a parsed condition expression. The language is deliberately
// small; its grammar is:
//
//	expr    = and { "or" and }
//	and     = unary { "and" unary }
//	unary   = "not" unary | "(" expr ")" | compare
//	compare = operand ( op operand | "in" "(" literal { "," literal } ")" )
//	op      = "=" | "!=" | "<" | "<=" | ">" | ">="
//	operand = "%" name | literal
//	literal = 'text' | number | true | false
//
// A %name is a variable the template declares (extension pathway-variable):
// the value of the first Observation with that code in the episode. A rule
// whose variables are not all known yet is undecided, not false: the
// engine waits for the observation.
type Rule struct {
	src  string
	root *node
}

type node struct {
	op          string // or, and, not, cmp, in
	left, right *node
	cmp         string
	a, b        operand
	list        []Value
}

type operand struct {
	variable string
	lit      Value
}

// Value is a variable's or a literal's value: text, or a number.
type Value struct {
	Text  string
	Num   float64
	IsNum bool
}

// Text returns a text value.
func Text(s string) Value { return Value{Text: s} }

// Number returns a numeric value.
func Number(f float64) Value {
	return Value{Num: f, IsNum: true, Text: strconv.FormatFloat(f, 'f', -1, 64)}
}

// ParseRule parses a condition expression.
func ParseRule(src string) (*Rule, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &ruleParser{toks: toks}
	n, err := p.expr()
	if err != nil {
		return nil, err
	}
	if p.pos < len(p.toks) {
		return nil, fmt.Errorf("unexpected %q", p.toks[p.pos])
	}
	return &Rule{src: src, root: n}, nil
}

// String returns the source text.
func (r *Rule) String() string { return r.src }

// Variables lists the variables the rule names.
func (r *Rule) Variables() []string {
	var out []string
	var walk func(n *node)
	walk = func(n *node) {
		if n == nil {
			return
		}
		for _, o := range []operand{n.a, n.b} {
			if o.variable != "" {
				out = append(out, o.variable)
			}
		}
		walk(n.left)
		walk(n.right)
	}
	walk(r.root)
	return out
}

// Eval evaluates the rule. known is false when a variable it needs has no
// value yet (Kleene logic: "true or unknown" is true).
func (r *Rule) Eval(vars map[string]Value) (result, known bool) {
	t := eval(r.root, vars)
	return t == triTrue, t != triUnknown
}

type tri int

const (
	triUnknown tri = iota
	triFalse
	triTrue
)

func boolTri(b bool) tri {
	if b {
		return triTrue
	}
	return triFalse
}

func eval(n *node, vars map[string]Value) tri {
	switch n.op {
	case "or":
		a, b := eval(n.left, vars), eval(n.right, vars)
		switch {
		case a == triTrue || b == triTrue:
			return triTrue
		case a == triUnknown || b == triUnknown:
			return triUnknown
		}
		return triFalse
	case "and":
		a, b := eval(n.left, vars), eval(n.right, vars)
		switch {
		case a == triFalse || b == triFalse:
			return triFalse
		case a == triUnknown || b == triUnknown:
			return triUnknown
		}
		return triTrue
	case "not":
		switch eval(n.left, vars) {
		case triTrue:
			return triFalse
		case triFalse:
			return triTrue
		}
		return triUnknown
	}
	a, ok := resolve(n.a, vars)
	if !ok {
		return triUnknown
	}
	if n.op == "in" {
		for _, v := range n.list {
			if equal(a, v) {
				return triTrue
			}
		}
		return triFalse
	}
	b, ok := resolve(n.b, vars)
	if !ok {
		return triUnknown
	}
	switch n.cmp {
	case "=":
		return boolTri(equal(a, b))
	case "!=":
		return boolTri(!equal(a, b))
	}
	if !a.IsNum || !b.IsNum {
		return triFalse
	}
	switch n.cmp {
	case "<":
		return boolTri(a.Num < b.Num)
	case "<=":
		return boolTri(a.Num <= b.Num)
	case ">":
		return boolTri(a.Num > b.Num)
	}
	return boolTri(a.Num >= b.Num)
}

func resolve(o operand, vars map[string]Value) (Value, bool) {
	if o.variable == "" {
		return o.lit, true
	}
	v, ok := vars[o.variable]
	return v, ok
}

func equal(a, b Value) bool {
	if a.IsNum && b.IsNum {
		return a.Num == b.Num
	}
	return a.Text == b.Text
}

func lex(s string) ([]string, error) {
	var out []string
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(' || c == ')' || c == ',' || c == '=':
			out = append(out, string(c))
			i++
		case c == '!' || c == '<' || c == '>':
			if i+1 < len(s) && s[i+1] == '=' {
				out = append(out, s[i:i+2])
				i += 2
			} else if c == '!' {
				return nil, fmt.Errorf("'!' must be followed by '='")
			} else {
				out = append(out, string(c))
				i++
			}
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated text literal")
			}
			out = append(out, s[i:i+j+2])
			i += j + 2
		case c == '%' || c == '-' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_':
			j := i + 1
			for j < len(s) && (s[j] == '-' || s[j] == '.' || s[j] == '_' || s[j] >= '0' && s[j] <= '9' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z') {
				j++
			}
			out = append(out, s[i:j])
			i = j
		default:
			return nil, fmt.Errorf("unexpected character %q", c)
		}
	}
	return out, nil
}

type ruleParser struct {
	toks []string
	pos  int
}

func (p *ruleParser) peek() string {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return ""
}

func (p *ruleParser) next() string {
	t := p.peek()
	p.pos++
	return t
}

func (p *ruleParser) expr() (*node, error) {
	l, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.peek() == "or" {
		p.next()
		r, err := p.and()
		if err != nil {
			return nil, err
		}
		l = &node{op: "or", left: l, right: r}
	}
	return l, nil
}

func (p *ruleParser) and() (*node, error) {
	l, err := p.unary()
	if err != nil {
		return nil, err
	}
	for p.peek() == "and" {
		p.next()
		r, err := p.unary()
		if err != nil {
			return nil, err
		}
		l = &node{op: "and", left: l, right: r}
	}
	return l, nil
}

func (p *ruleParser) unary() (*node, error) {
	switch p.peek() {
	case "not":
		p.next()
		n, err := p.unary()
		if err != nil {
			return nil, err
		}
		return &node{op: "not", left: n}, nil
	case "(":
		p.next()
		n, err := p.expr()
		if err != nil {
			return nil, err
		}
		if p.next() != ")" {
			return nil, fmt.Errorf("')' expected")
		}
		return n, nil
	}
	a, err := p.operand()
	if err != nil {
		return nil, err
	}
	switch op := p.next(); op {
	case "in":
		if p.next() != "(" {
			return nil, fmt.Errorf("'(' expected after in")
		}
		n := &node{op: "in", a: a}
		for {
			o, err := p.operand()
			if err != nil {
				return nil, err
			}
			if o.variable != "" {
				return nil, fmt.Errorf("the list after in holds literals only")
			}
			n.list = append(n.list, o.lit)
			t := p.next()
			if t == ")" {
				return n, nil
			}
			if t != "," {
				return nil, fmt.Errorf("',' or ')' expected")
			}
		}
	case "=", "!=", "<", "<=", ">", ">=":
		b, err := p.operand()
		if err != nil {
			return nil, err
		}
		return &node{op: "cmp", cmp: op, a: a, b: b}, nil
	case "":
		return nil, fmt.Errorf("a comparison is expected after %q", p.toks[p.pos-2])
	default:
		return nil, fmt.Errorf("unexpected %q: a comparison operator or in is expected", op)
	}
}

func (p *ruleParser) operand() (operand, error) {
	t := p.next()
	switch {
	case t == "":
		return operand{}, fmt.Errorf("unexpected end of expression")
	case strings.HasPrefix(t, "%"):
		if len(t) < 2 {
			return operand{}, fmt.Errorf("a variable name is expected after %%")
		}
		return operand{variable: t[1:]}, nil
	case strings.HasPrefix(t, "'"):
		return operand{lit: Text(t[1 : len(t)-1])}, nil
	case t == "true" || t == "false":
		return operand{lit: Text(t)}, nil
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil {
		return operand{}, fmt.Errorf("unexpected %q: a %%variable, a 'text', a number, true or false is expected", t)
	}
	return operand{lit: Number(f)}, nil
}
