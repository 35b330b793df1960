package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// claims are the parts of a verified payload that Verify checks or reports.
type claims struct {
	Issuer          string
	Subject         string
	Audience        []string
	AuthorizedParty string
	ClientID        string
	Expiry          time.Time // zero when absent
	NotBefore       time.Time // zero when absent
	Type            string
	Scopes          []string
	Login           string
	HasLogin        bool
	Nonce           string
}

// maxNumericDate bounds exp and nbf to year 9999, so that absurd values
// cannot overflow the conversion to time.Time.
const maxNumericDate = 253402300799

// decodeClaims reads a JWT payload whose signature has already been checked.
// Claims that providers send in more than one shape (aud as a string or an
// array, scopes as scope or scp) are normalised; a claim of the wrong type is
// an error rather than "absent", so a malformed token never silently becomes
// a system principal.
func decodeClaims(payload []byte, practitionerClaim string) (claims, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(payload, &raw); err != nil {
		return claims{}, fmt.Errorf("payload is not a JSON object: %w", err)
	}
	var c claims
	var err error
	str := func(name string) string {
		if err != nil {
			return ""
		}
		var s string
		s, _, err = stringClaim(raw, name)
		return s
	}
	c.Issuer = str("iss")
	c.Subject = str("sub")
	c.AuthorizedParty = str("azp")
	c.ClientID = str("client_id")
	c.Type = str("typ")
	c.Nonce = str("nonce")
	if err != nil {
		return claims{}, err
	}
	if c.Login, c.HasLogin, err = stringClaim(raw, practitionerClaim); err != nil {
		return claims{}, err
	}
	if c.Audience, err = stringsClaim(raw, "aud", false); err != nil {
		return claims{}, err
	}
	if c.Expiry, err = dateClaim(raw, "exp"); err != nil {
		return claims{}, err
	}
	if c.NotBefore, err = dateClaim(raw, "nbf"); err != nil {
		return claims{}, err
	}
	// RFC 8693 §4.2 and Keycloak use "scope" (space-separated); Azure and
	// some others use "scp", as a string or an array.
	if c.Scopes, err = stringsClaim(raw, "scope", true); err != nil {
		return claims{}, err
	}
	if len(c.Scopes) == 0 {
		if c.Scopes, err = stringsClaim(raw, "scp", true); err != nil {
			return claims{}, err
		}
	}
	return c, nil
}

func isNull(m json.RawMessage) bool { return string(m) == "null" }

// stringClaim returns a string claim and whether it was present; null counts
// as absent.
func stringClaim(raw map[string]json.RawMessage, name string) (string, bool, error) {
	m, ok := raw[name]
	if !ok || isNull(m) {
		return "", false, nil
	}
	var s string
	if err := json.Unmarshal(m, &s); err != nil {
		return "", false, fmt.Errorf("claim %q is not a string", name)
	}
	return s, true, nil
}

// stringsClaim accepts a string or an array of strings. With split, a string
// is a space-separated list (the scope syntax of RFC 6749 §3.3).
func stringsClaim(raw map[string]json.RawMessage, name string, split bool) ([]string, error) {
	m, ok := raw[name]
	if !ok || isNull(m) {
		return nil, nil
	}
	var s string
	if err := json.Unmarshal(m, &s); err == nil {
		if split {
			return strings.Fields(s), nil
		}
		return []string{s}, nil
	}
	var list []string
	if err := json.Unmarshal(m, &list); err != nil {
		return nil, fmt.Errorf("claim %q is neither a string nor an array of strings", name)
	}
	return list, nil
}

var errBadDate = errors.New("not a NumericDate")

// dateClaim reads a NumericDate (RFC 7519 §2): seconds since the epoch,
// possibly fractional.
func dateClaim(raw map[string]json.RawMessage, name string) (time.Time, error) {
	m, ok := raw[name]
	if !ok || isNull(m) {
		return time.Time{}, nil
	}
	var f float64
	if err := json.Unmarshal(m, &f); err != nil || math.IsNaN(f) || f < 0 || f > maxNumericDate {
		return time.Time{}, fmt.Errorf("claim %q: %w", name, errBadDate)
	}
	sec := math.Floor(f)
	return time.Unix(int64(sec), int64((f-sec)*1e9)).UTC(), nil
}
