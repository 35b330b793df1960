package validate

import (
	"encoding/xml"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Primitive formats, after FHIR R4's definitions of each type (their
// regular expressions and prose). Written as code rather than regular
// expressions: they run on every value of every message, and some rules
// (a real calendar day, an int32 range) are not regular anyway.

// primJSON is the JSON kind each primitive type takes.
func primJSON(p primKind) kind {
	switch p {
	case pBoolean:
		return kBool
	case pInteger, pPositiveInt, pUnsignedInt, pDecimal:
		return kNumber
	}
	return kString
}

// checkPrimitive returns "" when s is a valid p, else what was expected,
// in French and English.
func checkPrimitive(p primKind, s string) (fr, en string) {
	switch p {
	case pBoolean, pDecimal:
		return "", "" // the JSON grammar already holds them
	case pInteger, pPositiveInt, pUnsignedInt:
		return checkInteger(p, s)
	case pString, pMarkdown:
		if s == "" {
			return "une chaîne non vide", "a non-empty string"
		}
		for i := 0; i < len(s); i++ {
			if c := s[i]; c < 0x20 && c != '\t' && c != '\r' && c != '\n' {
				return "une chaîne sans caractère de contrôle", "a string without control characters"
			}
		}
		if len(s) > 1<<20 {
			return "une chaîne d'au plus 1 Mo", "a string of at most 1 MB"
		}
	case pCode:
		if s == "" || isSpace(s[0]) || isSpace(s[len(s)-1]) || strings.Contains(s, "  ") || strings.ContainsAny(s, "\t\r\n") {
			return "un code sans espace au début, à la fin ni double", "a code without leading, trailing or double spaces"
		}
	case pID:
		if len(s) == 0 || len(s) > 64 {
			return "un id de 1 à 64 caractères", "an id of 1 to 64 characters"
		}
		for i := 0; i < len(s); i++ {
			c := s[i]
			if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
				return "un id fait de lettres, chiffres, « - » et « . »", "an id made of letters, digits, '-' and '.'"
			}
		}
	case pURI, pURL, pCanonical:
		if s == "" || strings.ContainsAny(s, " \t\r\n") {
			return "une URI non vide, sans espace", "a non-empty URI without spaces"
		}
	case pOID:
		if !validOID(s) {
			return "un OID de la forme urn:oid:1.2.3", "an OID of the form urn:oid:1.2.3"
		}
	case pUUID:
		if !validUUID(s) {
			return "un UUID de la forme urn:uuid: suivi de 36 caractères hexadécimaux minuscules", "a UUID of the form urn:uuid: then 36 lower-case hexadecimal characters"
		}
	case pDate:
		if !validDate(s) {
			return "une date AAAA, AAAA-MM ou AAAA-MM-JJ qui existe", "a date YYYY, YYYY-MM or YYYY-MM-DD that exists"
		}
	case pDateTime:
		if !validDateTime(s, false) {
			return "une date AAAA[-MM[-JJ]] ou une date et heure AAAA-MM-JJThh:mm:ss avec fuseau (Z ou ±hh:mm)", "a date YYYY[-MM[-DD]] or a date and time YYYY-MM-DDThh:mm:ss with a zone (Z or ±hh:mm)"
		}
	case pInstant:
		if !validDateTime(s, true) {
			return "un instant AAAA-MM-JJThh:mm:ss avec fuseau (Z ou ±hh:mm)", "an instant YYYY-MM-DDThh:mm:ss with a zone (Z or ±hh:mm)"
		}
	case pTime:
		if !validTime(s) {
			return "une heure hh:mm:ss", "a time hh:mm:ss"
		}
	case pBase64:
		if !validBase64(s) {
			return "du base64", "base64"
		}
	case pXHTML:
		if fr, en := checkXHTML(s); en != "" {
			return fr, en
		}
	}
	return "", ""
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func checkInteger(p primKind, s string) (fr, en string) {
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		return "un entier (32 bits, sans partie décimale ni exposant)", "an integer (32-bit, without fraction or exponent)"
	}
	switch {
	case p == pPositiveInt && n < 1:
		return "un entier strictement positif", "a positive integer"
	case p == pUnsignedInt && n < 0:
		return "un entier positif ou nul", "a non-negative integer"
	}
	return "", ""
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func num(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		n = n*10 + int(s[i]-'0')
	}
	return n
}

func validOID(s string) bool {
	rest, ok := strings.CutPrefix(s, "urn:oid:")
	if !ok || rest == "" || rest[0] < '0' || rest[0] > '2' {
		return false
	}
	parts := strings.Split(rest, ".")
	if len(parts) < 2 {
		return false
	}
	for _, p := range parts {
		if !digits(p) || (len(p) > 1 && p[0] == '0') {
			return false
		}
	}
	return true
}

