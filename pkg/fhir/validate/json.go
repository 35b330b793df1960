package validate

import (
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// A small JSON parser of its own, rather than encoding/json, because the
// validator needs what encoding/json drops: the order of members and their
// duplicates (FHIR forbids repeated properties), and numbers as written
// (a decimal's precision is part of its value). It also allocates far
// less: strings without escapes are slices of the input, and the nodes of
// a document come from a few large blocks.

type kind uint8

const (
	kNull kind = iota
	kBool
	kNumber
	kString
	kObject
	kArray
)

func (k kind) String() string {
	return [...]string{"null", "boolean", "number", "string", "object", "array"}[k]
}

// value is a JSON value. For objects kids are the members in order; for
// arrays kids are the items, with empty keys.
type value struct {
	kind kind
	str  string // string contents, number as written, "true" or "false"
	kids []field
}

type field struct {
	key string
	val value
}

// get returns the first member named k of an object, or nil.
func (v *value) get(k string) *value {
	if v == nil || v.kind != kObject {
		return nil
	}
	for i := range v.kids {
		if v.kids[i].key == k {
			return &v.kids[i].val
		}
	}
	return nil
}

// getString returns member k when it is a string.
func (v *value) getString(k string) (string, bool) {
	m := v.get(k)
	if m == nil || m.kind != kString {
		return "", false
	}
	return m.str, true
}

const maxDepth = 128

type syntaxError struct {
	offset int
	fr, en string
}

type parser struct {
	s     string
	i     int
	depth int
	err   *syntaxError
	stack []field
	arena []field
	buf   []byte
	// reuse lets a parser hand out its blocks again on the next document:
	// the validator's documents do not outlive their validation, so a
	// pooled parser allocates almost nothing once warm. The compiler's
	// parser keeps its values (fixed and pattern values) and must not.
	reuse  bool
	blocks [][]field
	nblock int
}

func parseJSON(p *parser, b []byte) (value, *syntaxError) {
	p.s = string(b)
	p.i, p.depth, p.err = 0, 0, nil
	p.stack = p.stack[:0]
	p.arena = nil
	p.nblock = 0
	p.skipSpace()
	v := p.value()
	if p.err == nil {
		p.skipSpace()
		if p.i < len(p.s) {
			p.fail("contenu après la fin du document", "content after the end of the document")
		}
	}
	if p.err != nil {
		return value{}, p.err
	}
	return v, nil
}

func (p *parser) fail(fr, en string) {
	if p.err == nil {
		p.err = &syntaxError{offset: p.i, fr: fr, en: en}
	}
}

func (p *parser) skipSpace() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// alloc returns n fields from the current block, so that a document's
// objects and arrays share a few allocations.
func (p *parser) alloc(n int) []field {
	if n == 0 {
		return nil
	}
	if len(p.arena)+n > cap(p.arena) {
		size := 256
		if n > size {
			size = n
		}
		switch {
		case !p.reuse:
			p.arena = make([]field, 0, size)
		case p.nblock < len(p.blocks) && cap(p.blocks[p.nblock]) >= size:
			p.arena = p.blocks[p.nblock][:0]
			p.nblock++
		default:
			p.arena = make([]field, 0, size)
			if p.nblock < len(p.blocks) {
				p.blocks[p.nblock] = p.arena
			} else {
				p.blocks = append(p.blocks, p.arena)
			}
			p.nblock++
		}
	}
	s := p.arena[len(p.arena) : len(p.arena)+n : len(p.arena)+n]
	p.arena = p.arena[:len(p.arena)+n]
	return s
}

func (p *parser) value() value {
	if p.i >= len(p.s) {
		p.fail("fin inattendue du document", "unexpected end of the document")
		return value{}
	}
	switch c := p.s[p.i]; {
	case c == '{':
		return p.object()
	case c == '[':
		return p.array()
	case c == '"':
		s, _ := p.string()
		return value{kind: kString, str: s}
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case strings.HasPrefix(p.s[p.i:], "true"):
		p.i += 4
		return value{kind: kBool, str: "true"}
	case strings.HasPrefix(p.s[p.i:], "false"):
		p.i += 5
		return value{kind: kBool, str: "false"}
	case strings.HasPrefix(p.s[p.i:], "null"):
		p.i += 4
		return value{kind: kNull}
	}
	p.fail("valeur JSON attendue", "a JSON value was expected")
	return value{}
}

func (p *parser) enter() bool {
	p.depth++
	if p.depth > maxDepth {
		p.fail("imbrication trop profonde", "nesting too deep")
		return false
	}
	return true
}

func (p *parser) object() value {
	if !p.enter() {
		return value{}
	}
	defer func() { p.depth-- }()
	p.i++ // {
	start := len(p.stack)
	p.skipSpace()
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return value{kind: kObject}
	}
	for p.err == nil {
		p.skipSpace()
		if p.i >= len(p.s) || p.s[p.i] != '"' {
			p.fail("nom de propriété entre guillemets attendu", "a quoted property name was expected")
			break
		}
		k, _ := p.string()
		p.skipSpace()
		if p.err != nil {
			break
		}
		if p.i >= len(p.s) || p.s[p.i] != ':' {
			p.fail("« : » attendu après le nom de propriété", "':' expected after a property name")
			break
		}
		p.i++
		p.skipSpace()
		v := p.value()
		p.stack = append(p.stack, field{key: k, val: v})
		p.skipSpace()
		if p.i < len(p.s) && p.s[p.i] == ',' {
			p.i++
			continue
		}
		if p.i < len(p.s) && p.s[p.i] == '}' {
			p.i++
			break
		}
		p.fail("« , » ou « } » attendu", "',' or '}' expected")
	}
	kids := p.alloc(len(p.stack) - start)
	copy(kids, p.stack[start:])
	p.stack = p.stack[:start]
	return value{kind: kObject, kids: kids}
}

