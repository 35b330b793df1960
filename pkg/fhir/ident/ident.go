// Package ident checks the French national identifiers Passerelle receives
// (INS, RPPS, idNat_PS, FINESS) and names their FHIR identifier systems.
//
// A check looks at the form and the check key only: a number that passes
// may still not exist. Errors never repeat the value, since an INS is
// personal data and errors end up in logs and OperationOutcomes.
package ident

import "fmt"

// FHIR Identifier.system values (docs/domain.md, "French identifiers").
const (
	// SystemINSNIR is the matricule INS when it is the NIR.
	SystemINSNIR = "urn:oid:1.2.250.1.213.1.4.8"
	// SystemINSNIA is the matricule INS when it is a temporary NIA.
	SystemINSNIA = "urn:oid:1.2.250.1.213.1.4.9"
	// SystemINSTest is the INS-NIR of test patients.
	SystemINSTest = "urn:oid:1.2.250.1.213.1.4.10"
	// SystemINSDemo is the INS-NIR of demonstration patients.
	SystemINSDemo = "urn:oid:1.2.250.1.213.1.4.11"
	// SystemRPPS is the raw 11-digit RPPS number of a professional.
	SystemRPPS = "https://rpps.esante.gouv.fr"
	// SystemIDNPS is the idNat_PS: "8" + RPPS, or "0" + ADELI.
	SystemIDNPS = "urn:oid:1.2.250.1.71.4.2.1"
	// SystemFINESS is the 9-character FINESS number of a facility.
	SystemFINESS = "http://finess.sante.gouv.fr"
)

// Error says what is wrong with an identifier, in French and in English.
type Error struct {
	// Kind is the identifier checked: INS, RPPS, idNat_PS or FINESS.
	Kind string
	// FR and EN describe the problem without quoting the value.
	FR, EN string
}

func (e *Error) Error() string { return e.Kind + ": " + e.EN }

func errf(kind, fr, en string, args ...any) *Error {
	return &Error{Kind: kind, FR: fmt.Sprintf(fr, args...), EN: fmt.Sprintf(en, args...)}
}

// Checkers maps the algorithm names used in the FHIR package's
// NamingSystem resources (extension identifier-check) to the checks, so
// that which system gets which check is data, not code.
var Checkers = map[string]func(string) error{
	"ins":    CheckINS,
	"rpps":   CheckRPPS,
	"idnps":  CheckIDNPS,
	"finess": CheckFINESS,
}

