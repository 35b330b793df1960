package directory

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/passerelle-sante/passerelle/pkg/clock"
	"github.com/passerelle-sante/passerelle/pkg/fhir/ident"
)

// ImportError is one problem found in an import file: a CSV cell (Line and
// Column) or an element of a Bundle (Path), in French and in English.
type ImportError struct {
	// Line is the CSV line (1 is the header); 0 for a Bundle.
	Line int
	// Column is the CSV column name; empty when the whole line is wrong.
	Column string
	// Path is the FHIRPath of the Bundle element, e.g.
	// "Bundle.entry[2].resource.identifier[0].value".
	Path   string
	FR, EN string
}

// Error is the English message: "line N, column <name>: <what is wrong>",
// or "<path>: <what is wrong>" for a Bundle.
func (e ImportError) Error() string { return e.where("en") + e.EN }

// French is the French message: "ligne N, colonne <nom> : <problème>".
func (e ImportError) French() string { return e.where("fr") + e.FR }

func (e ImportError) where(lang string) string {
	if e.Path != "" {
		if lang == "fr" {
			return e.Path + " : "
		}
		return e.Path + ": "
	}
	switch {
	case lang == "fr" && e.Column != "":
		return fmt.Sprintf("ligne %d, colonne %s : ", e.Line, e.Column)
	case lang == "fr":
		return fmt.Sprintf("ligne %d : ", e.Line)
	case e.Column != "":
		return fmt.Sprintf("line %d, column %s: ", e.Line, e.Column)
	}
	return fmt.Sprintf("line %d: ", e.Line)
}

// Errors are every problem of an import file; nothing was written.
type Errors []ImportError

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// French lists the problems in French, one a line.
func (es Errors) French() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.French()
	}
	return strings.Join(lines, "\n")
}

// Required and optional columns of a member CSV file.
var (
	CSVColumns         = []string{"rpps", "family", "given", "profession", "role", "communes", "postal_codes", "phone", "email", "login"}
	CSVOptionalColumns = []string{"specialty", "capacity", "organization_finess", "organization_name", "not_available"}
)

// Professions are the TRE_G15 profession codes the directory accepts.
var Professions = map[string]string{
	"10": "Médecin", "21": "Pharmacien", "26": "Audioprothésiste", "28": "Opticien-lunetier",
	"40": "Chirurgien-dentiste", "50": "Sage-femme", "60": "Infirmier", "69": "Infirmier psychiatrique",
	"70": "Masseur-kinésithérapeute", "80": "Pédicure-podologue", "91": "Orthophoniste", "92": "Orthoptiste",
	"94": "Ergothérapeute", "95": "Diététicien", "96": "Psychomotricien", "98": "Manipulateur ERM",
}

// MemberRoles are the team roles a directory member may hold (external is
// a declared professional who is not a member).
var MemberRoles = []string{RoleGP, RoleNurse, RolePharmacist, RoleCardiologist, RoleCoordinatingNurse, RoleCoordinator, RoleAdmin}

// Code systems of the Practitioner qualification and the role specialty.
const (
	SystemProfession = "https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante"
	SystemSpecialty  = "https://mos.esante.gouv.fr/NOS/TRE_R38-SpecialiteOrdinale/FHIR/TRE-R38-SpecialiteOrdinale"
)

// Row is one valid member line of a CSV file. Has tells which optional
// columns the file carries: an absent column leaves that field of an
// existing member as it is.
type Row struct {
	Line               int
	RPPS               string
	Family, Given      string
	Profession, Role   string
	Communes           []string
	PostalCodes        []string
	Phone, Email       string
	Login              string
	Specialty          string
	Capacity           int
	OrganizationFINESS string
	OrganizationName   string
	NotAvailable       []Period
	Has                map[string]bool
}

func cellErr(line int, col, fr, en string, args ...any) ImportError {
	return ImportError{Line: line, Column: col, FR: fmt.Sprintf(fr, args...), EN: fmt.Sprintf(en, args...)}
}

