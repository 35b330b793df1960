package search

import (
	"strings"
	"unicode"
)

// Normalize folds a string for FHIR string search: lower case, accents and
// other diacritics removed (é → e, œ → oe, ß → ss), runs of white space
// collapsed to one space, leading and trailing space trimmed. Extract stores
// Entry.Text in this form and ParseQuery puts search values in it, so a store
// compares them byte for byte. Callers that build a store.Value by hand must
// normalise its Text the same way.
func Normalize(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	pendingSpace := false
	for _, r := range s {
		if unicode.IsSpace(r) {
			pendingSpace = b.Len() > 0
			continue
		}
		// Combining marks come from decomposed input (e + U+0301).
		if unicode.Is(unicode.Mn, r) {
			continue
		}
		if pendingSpace {
			b.WriteByte(' ')
			pendingSpace = false
		}
		r = unicode.ToLower(r)
		if f, ok := fold[r]; ok {
			b.WriteString(f)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// fold maps lower-case Latin letters with diacritics to their base letters.
// An explicit table, rather than Unicode decomposition, keeps the package on
// the standard library; it covers Latin-1 and Latin Extended-A, which hold
// every letter of French names and of the other European languages patients'
// names come in. The typographic apostrophe is folded to ASCII because both
// are typed for names like "D’Arc".
var fold = func() map[rune]string {
	m := map[rune]string{
		'æ': "ae", 'œ': "oe", 'ß': "ss", 'þ': "th", 'ĳ': "ij", 'ŉ': "n",
		'\u2019': "'", '\u2018': "'", '\u02bc': "'",
	}
	groups := map[string]string{
		"a": "àáâãäåāăą",
		"c": "çćĉċč",
		"d": "ðďđ",
		"e": "èéêëēĕėęě",
		"g": "ĝğġģ",
		"h": "ĥħ",
		"i": "ìíîïĩīĭįı",
		"j": "ĵ",
		"k": "ķĸ",
		"l": "ĺļľŀł",
		"n": "ñńņňŋ",
		"o": "òóôõöøōŏő",
		"r": "ŕŗř",
		"s": "śŝşšſ",
		"t": "ţťŧ",
		"u": "ùúûüũūŭůűų",
		"w": "ŵ",
		"y": "ýÿŷ",
		"z": "źżž",
	}
	for base, letters := range groups {
		for _, r := range letters {
			m[r] = base
		}
	}
	return m
}()
