package outcome

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/passerelle-sante/passerelle/pkg/fhir/search"
)

// The INSEE register of deaths ("fichier des personnes décédées") is
// published monthly as fixed-width text, one death per line. Widths are in
// characters:
//
//	nom*prénoms/         80
//	sexe (1 M, 2 F)       1
//	date de naissance     8  AAAAMMJJ, 00 for an unknown month or day
//	lieu de naissance     5  code commune INSEE (99CCC abroad)
//	commune de naissance 30
//	pays de naissance    30
//	date de décès         8  AAAAMMJJ
//	lieu de décès         5
//	numéro d'acte         9
//
// 176 characters of data; published lines are padded to 198. Trailing
// spaces trimmed by a tool are tolerated; a line that stops before the end
// of the death date is an error.
var inseeWidths = []int{80, 1, 8, 5, 30, 30, 8, 5, 9}

// INSEELineMin is the shortest acceptable line: up to the death date.
const INSEELineMin = 80 + 1 + 8 + 5 + 30 + 30 + 8

// DeathRecord is one line of the register.
type DeathRecord struct {
	Line   int
	Family string
	Given  []string
	// Sex is M or F.
	Sex string
	// BirthDate is AAAAMMJJ as written; Birth its day when complete.
	BirthDate    string
	Birth        Day
	BirthPlace   string
	BirthCommune string
	BirthCountry string
	DeathDate    string
	Death        Day
	DeathPlace   string
	Act          string
}

// ParseDeathLine reads one line of the register.
func ParseDeathLine(line string) (DeathRecord, error) {
	var r DeathRecord
	line = strings.TrimRight(line, "\r\n")
	if !utf8.ValidString(line) {
		// Older files are Latin-1: each byte is one character.
		rs := make([]rune, len(line))
		for i := 0; i < len(line); i++ {
			rs[i] = rune(line[i])
		}
		line = string(rs)
	}
	rs := []rune(line)
	if len(rs) < INSEELineMin {
		return r, fmt.Errorf("ligne de %d caractères, au moins %d attendus (jusqu'à la date de décès) / line of %d characters, at least %d expected (up to the death date)",
			len(rs), INSEELineMin, len(rs), INSEELineMin)
	}
	var f []string
	pos := 0
	for _, w := range inseeWidths {
		start, end := min(pos, len(rs)), min(pos+w, len(rs))
		f = append(f, strings.TrimSpace(string(rs[start:end])))
		pos += w
	}
	name := f[0]
	family, given, ok := strings.Cut(name, "*")
	if !ok || strings.TrimSpace(family) == "" {
		return r, fmt.Errorf("nom sans '*' séparant nom et prénoms (colonnes 1-80) / name without '*' between surname and given names (columns 1-80)")
	}
	given, _, _ = strings.Cut(given, "/")
	r.Family = strings.TrimSpace(family)
	r.Given = strings.Fields(given)
	switch f[1] {
	case "1":
		r.Sex = "M"
	case "2":
		r.Sex = "F"
	default:
		return r, fmt.Errorf("sexe %q en colonne 81 : 1 ou 2 attendu / sex %q in column 81: 1 or 2 expected", f[1], f[1])
	}
	var err error
	r.BirthDate = f[2]
	if r.Birth, err = inseeDate(f[2], true); err != nil {
		return r, fmt.Errorf("date de naissance (colonnes 82-89) : %v / birth date (columns 82-89): %v", err, err)
	}
	r.BirthPlace, r.BirthCommune, r.BirthCountry = f[3], f[4], f[5]
	r.DeathDate = f[6]
	if r.Death, err = inseeDate(f[6], false); err != nil {
		return r, fmt.Errorf("date de décès (colonnes 155-162) : %v / death date (columns 155-162): %v", err, err)
	}
	r.DeathPlace, r.Act = f[7], f[8]
	return r, nil
}

var digits8 = regexp.MustCompile(`^[0-9]{8}$`)

// inseeDate reads AAAAMMJJ. With partial, a month or day of 00 (unknown)
// is accepted and yields NoDay; otherwise the date must be complete.
func inseeDate(s string, partial bool) (Day, error) {
	if !digits8.MatchString(s) {
		return NoDay, fmt.Errorf("%q n'est pas AAAAMMJJ / %q is not YYYYMMDD", s, s)
	}
	y, _ := strconv.Atoi(s[:4])
	m, _ := strconv.Atoi(s[4:6])
	d, _ := strconv.Atoi(s[6:])
	if m == 0 || d == 0 {
		if partial && m <= 12 && d <= 31 {
			return NoDay, nil
		}
		return NoDay, fmt.Errorf("%q est incomplète / %q is incomplete", s, s)
	}
	day := CivilDay(y, monthOf(m), d)
	if yy, mm, dd := day.Date(); yy != y || int(mm) != m || dd != d {
		return NoDay, fmt.Errorf("%q n'existe pas / %q is not a date", s, s)
	}
	return day, nil
}

// LineError is a line of an import that could not be read.
type LineError struct {
	Line int
	Err  error
}

func (e LineError) Error() string {
	return fmt.Sprintf("ligne %d / line %d: %v", e.Line, e.Line, e.Err)
}

// ReadDeaths reads the register from r, calling fn for every readable
// line; unreadable lines are returned, line-numbered, and do not stop the
// reading. Blank lines are skipped. fn's error stops it.
func ReadDeaths(r io.Reader, fn func(DeathRecord) error) ([]LineError, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1024), 64*1024)
	var bad []LineError
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		rec, err := ParseDeathLine(line)
		if err != nil {
			bad = append(bad, LineError{n, err})
			continue
		}
		rec.Line = n
		if err := fn(rec); err != nil {
			return bad, err
		}
	}
	if err := sc.Err(); err != nil {
		return bad, fmt.Errorf("ligne %d / line %d: %w", n+1, n+1, err)
	}
	return bad, nil
}

// NormName folds a name for matching: lower case, no accents, hyphens and
// apostrophes as spaces.
func NormName(s string) string {
	s = strings.NewReplacer("-", " ", "'", " ", "’", " ").Replace(s)
	return search.Normalize(s)
}

// MatchTraits tells whether a register line names the patient of rec by
// the INS traits: sex and birth date (exact), birth family name, one of
// the given names, and the birth place code when both sides have one.
func MatchTraits(rec *Record, d DeathRecord) bool {
	if rec.Sex == "" || rec.Sex != d.Sex || rec.BirthDate == NoDay || rec.BirthDate != d.Birth {
		return false
	}
	if NormName(rec.Family) != NormName(d.Family) {
		return false
	}
	if rec.BirthPlace != "" && d.BirthPlace != "" && rec.BirthPlace != d.BirthPlace {
		return false
	}
	if len(rec.Given) == 0 {
		return false
	}
	for _, g := range rec.Given {
		for _, h := range d.Given {
			if NormName(g) == NormName(h) {
				return true
			}
		}
	}
	return false
}

// MonthOfFile guesses the month a register file covers from its name
// (deces-2025-m03.txt → 202503); 0 when the name does not say.
func MonthOfFile(name string) int {
	m := fileMonth.FindStringSubmatch(strings.ToLower(name))
	if m == nil {
		return 0
	}
	y, _ := strconv.Atoi(m[1])
	mo, _ := strconv.Atoi(m[2])
	if mo < 1 || mo > 12 {
		return 0
	}
	return y*100 + mo
}

var fileMonth = regexp.MustCompile(`(\d{4})[-_]?m(\d{2})`)
