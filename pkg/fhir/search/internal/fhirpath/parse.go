package fhirpath

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

type tokKind int

const (
	tEOF tokKind = iota
	tIdent
	tString
	tDot
	tLParen
	tRParen
	tPipe
	tEq
)

type token struct {
	kind tokKind
	text string // identifier name or decoded string literal
	pos  int
}

func (t token) String() string {
	switch t.kind {
	case tEOF:
		return "end of expression"
	case tIdent:
		return fmt.Sprintf("%q", t.text)
	case tString:
		return "string literal"
	case tDot:
		return `"."`
	case tLParen:
		return `"("`
	case tRParen:
		return `")"`
	case tPipe:
		return `"|"`
	case tEq:
		return `"="`
	}
	return "?"
}

func lex(src string) ([]token, error) {
	if !utf8.ValidString(src) {
		return nil, errors.New("expression is not valid UTF-8")
	}
	var toks []token
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			i++
		case c == '.':
			toks = append(toks, token{kind: tDot, pos: i})
			i++
		case c == '(':
			toks = append(toks, token{kind: tLParen, pos: i})
			i++
		case c == ')':
			toks = append(toks, token{kind: tRParen, pos: i})
			i++
		case c == '|':
			toks = append(toks, token{kind: tPipe, pos: i})
			i++
		case c == '=':
			toks = append(toks, token{kind: tEq, pos: i})
			i++
		case c == '\'':
			s, n, err := lexString(src[i:])
			if err != nil {
				return nil, fmt.Errorf("offset %d: %w", i, err)
			}
			toks = append(toks, token{kind: tString, text: s, pos: i})
			i += n
		case isIdentStart(c):
			j := i + 1
			for j < len(src) && isIdentPart(src[j]) {
				j++
			}
			toks = append(toks, token{kind: tIdent, text: src[i:j], pos: i})
			i = j
		default:
			r, _ := utf8.DecodeRuneInString(src[i:])
			return nil, fmt.Errorf("unsupported character %q at offset %d", r, i)
		}
	}
	return append(toks, token{kind: tEOF, pos: len(src)}), nil
}

func isIdentStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
}

func isIdentPart(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }

// lexString decodes the string literal at the start of s and returns it with
// the number of bytes it spans.
func lexString(s string) (string, int, error) {
	var b strings.Builder
	for i := 1; i < len(s); {
		c := s[i]
		switch c {
		case '\'':
			return b.String(), i + 1, nil
		case '\\':
			if i+1 >= len(s) {
				return "", 0, errors.New("unterminated string literal")
			}
			switch e := s[i+1]; e {
			case '\'', '"', '\\', '/', '`':
				b.WriteByte(e)
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'f':
				b.WriteByte('\f')
			default:
				return "", 0, fmt.Errorf("unsupported escape \\%c", e)
			}
			i += 2
		default:
			b.WriteByte(c)
			i++
		}
	}
	return "", 0, errors.New("unterminated string literal")
}