// ForSystem returns the check of an identifier system, for callers that do
// not load the FHIR package (the HL7 v2 intake); ok is false for systems
// without a check key, such as a facility's IPP domain.
func ForSystem(system string) (check func(string) error, ok bool) {
	switch system {
	case SystemINSNIR, SystemINSNIA, SystemINSTest, SystemINSDemo:
		return CheckINS, true
	case SystemRPPS:
		return CheckRPPS, true
	case SystemIDNPS:
		return CheckIDNPS, true
	case SystemFINESS:
		return CheckFINESS, true
	}
	return nil, false
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// CheckINS checks a matricule INS (NIR or NIA): 15 characters, a 13-digit
// number and a 2-digit key equal to 97 - (number mod 97). Births in Corsica
// carry the department 2A or 2B in characters 6-7; the key is then
// computed with 19 for 2A and 18 for 2B (INSEE's rule, the same as
// subtracting 1,000,000 or 2,000,000 from the number).
func CheckINS(v string) error {
	const kind = "INS"
	if len(v) != 15 {
		return errf(kind, "le matricule INS doit compter 15 caractères (%d reçus)", "an INS must have 15 characters (got %d)", len(v))
	}
	var n uint64
	for i := 0; i < 13; i++ {
		c := v[i]
		if i == 5 && c == '2' && (v[6] == 'A' || v[6] == 'B') {
			// 2A → 19, 2B → 18.
			if v[6] == 'A' {
				n = n*100 + 19
			} else {
				n = n*100 + 18
			}
			i++
			continue
		}
		if !isDigit(c) {
			return errf(kind, "caractère %d du matricule INS non numérique", "character %d of the INS is not a digit", i+1)
		}
		n = n*10 + uint64(c-'0')
	}
	if !isDigit(v[13]) || !isDigit(v[14]) {
		return errf(kind, "la clé du matricule INS (2 derniers caractères) doit être numérique", "the INS key (last 2 characters) must be digits")
	}
	key := uint64(v[13]-'0')*10 + uint64(v[14]-'0')
	if want := 97 - n%97; key != want {
		return errf(kind, "clé du matricule INS incorrecte", "wrong INS check key")
	}
	return nil
}

// luhn reports whether digits (ASCII '0'-'9' only) pass the Luhn check.
func luhn(digits []byte) bool {
	sum := 0
	for i := range digits {
		d := int(digits[len(digits)-1-i] - '0')
		if i%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return sum%10 == 0
}

func allDigits(v string) (int, bool) {
	for i := 0; i < len(v); i++ {
		if !isDigit(v[i]) {
			return i, false
		}
	}
	return 0, true
}

// CheckRPPS checks an RPPS number: 11 digits whose last is a Luhn key.
func CheckRPPS(v string) error {
	return checkRPPS("RPPS", v, 0)
}

func checkRPPS(kind, v string, offset int) error {
	if len(v) != 11 {
		return errf(kind, "le numéro RPPS doit compter 11 chiffres (%d caractères reçus)", "an RPPS number must have 11 digits (got %d characters)", len(v))
	}
	if i, ok := allDigits(v); !ok {
		return errf(kind, "caractère %d non numérique", "character %d is not a digit", i+1+offset)
	}
	if !luhn([]byte(v)) {
		return errf(kind, "clé de Luhn du numéro RPPS incorrecte", "wrong Luhn key in the RPPS number")
	}
	return nil
}

// CheckIDNPS checks an idNat_PS: "8" followed by an RPPS number (whose Luhn
// key is checked), or "0" followed by a 9-character ADELI number. The ADELI
// form's own key is not checked: its rule is not confirmed (docs/domain.md, "French identifiers"), and
// refusing a real professional would be worse than letting a typo through
// to the directory match. Other prefixes are refused.
func CheckIDNPS(v string) error {
	const kind = "idNat_PS"
	if v == "" {
		return errf(kind, "idNat_PS vide", "empty idNat_PS")
	}
	switch v[0] {
	case '8':
		if len(v) != 12 {
			return errf(kind, "un idNat_PS RPPS compte 12 caractères, 8 puis les 11 chiffres du RPPS (%d reçus)", "an RPPS idNat_PS has 12 characters, 8 then the 11 RPPS digits (got %d)", len(v))
		}
		return checkRPPS(kind, v[1:], 1)
	case '0':
		if len(v) != 10 {
			return errf(kind, "un idNat_PS ADELI compte 10 caractères, 0 puis les 9 du numéro ADELI (%d reçus)", "an ADELI idNat_PS has 10 characters, 0 then the 9 of the ADELI number (got %d)", len(v))
		}
		for i := 1; i < len(v); i++ {
			c := v[i]
			if !isDigit(c) && (c < 'A' || c > 'Z') {
				return errf(kind, "caractère %d invalide", "character %d is not a digit or a capital letter", i+1)
			}
		}
		return nil
	}
	return errf(kind, "un idNat_PS commence par 8 (RPPS) ou 0 (ADELI)", "an idNat_PS starts with 8 (RPPS) or 0 (ADELI)")
}

// CheckFINESS checks a FINESS number: 9 characters, the first two the
// department (digits, or 2A / 2B for Corsica), then digits, the last being
// a Luhn key over all nine. For Corsica the letters count as A = 1 and
// B = 2 in the key: no public text states it, but it is the only reading
// under which the numbers the ARS of Corsica publishes (2A0000170,
// 2A0000386, 2A0002606, 2B0000020, 2B0004246, 2B0005342) have valid keys.
func CheckFINESS(v string) error {
	const kind = "FINESS"
	if len(v) != 9 {
		return errf(kind, "le numéro FINESS doit compter 9 caractères (%d reçus)", "a FINESS number must have 9 characters (got %d)", len(v))
	}
	var d [9]byte
	for i := 0; i < 9; i++ {
		c := v[i]
		switch {
		case isDigit(c):
			d[i] = c
		case i == 1 && v[0] == '2' && c == 'A':
			d[i] = '1'
		case i == 1 && v[0] == '2' && c == 'B':
			d[i] = '2'
		default:
			return errf(kind, "caractère %d invalide (chiffres, ou 2A / 2B en tête)", "character %d is invalid (digits, or 2A / 2B first)", i+1)
		}
	}
	if !luhn(d[:]) {
		return errf(kind, "clé de Luhn du numéro FINESS incorrecte", "wrong Luhn key in the FINESS number")
	}
	return nil
}
