package auth_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/passerelle-sante/passerelle/pkg/auth"
)

func TestWebLoginTokens(t *testing.T) {
	e := newEnv(t)
	v := e.verifier("http")
	ctx := context.Background()
	ep, err := v.Endpoints(ctx)
	if err != nil || ep.Authorization != e.issuer+"/authorize" || ep.Token != e.issuer+"/token" || ep.EndSession != e.issuer+"/logout" {
		t.Fatalf("endpoints %+v %v", ep, err)
	}
	verifier, challenge := pkce()
	status, cb := e.login(testUsers[0].Login, testUsers[0].Password, challenge)
	if status != http.StatusOK || cb == nil {
		t.Fatalf("login: %d", status)
	}
	redirect := e.callback.URL + "/auth/callback"
	// A wrong verifier burns the code (PKCE).
	if _, err := v.Exchange(ctx, auth.CodeExchange{Code: cb.Get("code"), CodeVerifier: strings.Repeat("x", 43), RedirectURI: redirect, ClientSecret: webSecret}); !errors.Is(err, auth.ErrExchange) {
		t.Fatalf("wrong verifier: %v", err)
	}
	_, cb = e.login(testUsers[0].Login, testUsers[0].Password, challenge)
	tok, err := v.Exchange(ctx, auth.CodeExchange{Code: cb.Get("code"), CodeVerifier: verifier, RedirectURI: redirect, ClientSecret: webSecret})
	if err != nil {
		t.Fatal(err)
	}
	p, err := v.VerifyIDToken(ctx, tok.IDToken, "n-456", tok.AccessToken)
	if err != nil || p.Login != testUsers[0].Login || p.IsSystem {
		t.Fatalf("ID token: %+v %v", p, err)
	}
	// The same code again is refused.
	if _, err := v.Exchange(ctx, auth.CodeExchange{Code: cb.Get("code"), CodeVerifier: verifier, RedirectURI: redirect, ClientSecret: webSecret}); !errors.Is(err, auth.ErrExchange) {
		t.Errorf("code reused: %v", err)
	}
	key, kid := signingKey(t, e.dir)
	idClaims := func(change func(map[string]any)) string {
		c := e.claimsFor(testUsers[0].Login)
		c["typ"], c["nonce"] = "ID", "n-456"
		if change != nil {
			change(c)
		}
		return sign(t, jose.RS256, key, kid, c)
	}
	if _, err := v.VerifyIDToken(ctx, idClaims(nil), "n-456", ""); err != nil {
		t.Fatalf("well-formed ID token refused: %v", err)
	}
	cases := map[string]struct {
		token, nonce, access string
	}{
		"another login's nonce": {idClaims(nil), "n-other", ""},
		"no nonce":              {idClaims(func(c map[string]any) { delete(c, "nonce") }), "n-456", ""},
		"expired":               {idClaims(func(c map[string]any) { c["exp"] = e.clock.Now().Add(-time.Minute).Unix() }), "n-456", ""},
		"other audience":        {idClaims(func(c map[string]any) { c["aud"] = []string{"other"} }), "n-456", ""},
		"wrong issuer":          {idClaims(func(c map[string]any) { c["iss"] = "https://evil.example" }), "n-456", ""},
		"access token":          {idClaims(func(c map[string]any) { c["typ"] = "Bearer" }), "n-456", ""},
		"no practitioner claim": {idClaims(func(c map[string]any) { delete(c, "preferred_username") }), "n-456", ""},
		"at_hash of another":    {tok.IDToken, "n-456", tok.AccessToken + "x"},
		"forged signature":      {tok.IDToken[:len(tok.IDToken)-4] + "AAAA", "n-456", ""},
	}
	for name, tc := range cases {
		if _, err := v.VerifyIDToken(ctx, tc.token, tc.nonce, tc.access); !errors.Is(err, auth.ErrInvalidToken) {
			t.Errorf("%s: %v, want an invalid token", name, err)
		}
	}
	// An ID token is never a bearer token for the API.
	if _, err := v.Verify(ctx, tok.IDToken); !errors.Is(err, auth.ErrInvalidToken) {
		t.Errorf("ID token as bearer: %v", err)
	}
}
