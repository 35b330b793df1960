// Package auth verifies the OpenID Connect bearer tokens that every API call
// carries, and turns a valid token into a Principal: a person (matched later
// to the member directory through one claim) or a system using client
// credentials.
//
// Tokens come from the configured issuer (Keycloak, Pro Santé Connect) or,
// in development, from the embedded provider in package devidp; both are
// reached the same way, through discovery and the published key set, so the
// development path exercises exactly the production code.
//
// What a principal may do is not decided here: the directory decides, from
// the practitioner claim or the client id (docs/architecture.md, "Identity and access").
package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Principal is who a verified token speaks for.
type Principal struct {
	// Subject is the token's sub claim, stable for a person or a client at
	// one issuer.
	Subject string
	// ClientID is the OAuth client the token was issued to: its client_id
	// claim, or azp when there is none.
	ClientID string
	// AuthorizedParty is the azp claim, as sent.
	AuthorizedParty string
	// Login is the value of the configured practitioner claim (by default
	// preferred_username). It is empty for a system.
	Login string
	// IsSystem reports a client-credentials token: one without the
	// practitioner claim, or a service-account token.
	IsSystem bool
	// Expiry is when the token stops being valid.
	Expiry time.Time
	// Scopes are the granted scopes (scope or scp claim).
	Scopes []string
}

// Errors returned by Verify and FromRequest. Test them with errors.Is; the
// errors returned wrap them with the reason.
var (
	// ErrNoToken means the request carries no bearer token.
	ErrNoToken = errors.New("no bearer token")
	// ErrInvalidToken means the token was rejected: malformed, badly
	// signed, expired, for another audience or issuer.
	ErrInvalidToken = errors.New("invalid token")
	// ErrUnavailable means the token could not be checked because the
	// identity provider (its discovery document or its keys) cannot be
	// reached; the caller should answer 503, not 401.
	ErrUnavailable = errors.New("identity provider unavailable")
)

// invalidTokenError carries a short, fixed reason that is safe to show the
// caller (it goes into WWW-Authenticate) and the underlying cause for logs.
// Neither ever contains the token itself.
type invalidTokenError struct {
	reason string
	cause  error
}

func invalid(reason string, cause error) error {
	return &invalidTokenError{reason: reason, cause: cause}
}

func (e *invalidTokenError) Error() string {
	if e.cause == nil {
		return "invalid token: " + e.reason
	}
	return "invalid token: " + e.reason + ": " + e.cause.Error()
}

func (e *invalidTokenError) Is(target error) bool { return target == ErrInvalidToken }

func (e *invalidTokenError) Unwrap() error { return e.cause }

// Realm is the realm named in every WWW-Authenticate challenge.
const Realm = "passerelle"

// FromRequest returns the bearer token of the request's Authorization header.
// The scheme is case-insensitive (RFC 7235 §2.1). Tokens in the query string
// or the body are not accepted: they end up in access logs and browser
// history (RFC 6750 §5.3).
//
// It returns ErrNoToken when there is no Authorization header or it uses
// another scheme, and an error wrapping ErrInvalidToken when the header is
// malformed.
func FromRequest(r *http.Request) (string, error) {
	values := r.Header.Values("Authorization")
	switch len(values) {
	case 0:
		return "", ErrNoToken
	case 1:
	default:
		return "", invalid("several Authorization headers", nil)
	}
	scheme, rest, _ := strings.Cut(strings.TrimSpace(values[0]), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", ErrNoToken
	}
	token := strings.TrimSpace(rest)
	if token == "" {
		return "", invalid("empty bearer token", nil)
	}
	if !isToken68(token) {
		return "", invalid("malformed bearer token", nil)
	}
	return token, nil
}

// isToken68 reports whether s has the b64token syntax of RFC 6750 §2.1:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isToken68(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '.', c == '_', c == '~', c == '+', c == '/':
		default:
			return false
		}
	}
	return true
}

// Challenge returns the WWW-Authenticate header value to send with a 401
// answering err (RFC 6750 §3): the realm alone when no token was sent, plus
// error="invalid_token" and a short description when a token was rejected.
// The description never contains the token.
func Challenge(err error) string {
	var ite *invalidTokenError
	switch {
	case errors.As(err, &ite):
		return fmt.Sprintf(`Bearer realm=%q, error="invalid_token", error_description="%s"`,
			Realm, quotable(ite.reason))
	case errors.Is(err, ErrInvalidToken):
		return fmt.Sprintf(`Bearer realm=%q, error="invalid_token"`, Realm)
	default:
		return fmt.Sprintf(`Bearer realm=%q`, Realm)
	}
}

// quotable keeps the characters RFC 6750 §3 allows in error_description
// (%x20-21 / %x23-5B / %x5D-7E), so the header stays well-formed.
func quotable(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c <= 0x7e && c != '"' && c != '\\' {
			b.WriteByte(c)
		}
	}
	return b.String()
}

type principalKey struct{}

// WithPrincipal returns a context carrying p, for handlers downstream of the
// authentication middleware.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal stored by WithPrincipal.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}