func validUUID(s string) bool {
	rest, ok := strings.CutPrefix(s, "urn:uuid:")
	if !ok || len(rest) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := rest[i]
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return false
			}
			continue
		}
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func daysIn(year, month int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// validDate accepts YYYY, YYYY-MM and YYYY-MM-DD, year 0001 to 9999, with a
// day that exists in its month.
func validDate(s string) bool {
	if len(s) < 4 || !digits(s[:4]) || num(s[:4]) == 0 {
		return false
	}
	if len(s) == 4 {
		return true
	}
	if len(s) < 7 || s[4] != '-' || !digits(s[5:7]) {
		return false
	}
	m := num(s[5:7])
	if m < 1 || m > 12 {
		return false
	}
	if len(s) == 7 {
		return true
	}
	if len(s) != 10 || s[7] != '-' || !digits(s[8:10]) {
		return false
	}
	d := num(s[8:10])
	return d >= 1 && d <= daysIn(num(s[:4]), m)
}

// validDateTime accepts a date (unless full is set) or a date and a time to
// the second, with optional fraction and a required zone.
func validDateTime(s string, full bool) bool {
	date, rest, hasTime := strings.Cut(s, "T")
	if !hasTime {
		return !full && validDate(s)
	}
	if len(date) != 10 || !validDate(date) || len(rest) < 8 {
		return false
	}
	if !validTime(rest[:8]) {
		return false
	}
	rest = rest[8:]
	if strings.HasPrefix(rest, ".") {
		i := 1
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 1 {
			return false
		}
		rest = rest[i:]
	}
	return validZone(rest)
}

func validTime(s string) bool {
	if len(s) < 8 || s[2] != ':' || s[5] != ':' || !digits(s[:2]) || !digits(s[3:5]) || !digits(s[6:8]) {
		return false
	}
	if num(s[:2]) > 23 || num(s[3:5]) > 59 || num(s[6:8]) > 60 {
		return false
	}
	if len(s) == 8 {
		return true
	}
	return s[8] == '.' && digits(s[9:])
}

func validZone(z string) bool {
	if z == "Z" {
		return true
	}
	if len(z) != 6 || (z[0] != '+' && z[0] != '-') || z[3] != ':' || !digits(z[1:3]) || !digits(z[4:6]) {
		return false
	}
	h, m := num(z[1:3]), num(z[4:6])
	return (h < 14 && m < 60) || (h == 14 && m == 0)
}

func validBase64(s string) bool {
	n, pad := 0, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case isSpace(c):
			continue
		case c == '=':
			pad++
		case c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/':
			if pad > 0 {
				return false
			}
		default:
			return false
		}
		n++
	}
	return n > 0 && n%4 == 0 && pad <= 2
}

// Narrative rules (FHIR R4 narrative.html): well-formed XHTML whose root is
// a div in the XHTML namespace, without active content.
var forbiddenXHTML = map[string]bool{
	"script": true, "object": true, "applet": true, "embed": true, "iframe": true, "form": true,
	"frame": true, "frameset": true, "base": true, "head": true, "link": true, "meta": true,
	"style": true, "title": true, "input": true, "button": true,
}

func checkXHTML(s string) (fr, en string) {
	const (
		wantFR = "un div XHTML bien formé (xmlns=\"http://www.w3.org/1999/xhtml\") sans script"
		wantEN = "a well-formed XHTML div (xmlns=\"http://www.w3.org/1999/xhtml\") without scripts"
	)
	if !utf8.ValidString(s) {
		return wantFR, wantEN
	}
	d := xml.NewDecoder(strings.NewReader(s))
	d.Strict = true
	depth, roots := 0, 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return wantFR, wantEN
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				roots++
			}
			if depth == 0 && (roots > 1 || t.Name.Local != "div" || t.Name.Space != "http://www.w3.org/1999/xhtml") {
				return wantFR, wantEN
			}
			if forbiddenXHTML[strings.ToLower(t.Name.Local)] {
				return wantFR, wantEN
			}
			for _, a := range t.Attr {
				if strings.HasPrefix(strings.ToLower(a.Name.Local), "on") {
					return wantFR, wantEN
				}
			}
			depth++
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth == 0 && strings.TrimSpace(string(t)) != "" {
				return wantFR, wantEN
			}
		}
	}
	if depth != 0 || roots != 1 {
		return wantFR, wantEN
	}
	return "", ""
}