func (p *parser) array() value {
	if !p.enter() {
		return value{}
	}
	defer func() { p.depth-- }()
	p.i++ // [
	start := len(p.stack)
	p.skipSpace()
	if p.i < len(p.s) && p.s[p.i] == ']' {
		p.i++
		return value{kind: kArray}
	}
	for p.err == nil {
		p.skipSpace()
		v := p.value()
		p.stack = append(p.stack, field{val: v})
		p.skipSpace()
		if p.i < len(p.s) && p.s[p.i] == ',' {
			p.i++
			continue
		}
		if p.i < len(p.s) && p.s[p.i] == ']' {
			p.i++
			break
		}
		p.fail("« , » ou « ] » attendu", "',' or ']' expected")
	}
	kids := p.alloc(len(p.stack) - start)
	copy(kids, p.stack[start:])
	p.stack = p.stack[:start]
	return value{kind: kArray, kids: kids}
}

func (p *parser) number() value {
	start := p.i
	if p.s[p.i] == '-' {
		p.i++
	}
	digits := func() int {
		n := 0
		for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	if p.i < len(p.s) && p.s[p.i] == '0' {
		p.i++
	} else if digits() == 0 {
		p.fail("nombre mal formé", "malformed number")
		return value{}
	}
	if p.i < len(p.s) && p.s[p.i] == '.' {
		p.i++
		if digits() == 0 {
			p.fail("nombre mal formé", "malformed number")
			return value{}
		}
	}
	if p.i < len(p.s) && (p.s[p.i] == 'e' || p.s[p.i] == 'E') {
		p.i++
		if p.i < len(p.s) && (p.s[p.i] == '+' || p.s[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			p.fail("nombre mal formé", "malformed number")
			return value{}
		}
	}
	return value{kind: kNumber, str: p.s[start:p.i]}
}

// string reads a JSON string at p.i (on its opening quote).
func (p *parser) string() (string, bool) {
	p.i++
	start := p.i
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			s := p.s[start:p.i]
			p.i++
			return s, true
		case c == '\\':
			return p.escaped(start)
		case c < 0x20:
			p.fail("caractère de contrôle dans une chaîne", "control character in a string")
			return "", false
		case c < utf8.RuneSelf:
			p.i++
		default:
			r, size := utf8.DecodeRuneInString(p.s[p.i:])
			if r == utf8.RuneError && size == 1 {
				p.fail("UTF-8 invalide", "invalid UTF-8")
				return "", false
			}
			p.i += size
		}
	}
	p.fail("chaîne non terminée", "unterminated string")
	return "", false
}

func (p *parser) escaped(start int) (string, bool) {
	b := append(p.buf[:0], p.s[start:p.i]...)
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			p.buf = b
			return string(b), true
		case c == '\\':
			if p.i+1 >= len(p.s) {
				p.fail("chaîne non terminée", "unterminated string")
				return "", false
			}
			e := p.s[p.i+1]
			p.i += 2
			switch e {
			case '"', '\\', '/':
				b = append(b, e)
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				r, ok := p.hex4()
				if !ok {
					return "", false
				}
				if utf16.IsSurrogate(r) {
					// A high surrogate must be followed by a low one.
					if r < 0xDC00 && strings.HasPrefix(p.s[p.i:], `\u`) {
						p.i += 2
						r2, ok := p.hex4()
						if !ok {
							return "", false
						}
						if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
							b = utf8.AppendRune(b, d)
							continue
						}
					}
					p.fail("demi-caractère UTF-16 isolé", "unpaired UTF-16 surrogate")
					return "", false
				}
				b = utf8.AppendRune(b, r)
			default:
				p.fail("séquence d'échappement invalide", "invalid escape sequence")
				return "", false
			}
		case c < 0x20:
			p.fail("caractère de contrôle dans une chaîne", "control character in a string")
			return "", false
		case c < utf8.RuneSelf:
			b = append(b, c)
			p.i++
		default:
			r, size := utf8.DecodeRuneInString(p.s[p.i:])
			if r == utf8.RuneError && size == 1 {
				p.fail("UTF-8 invalide", "invalid UTF-8")
				return "", false
			}
			b = append(b, p.s[p.i:p.i+size]...)
			p.i += size
		}
	}
	p.fail("chaîne non terminée", "unterminated string")
	return "", false
}

func (p *parser) hex4() (rune, bool) {
	if p.i+4 > len(p.s) {
		p.fail("échappement \\u incomplet", "incomplete \\u escape")
		return 0, false
	}
	var r rune
	for _, c := range []byte(p.s[p.i : p.i+4]) {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			p.fail("échappement \\u invalide", "invalid \\u escape")
			return 0, false
		}
	}
	p.i += 4
	return r, true
}