type parser struct {
	toks []token
	i    int
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

func (p *parser) expect(k tokKind, what string) (token, error) {
	t := p.next()
	if t.kind != k {
		return t, fmt.Errorf("expected %s, found %s at offset %d", what, t, t.pos)
	}
	return t, nil
}

// union := cast ('|' cast)*
func (p *parser) union(depth int) (node, error) {
	var parts []node
	for {
		n, err := p.cast(depth)
		if err != nil {
			return nil, err
		}
		parts = append(parts, n)
		if p.peek().kind != tPipe {
			break
		}
		p.next()
	}
	if len(parts) == 1 {
		return parts[0], nil
	}
	return &union{parts: parts}, nil
}

// cast := postfix ('as' TypeName)*
//
// In FHIRPath "as" binds tighter than "|" and looser than ".", so
// "A.b as T | C.d" is "(A.b as T) | C.d".
func (p *parser) cast(depth int) (node, error) {
	t, err := p.postfix(depth)
	if err != nil {
		return nil, err
	}
	for p.peek().kind == tIdent && p.peek().text == "as" {
		p.next()
		typ, err := p.typeName()
		if err != nil {
			return nil, err
		}
		t.casts = append(t.casts, typ)
	}
	return t, nil
}

// postfix := primary ('.' step)*
// primary := TypeName | '(' union ')'
func (p *parser) postfix(depth int) (*term, error) {
	t := &term{}
	switch tok := p.next(); tok.kind {
	case tLParen:
		if depth >= maxDepth {
			return nil, fmt.Errorf("parentheses nested deeper than %d", maxDepth)
		}
		inner, err := p.union(depth + 1)
		if err != nil {
			return nil, err
		}
		if _, err := p.expect(tRParen, `")"`); err != nil {
			return nil, err
		}
		t.inner = inner
	case tIdent:
		if !IsTypeName(tok.text) {
			return nil, fmt.Errorf("path must start with a type name, found %q at offset %d", tok.text, tok.pos)
		}
		t.rootType = tok.text
	default:
		return nil, fmt.Errorf("unexpected %s at offset %d", tok, tok.pos)
	}
	for p.peek().kind == tDot {
		p.next()
		s, err := p.step()
		if err != nil {
			return nil, err
		}
		t.steps = append(t.steps, s)
	}
	return t, nil
}

// step := name | 'where' '(' filter ')' | ('as'|'ofType') '(' TypeName ')'
func (p *parser) step() (step, error) {
	name, err := p.expect(tIdent, "element or function name")
	if err != nil {
		return nil, err
	}
	if p.peek().kind != tLParen {
		return field(name.text), nil
	}
	p.next()
	var s step
	switch name.text {
	case "as", "ofType":
		typ, err := p.typeName()
		if err != nil {
			return nil, err
		}
		s = cast{fn: name.text, typ: typ}
	case "where":
		s, err = p.filter()
		if err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unsupported function %s() at offset %d", name.text, name.pos)
	}
	if _, err := p.expect(tRParen, `")"`); err != nil {
		return nil, err
	}
	return s, nil
}

// filter := 'resolve' '(' ')' 'is' TypeName | name ('.' name)* '=' String
func (p *parser) filter() (step, error) {
	first, err := p.expect(tIdent, "filter")
	if err != nil {
		return nil, err
	}
	if first.text == "resolve" && p.peek().kind == tLParen {
		p.next()
		if _, err := p.expect(tRParen, `")"`); err != nil {
			return nil, err
		}
		if is := p.next(); is.kind != tIdent || is.text != "is" {
			return nil, fmt.Errorf("only resolve() is <Type> is supported, found %s at offset %d", is, is.pos)
		}
		typ, err := p.typeName()
		if err != nil {
			return nil, err
		}
		if !IsTypeName(typ) {
			return nil, fmt.Errorf("resolve() is %s: not a resource type", typ)
		}
		return whereResolveIs(typ), nil
	}
	path := []string{first.text}
	for p.peek().kind == tDot {
		p.next()
		f, err := p.expect(tIdent, "element name")
		if err != nil {
			return nil, err
		}
		path = append(path, f.text)
	}
	if p.peek().kind == tLParen {
		return nil, fmt.Errorf("unsupported function in where() at offset %d", p.peek().pos)
	}
	if _, err := p.expect(tEq, `"="`); err != nil {
		return nil, err
	}
	lit, err := p.expect(tString, "string literal")
	if err != nil {
		return nil, err
	}
	return whereEq{path: path, lit: lit.text}, nil
}

func (p *parser) typeName() (string, error) {
	t, err := p.expect(tIdent, "type name")
	if err != nil {
		return "", err
	}
	if t.text == "as" || t.text == "is" {
		return "", fmt.Errorf("expected type name, found %q at offset %d", t.text, t.pos)
	}
	return t.text, nil
}
