package auth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/go-jose/go-jose/v4"
)

// Endpoints are the issuer's endpoints a web login uses, from its discovery
// document.
type Endpoints struct {
	Authorization string
	Token         string
	// EndSession is empty when the issuer does not offer RP-initiated
	// logout.
	EndSession string
}

// Endpoints returns the issuer's endpoints, running discovery if it has not
// succeeded yet (errors wrap ErrUnavailable).
func (v *Verifier) Endpoints(ctx context.Context) (Endpoints, error) {
	if _, err := v.verifier(ctx); err != nil {
		return Endpoints{}, err
	}
	ep := v.ep.Load()
	if ep == nil || ep.Authorization == "" || ep.Token == "" {
		return Endpoints{}, fmt.Errorf("%w: the discovery document of %s has no authorization or token endpoint", ErrUnavailable, v.issuer)
	}
	return *ep, nil
}

// CodeExchange is the token request of the authorization code grant with
// PKCE (RFC 6749 §4.1.3, RFC 7636 §4.5).
type CodeExchange struct {
	Code, CodeVerifier, RedirectURI string
	// ClientSecret authenticates the web client (client_secret_basic);
	// empty for a public client.
	ClientSecret string
}

// Tokens is a token endpoint's answer.
type Tokens struct {
	AccessToken string `json:"access_token"`
	IDToken     string `json:"id_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
}

// ErrExchange means the token endpoint refused the code: expired, already
// used, PKCE mismatch, bad client secret.
var ErrExchange = errors.New("code exchange refused")

// Exchange trades an authorization code for tokens at the issuer's token
// endpoint, with the client this verifier checks tokens for.
func (v *Verifier) Exchange(ctx context.Context, x CodeExchange) (Tokens, error) {
	ep, err := v.Endpoints(ctx)
	if err != nil {
		return Tokens{}, err
	}
	form := url.Values{"grant_type": {"authorization_code"}, "code": {x.Code},
		"redirect_uri": {x.RedirectURI}, "code_verifier": {x.CodeVerifier}}
	if x.ClientSecret == "" {
		form.Set("client_id", v.clientID)
	}
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.Token, strings.NewReader(form.Encode()))
	if err != nil {
		return Tokens{}, fmt.Errorf("token endpoint: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if x.ClientSecret != "" {
		// RFC 6749 §2.3.1: both parts form-encoded before Basic.
		req.SetBasicAuth(url.QueryEscape(v.clientID), url.QueryEscape(x.ClientSecret))
	}
	res, err := v.client.Do(req)
	if err != nil {
		return Tokens{}, fmt.Errorf("%w: token endpoint: %w", ErrUnavailable, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return Tokens{}, fmt.Errorf("%w: token endpoint: %w", ErrUnavailable, err)
	}
	if res.StatusCode >= 500 {
		return Tokens{}, fmt.Errorf("%w: token endpoint answered %d", ErrUnavailable, res.StatusCode)
	}
	if res.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
			Desc  string `json:"error_description"`
		}
		_ = json.Unmarshal(body, &e)
		return Tokens{}, fmt.Errorf("%w: %d %s %s", ErrExchange, res.StatusCode, e.Error, e.Desc)
	}
	var t Tokens
	if err := json.Unmarshal(body, &t); err != nil {
		return Tokens{}, fmt.Errorf("%w: token endpoint answer is not JSON: %v", ErrExchange, err)
	}
	if t.IDToken == "" {
		return Tokens{}, fmt.Errorf("%w: no id_token (is the openid scope allowed for this client?)", ErrExchange)
	}
	return t, nil
}

// VerifyIDToken checks an ID token obtained by a web login (OpenID Connect
// Core §3.1.3.7): signature through the issuer's keys, issuer, aud holding
// the client id, azp (when several audiences) equal to it, expiry and
// not-before with the clock skew, and the nonce of the login request. When
// accessToken is given and the ID token carries at_hash, the two must match.
// The principal's Login comes from the practitioner claim, as for a bearer
// token; an ID token without it is refused (a person logs in, not a system).
func (v *Verifier) VerifyIDToken(ctx context.Context, raw, nonce, accessToken string) (Principal, error) {
	if raw == "" {
		return Principal{}, ErrNoToken
	}
	if len(raw) > maxTokenBytes || !isCompactJWS(raw) {
		return Principal{}, invalid("malformed token", nil)
	}
	jws, err := jose.ParseSigned(raw, allowedAlgs)
	if err != nil {
		return Principal{}, invalid("malformed token or unsupported algorithm", err)
	}
	idv, err := v.verifier(ctx)
	if err != nil {
		return Principal{}, err
	}
	st := &verifyState{}
	tok, err := idv.Verify(context.WithValue(ctx, verifyStateKey{}, st), raw)
	if err != nil {
		return Principal{}, v.classify(st, err)
	}
	c, err := decodeClaims(st.payload, v.claim)
	if err != nil {
		return Principal{}, invalid("malformed claims", err)
	}
	now := v.now()
	switch {
	case c.Expiry.IsZero():
		return Principal{}, invalid("no expiry", nil)
	case !now.Before(c.Expiry.Add(v.skew)):
		return Principal{}, invalid("token expired", nil)
	case !c.NotBefore.IsZero() && now.Add(v.skew).Before(c.NotBefore):
		return Principal{}, invalid("token not valid yet", nil)
	case !slices.Contains(c.Audience, v.clientID):
		return Principal{}, invalid("ID token not issued for this client", nil)
	case len(c.Audience) > 1 && c.AuthorizedParty != "" && c.AuthorizedParty != v.clientID:
		return Principal{}, invalid("ID token authorized for another party", nil)
	case nonce == "" || c.Nonce != nonce:
		return Principal{}, invalid("nonce mismatch", nil)
	case c.Subject == "":
		return Principal{}, invalid("no subject", nil)
	case !c.HasLogin || c.Login == "" || strings.HasPrefix(c.Login, "service-account-"):
		return Principal{}, invalid("no "+v.claim+" claim", nil)
	}
	switch strings.ToLower(c.Type) {
	case "refresh", "offline", "logout", "bearer":
		return Principal{}, invalid("not an ID token", nil)
	}
	if isAccessToken(c, headerType(jws)) {
		return Principal{}, invalid("not an ID token", nil)
	}
	if accessToken != "" && tok.AccessTokenHash != "" {
		if !atHashMatches(jws, accessToken, tok.AccessTokenHash) {
			return Principal{}, invalid("at_hash mismatch", nil)
		}
	}
	return Principal{Subject: c.Subject, ClientID: v.clientID, AuthorizedParty: c.AuthorizedParty,
		Login: c.Login, Expiry: c.Expiry, Scopes: c.Scopes}, nil
}

// atHashMatches checks OpenID Connect Core §3.1.3.6 for the SHA-256 based
// algorithms accepted here.
func atHashMatches(jws *jose.JSONWebSignature, accessToken, atHash string) bool {
	if len(jws.Signatures) != 1 {
		return false
	}
	sum := sha256.Sum256([]byte(accessToken))
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2]) == atHash
}
