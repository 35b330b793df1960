package hl7v2

import (
	"strings"
	"unicode/utf8"
)

// charset is a character set of HL7 table 0211 that this package reads.
type charset uint8

const (
	csUTF8 charset = iota
	csASCII
	csLatin1 // 8859/1
	csLatin9 // 8859/15
)

func (c charset) name() string {
	switch c {
	case csASCII:
		return "ASCII"
	case csLatin1:
		return "8859/1"
	case csLatin9:
		return "8859/15"
	}
	return "UNICODE UTF-8"
}

// charsetNamed maps MSH-18 to a charset. Case and surrounding spaces are
// forgiven; "UTF-8" alone, seen from some senders, is read as "UNICODE
// UTF-8". An empty MSH-18 means UTF-8: HL7 v2.5 would default to ASCII, of
// which UTF-8 is a superset, and IHE PAM France 2.11 names UTF-8 as the set
// of new interfaces.
func charsetNamed(s string) (charset, bool) {
	s = strings.ToUpper(strings.TrimSpace(s))
	switch s {
	case "", "UNICODE UTF-8", "UTF-8":
		return csUTF8, true
	case "ASCII":
		return csASCII, true
	case "8859/1":
		return csLatin1, true
	case "8859/15":
		return csLatin9, true
	}
	return csUTF8, false
}

// latin9 lists the eight code points where ISO 8859-15 differs from 8859-1.
var latin9 = map[byte]rune{
	0xA4: '€', 0xA6: 'Š', 0xA8: 'š', 0xB4: 'Ž', 0xB8: 'ž', 0xBC: 'Œ', 0xBD: 'œ', 0xBE: 'Ÿ',
}

var latin9Rev = func() map[rune]byte {
	m := make(map[rune]byte, len(latin9))
	for b, r := range latin9 {
		m[r] = b
	}
	return m
}()

// decodeRune maps one byte of an 8859 set to its rune.
func (c charset) decodeByte(b byte) rune {
	if c == csLatin9 {
		if r, ok := latin9[b]; ok {
			return r
		}
	}
	return rune(b)
}

// decodeBytes converts bytes in charset c to UTF-8 text. For UTF-8 and ASCII
// it returns ok=false when the bytes are not valid UTF-8.
func (c charset) decodeBytes(b []byte) (string, bool) {
	switch c {
	case csLatin1, csLatin9:
		ascii := true
		for _, x := range b {
			if x >= 0x80 {
				ascii = false
				break
			}
		}
		if ascii {
			return string(b), true
		}
		var sb strings.Builder
		sb.Grow(len(b) + len(b)/8)
		for _, x := range b {
			if x < 0x80 {
				sb.WriteByte(x)
			} else {
				sb.WriteRune(c.decodeByte(x))
			}
		}
		return sb.String(), true
	}
	return string(b), utf8.Valid(b)
}

// encodeText converts UTF-8 bytes to charset c. A rune the set cannot hold
// becomes '?': HL7 v2.5 offers no way to carry it in a single-byte set short
// of \M..\ escapes to another set, which receivers rarely support.
func (c charset) encodeText(b []byte) []byte {
	if c != csLatin1 && c != csLatin9 {
		return b
	}
	ascii := true
	for _, x := range b {
		if x >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		return b
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); {
		if b[i] < 0x80 {
			out = append(out, b[i])
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		i += n
		out = append(out, c.encodeRune(r))
	}
	return out
}

func (c charset) encodeRune(r rune) byte {
	if c == csLatin9 {
		if x, ok := latin9Rev[r]; ok {
			return x
		}
		if r >= 0x80 && r <= 0xFF {
			if _, taken := latin9[byte(r)]; taken {
				return '?'
			}
		}
	}
	if r == utf8.RuneError || r > 0xFF {
		return '?'
	}
	return byte(r)
}
