package hl7v2

import "strings"

// unescape decodes the escape sequences of one leaf value (HL7 v2.5
// chapter 2, escape sequences in text fields). t is known to contain d.Escape.
func unescape(t string, d Delimiters, cs charset) string {
	esc := d.Escape
	var b strings.Builder
	b.Grow(len(t))
	for {
		i := strings.IndexByte(t, esc)
		if i < 0 {
			b.WriteString(t)
			break
		}
		b.WriteString(t[:i])
		rest := t[i+1:]
		j := strings.IndexByte(rest, esc)
		if j < 0 {
			// A lone escape character cannot start a sequence: keep it as data.
			b.WriteString(t[i:])
			break
		}
		if v, ok := decodeEscape(rest[:j], d, cs); ok {
			b.WriteString(v)
		} else {
			b.WriteString(t[i : i+j+2])
		}
		t = rest[j+1:]
	}
	return b.String()
}

// decodeEscape decodes the text between two escape characters. ok is false
// for sequences kept verbatim.
func decodeEscape(inner string, d Delimiters, cs charset) (string, bool) {
	if len(inner) == 1 {
		var c byte
		switch inner[0] {
		case 'F':
			c = d.Field
		case 'S':
			c = d.Component
		case 'T':
			c = d.SubComponent
		case 'R':
			c = d.Repetition
		case 'E':
			c = d.Escape
		}
		if c == 0 {
			return "", false
		}
		return string(rune(c)), true
	}
	if inner == ".br" {
		return "\n", true
	}
	if len(inner) >= 3 && inner[0] == 'X' && len(inner)%2 == 1 {
		hex := inner[1:]
		buf := make([]byte, len(hex)/2)
		for k := range buf {
			hi, ok1 := unhex(hex[2*k])
			lo, ok2 := unhex(hex[2*k+1])
			if !ok1 || !ok2 {
				return "", false
			}
			buf[k] = hi<<4 | lo
		}
		// \X..\ carries bytes of the message's character set (HL7 v2.5
		// chapter 2, hexadecimal escape); bytes that are not valid there are kept verbatim
		// rather than turned into replacement characters.
		s, ok := cs.decodeBytes(buf)
		return s, ok
	}
	return "", false
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// escaper writes leaf values with the escapes a message's delimiters need.
type escaper struct {
	d       Delimiters
	cs      charset
	special [256]bool
}

func newEscaper(d Delimiters, cs charset) *escaper {
	e := &escaper{d: d, cs: cs}
	for _, c := range []byte{d.Field, d.Component, d.Repetition, d.Escape, d.SubComponent} {
		if c != 0 {
			e.special[c] = true
		}
	}
	// Segment terminators and the MLLP block characters never appear raw in
	// an encoded value, so that the result can be split and framed safely.
	for _, c := range []byte{'\r', '\n', 0x0B, 0x1C} {
		e.special[c] = true
	}
	return e
}

func (e *escaper) needs(v string) bool {
	for i := 0; i < len(v); i++ {
		if e.special[v[i]] {
			return true
		}
	}
	return false
}

func (e *escaper) append(b []byte, v string) []byte {
	if !e.needs(v) {
		return append(b, v...)
	}
	esc := e.d.Escape
	if esc == 0 {
		// Without an escape character nothing can be escaped: the value is
		// written as it is (a parsed message never holds such a value).
		return append(b, v...)
	}
	seq := func(b []byte, s string) []byte {
		b = append(b, esc)
		b = append(b, s...)
		return append(b, esc)
	}
	start := 0
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !e.special[c] {
			continue
		}
		b = append(b, v[start:i]...)
		start = i + 1
		switch c {
		case e.d.Escape:
			// A sequence that Parse keeps verbatim goes back verbatim, so
			// formatting commands such as \H\ survive a round trip.
			if j := strings.IndexByte(v[i+1:], esc); j >= 0 {
				inner := v[i+1 : i+1+j]
				if !e.needs(inner) {
					if _, known := decodeEscape(inner, e.d, e.cs); !known {
						b = append(b, v[i:i+j+2]...)
						i += j + 1
						start = i + 1
						continue
					}
				}
			}
			b = seq(b, "E")
		case e.d.Field:
			b = seq(b, "F")
		case e.d.Component:
			b = seq(b, "S")
		case e.d.SubComponent:
			b = seq(b, "T")
		case e.d.Repetition:
			b = seq(b, "R")
		case '\n':
			b = seq(b, ".br")
		case '\r':
			b = seq(b, "X0D")
		case 0x0B:
			b = seq(b, "X0B")
		case 0x1C:
			b = seq(b, "X1C")
		}
	}
	return append(b, v[start:]...)
}