// ParseCSV reads a member CSV file (UTF-8, with or without a byte-order
// mark; a header row naming CSVColumns and any of CSVOptionalColumns;
// lists within a cell separated by ";") and checks every row on its own.
// It returns the valid rows and every problem found; checks against the
// directory (a login already taken) come later, in the import.
func ParseCSV(r io.Reader) ([]Row, Errors) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, Errors{cellErr(0, "", "lecture impossible : %v", "cannot read: %v", err)}
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	cr := csv.NewReader(bytes.NewReader(data))
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = false
	var (
		errs   Errors
		rows   []Row
		header []string
		seen   = map[string]map[string]int{"rpps": {}, "login": {}}
	)
	for fails := 0; ; {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			line := 0
			if errors.As(err, &pe) {
				line = pe.StartLine
			}
			errs = append(errs, cellErr(line, "", "CSV mal formé : %v", "malformed CSV: %v", unwrapCSV(err)))
			// encoding/csv skips past a malformed record; stop if it does not.
			if fails++; fails > 10000 {
				break
			}
			if header == nil {
				return nil, errs
			}
			continue
		}
		line, _ := cr.FieldPos(0)
		if header == nil {
			header = make([]string, len(rec))
			for i, h := range rec {
				header[i] = strings.ToLower(strings.TrimSpace(h))
			}
			errs = append(errs, checkHeader(line, header)...)
			if len(errs) > 0 {
				return nil, errs
			}
			continue
		}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		if len(rec) != len(header) {
			errs = append(errs, cellErr(line, "", "%d champs au lieu des %d de l'en-tête", "%d fields instead of the header's %d", len(rec), len(header)))
			continue
		}
		row, rowErrs := parseRow(line, header, rec)
		for _, k := range []string{"rpps", "login"} {
			v := row.RPPS
			if k == "login" {
				v = row.Login
			}
			if v == "" || hasErr(rowErrs, k) {
				continue
			}
			if first, dup := seen[k][v]; dup {
				rowErrs = append(rowErrs, cellErr(line, k, "déjà à la ligne %d du fichier", "already on line %d of the file", first))
			} else {
				seen[k][v] = line
			}
		}
		if len(rowErrs) > 0 {
			errs = append(errs, rowErrs...)
			continue
		}
		rows = append(rows, row)
	}
	if header == nil {
		errs = append(errs, cellErr(1, "", "fichier vide : une ligne d'en-tête est requise (%s)", "empty file: a header row is required (%s)", strings.Join(CSVColumns, ",")))
	}
	return rows, errs
}

func unwrapCSV(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func hasErr(es Errors, col string) bool {
	return slices.ContainsFunc(es, func(e ImportError) bool { return e.Column == col })
}

func checkHeader(line int, header []string) Errors {
	var errs Errors
	seen := map[string]bool{}
	for _, h := range header {
		switch {
		case seen[h]:
			errs = append(errs, cellErr(line, h, "colonne en double", "duplicate column"))
		case !slices.Contains(CSVColumns, h) && !slices.Contains(CSVOptionalColumns, h):
			errs = append(errs, cellErr(line, h, "colonne inconnue (colonnes : %s ; facultatives : %s)", "unknown column (columns: %s; optional: %s)",
				strings.Join(CSVColumns, ","), strings.Join(CSVOptionalColumns, ",")))
		}
		seen[h] = true
	}
	for _, c := range CSVColumns {
		if !seen[c] {
			errs = append(errs, cellErr(line, c, "colonne manquante dans l'en-tête", "column missing from the header"))
		}
	}
	return errs
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// ValidCommune tells whether c is an INSEE commune code: 5 characters,
// digits, or 2A / 2B then 3 digits for Corsica.
func ValidCommune(c string) bool {
	if len(c) != 5 {
		return false
	}
	if c[0] == '2' && (c[1] == 'A' || c[1] == 'B') {
		return isDigits(c[2:])
	}
	return isDigits(c)
}

// ValidPostalCode tells whether p is a French postal code: 5 digits.
func ValidPostalCode(p string) bool { return len(p) == 5 && isDigits(p) }

// NormalizePhone returns a phone number in E.164 form: an E.164 number as
// is, a French national number (10 digits starting with 0, spaces, dots
// and dashes allowed) as +33…; ok is false otherwise.
func NormalizePhone(s string) (string, bool) {
	if strings.HasPrefix(s, "+") {
		d := s[1:]
		if len(d) >= 7 && len(d) <= 15 && isDigits(d) && d[0] != '0' {
			return s, true
		}
		return "", false
	}
	var b strings.Builder
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			b.WriteRune(c)
		case c == ' ' || c == '.' || c == '-':
		default:
			return "", false
		}
	}
	d := b.String()
	if len(d) != 10 || d[0] != '0' || d[1] == '0' {
		return "", false
	}
	return "+33" + d[1:], true
}

// ValidEmail tells whether s is a plain e-mail address (no display name).
func ValidEmail(s string) bool {
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" {
		return false
	}
	at := strings.LastIndexByte(s, '@')
	return at > 0 && strings.Contains(s[at+1:], ".")
}

// ValidLogin tells whether s can be a login: 1 to 64 characters among
// letters, digits and . _ - @.
func ValidLogin(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' || c == '@') {
			return false
		}
	}
	return true
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ";") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// ParseNotAvailable reads periods "start/end;start/end" of ISO dates
// (YYYY-MM-DD, days in Europe/Paris, end included; an empty end is open)
// or RFC 3339 times.
func ParseNotAvailable(s string) ([]Period, error) {
	var out []Period
	for _, p := range splitList(s) {
		a, b, ok := strings.Cut(p, "/")
		if !ok {
			return nil, fmt.Errorf("%q: start/end expected", p)
		}
		var per Period
		var err error
		if per.Start, err = parseWhen(strings.TrimSpace(a), false); err != nil {
			return nil, err
		}
		if b = strings.TrimSpace(b); b != "" {
			if per.End, err = parseWhen(b, true); err != nil {
				return nil, err
			}
			if !per.End.After(per.Start) {
				return nil, fmt.Errorf("%q: the end comes before the start", p)
			}
		}
		out = append(out, per)
	}
	return out, nil
}

func parseWhen(s string, end bool) (time.Time, error) {
	if t, err := time.ParseInLocation("2006-01-02", s, clock.Paris); err == nil {
		if end {
			t = t.AddDate(0, 0, 1)
		}
		return t, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither a date YYYY-MM-DD nor an RFC 3339 time", s)
	}
	return t.In(clock.Paris), nil
}

func parseRow(line int, header, rec []string) (Row, Errors) {
	row := Row{Line: line, Has: map[string]bool{}}
	var errs Errors
	bad := func(col, fr, en string, args ...any) { errs = append(errs, cellErr(line, col, fr, en, args...)) }
	for i, col := range header {
		v := strings.TrimSpace(rec[i])
		row.Has[col] = true
		if !utf8.ValidString(v) {
			bad(col, "texte qui n'est pas en UTF-8", "text is not UTF-8")
			continue
		}
		switch col {
		case "rpps":
			if err := ident.CheckRPPS(v); err != nil {
				var ie *ident.Error
				if errors.As(err, &ie) {
					bad(col, "%s", "%s", ie.FR)
					errs[len(errs)-1].EN = ie.EN
				} else {
					bad(col, "%v", "%v", err)
				}
				continue
			}
			row.RPPS = v
		case "family", "given":
			if v == "" {
				if col == "family" {
					bad(col, "nom de famille manquant", "family name missing")
				} else {
					bad(col, "prénom manquant", "given name missing")
				}
				continue
			}
			if col == "family" {
				row.Family = v
			} else {
				row.Given = v
			}
		case "profession":
			if _, ok := Professions[v]; !ok {
				bad(col, "code profession %q inconnu (10 médecin, 21 pharmacien, 60 infirmier, …)", "unknown profession code %q (10 médecin, 21 pharmacien, 60 infirmier, …)", v)
				continue
			}
			row.Profession = v
		case "role":
			switch {
			case v == RoleExternal:
				bad(col, "le rôle external désigne un professionnel qui n'est pas membre : il ne s'importe pas", "external is a professional who is not a member: not importable")
				continue
			case !slices.Contains(MemberRoles, v):
				bad(col, "rôle d'équipe %q inconnu (%s)", "unknown team role %q (%s)", v, strings.Join(MemberRoles, ", "))
				continue
			}
			row.Role = v
		case "communes":
			for _, c := range splitList(v) {
				if !ValidCommune(c) {
					bad(col, "%q n'est pas un code commune INSEE (5 caractères)", "%q is not an INSEE commune code (5 characters)", c)
				}
				row.Communes = append(row.Communes, c)
			}
		case "postal_codes":
			for _, p := range splitList(v) {
				if !ValidPostalCode(p) {
					bad(col, "%q n'est pas un code postal (5 chiffres)", "%q is not a postal code (5 digits)", p)
				}
				row.PostalCodes = append(row.PostalCodes, p)
			}
		case "phone":
			if v == "" {
				continue
			}
			p, ok := NormalizePhone(v)
			if !ok {
				bad(col, "numéro de téléphone invalide (E.164 +33… ou 0X XX XX XX XX)", "invalid phone number (E.164 +33… or 0X XX XX XX XX)")
				continue
			}
			row.Phone = p
		case "email":
			if v == "" {
				continue
			}
			if !ValidEmail(v) {
				bad(col, "adresse e-mail invalide", "invalid e-mail address")
				continue
			}
			row.Email = v
		case "login":
			if !ValidLogin(v) {
				bad(col, "identifiant de connexion manquant ou invalide (1 à 64 caractères : lettres, chiffres, . _ - @)", "login missing or invalid (1 to 64 characters: letters, digits, . _ - @)")
				continue
			}
			row.Login = v
		case "specialty":
			if v != "" && (len(v) > 16 || strings.ContainsAny(v, " \t;,")) {
				bad(col, "code spécialité invalide (TRE_R38, p. ex. SM54)", "invalid specialty code (TRE_R38, e.g. SM54)")
				continue
			}
			row.Specialty = v
		case "capacity":
			if v == "" {
				continue
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > 100000 {
				bad(col, "capacité invalide : un entier positif ou nul attendu", "invalid capacity: a non-negative integer expected")
				continue
			}
			row.Capacity = n
		case "organization_finess":
			if v == "" {
				continue
			}
			if err := ident.CheckFINESS(v); err != nil {
				var ie *ident.Error
				if errors.As(err, &ie) {
					bad(col, "%s", "%s", ie.FR)
					errs[len(errs)-1].EN = ie.EN
				} else {
					bad(col, "%v", "%v", err)
				}
				continue
			}
			row.OrganizationFINESS = v
		case "organization_name":
			row.OrganizationName = v
		case "not_available":
			ps, err := ParseNotAvailable(v)
			if err != nil {
				bad(col, "périodes d'absence invalides (début/fin en dates AAAA-MM-JJ, séparées par ;) : %v", "invalid periods away (start/end as YYYY-MM-DD dates, separated by ;): %v", err)
				continue
			}
			row.NotAvailable = ps
		}
	}
	return row, errs
}
