package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/passerelle-sante/passerelle/pkg/auth"
	"github.com/passerelle-sante/passerelle/pkg/auth/devidp"
)

func mustVerify(t *testing.T, v *auth.Verifier, tok string) auth.Principal {
	t.Helper()
	p, err := v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return p
}

// mustReject checks that the token is refused as invalid, for the reason
// given (as it appears in the WWW-Authenticate challenge).
func mustReject(t *testing.T, v *auth.Verifier, tok, reason string) {
	t.Helper()
	p, err := v.Verify(context.Background(), tok)
	if err == nil {
		t.Fatalf("Verify accepted the token: %+v", p)
	}
	if !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("Verify error %v does not wrap ErrInvalidToken", err)
	}
	ch := auth.Challenge(err)
	if !strings.Contains(ch, `error="invalid_token"`) || !strings.Contains(ch, reason) {
		t.Fatalf("challenge %s, want reason %q (error: %v)", ch, reason, err)
	}
	if strings.Contains(err.Error(), tok) || strings.Contains(ch, tok) {
		t.Fatal("the error echoes the token")
	}
}

func TestClientCredentials(t *testing.T) {
	e := newEnv(t)
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			v := e.verifier(mode)
			hits := e.hits.Load()
			for _, method := range []string{"basic", "post"} {
				form := url.Values{"grant_type": {"client_credentials"}}
				user, pass := systemClient, systemSecret
				if method == "post" {
					form.Set("client_id", systemClient)
					form.Set("client_secret", systemSecret)
					user, pass = "", ""
				}
				status, tr := postToken(t, e.srv.Client(), e.issuer, form, user, pass)
				if status != http.StatusOK || tr.TokenType != "Bearer" || tr.ExpiresIn != 3600 || tr.AccessToken == "" {
					t.Fatalf("%s: token endpoint %d %+v", method, status, tr)
				}
				hits++ // the token request itself
				p := mustVerify(t, v, tr.AccessToken)
				if !p.IsSystem || p.ClientID != systemClient || p.AuthorizedParty != systemClient ||
					p.Login != "" || p.Subject != "service-account-"+systemClient {
					t.Errorf("%s: principal %+v", method, p)
				}
				if want := start.Add(time.Hour); !p.Expiry.Equal(want) {
					t.Errorf("expiry %v, want %v", p.Expiry, want)
				}
			}
			if mode == "in-process" && e.hits.Load() != hits {
				t.Errorf("in-process verifier went over the network: %d requests, want %d", e.hits.Load(), hits)
			}
		})
	}
}

func TestAuthorizationCodeFlow(t *testing.T) {
	e := newEnv(t)
	verifier, challenge := pkce()
	status, cb := e.login("ide.martin", "ide.martin", challenge)
	if status != http.StatusOK || cb == nil {
		t.Fatalf("login: status %d, callback %v", status, cb)
	}
	if cb.Get("state") != "st-123" || cb.Get("iss") != e.issuer || cb.Get("code") == "" {
		t.Fatalf("callback query %v", cb)
	}
	status, tr := e.exchange(cb.Get("code"), verifier)
	if status != http.StatusOK || tr.TokenType != "Bearer" || tr.ExpiresIn != 3600 || tr.IDToken == "" {
		t.Fatalf("exchange: %d %+v", status, tr)
	}
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			v := e.verifier(mode)
			p := mustVerify(t, v, tr.AccessToken)
			if p.Login != "ide.martin" || p.IsSystem || p.ClientID != webClient || p.AuthorizedParty != webClient ||
				!slices.Equal(p.Scopes, []string{"openid", "profile"}) || p.Subject == "" {
				t.Errorf("principal %+v", p)
			}
			// The ID token names the client in aud, but it is not a
			// credential for the API.
			mustReject(t, v, tr.IDToken, "not an access token")
		})
	}
	// The subject is stable: a minted token for the same login has it.
	v := e.verifier("in-process")
	if a, b := mustVerify(t, v, tr.AccessToken), mustVerify(t, v, e.mint("ide.martin", 0)); a.Subject != b.Subject {
		t.Errorf("subjects differ: %s, %s", a.Subject, b.Subject)
	}
	// Neither the password nor a token reached the log.
	logs := e.logs.String()
	if strings.Contains(logs, tr.AccessToken) || strings.Contains(logs, "password=") || strings.Contains(logs, cb.Get("code")) {
		t.Errorf("secrets in the log:\n%s", logs)
	}
}

func TestCodeExchangeFailures(t *testing.T) {
	e := newEnv(t)
	t.Run("wrong verifier", func(t *testing.T) {
		_, challenge := pkce()
		other, _ := pkce()
		_, cb := e.login("ide.martin", "ide.martin", challenge)
		if status, tr := e.exchange(cb.Get("code"), other); status != http.StatusBadRequest || tr.Error != "invalid_grant" {
			t.Fatalf("exchange: %d %+v", status, tr)
		}
	})
	t.Run("code reused", func(t *testing.T) {
		verifier, challenge := pkce()
		_, cb := e.login("ide.martin", "ide.martin", challenge)
		if status, tr := e.exchange(cb.Get("code"), verifier); status != http.StatusOK {
			t.Fatalf("first exchange: %d %+v", status, tr)
		}
		if status, tr := e.exchange(cb.Get("code"), verifier); status != http.StatusBadRequest || tr.Error != "invalid_grant" {
			t.Fatalf("second exchange: %d %+v", status, tr)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		_, challenge := pkce()
		status, cb := e.login("ide.martin", "wrong", challenge)
		if status != http.StatusUnauthorized || cb != nil {
			t.Fatalf("login: status %d, callback %v", status, cb)
		}
	})
}

func TestAudienceRule(t *testing.T) {
	// A provider whose tokens are for another audience ("account", the
	// Keycloak default) stands for a misconfigured or foreign realm.
	e := newEnv(t, func(c *devidp.Config) { c.Audience = "account" })
	v := e.verifier("in-process")
	priv, kid := signingKey(t, e.dir)

	t.Run("wrong audience", func(t *testing.T) {
		mustReject(t, v, e.mint("ide.martin", 0), "not issued for this service")
		mustReject(t, v, e.mint(systemClient, 0), "not issued for this service")
	})
	t.Run("azp without aud", func(t *testing.T) {
		c := e.claimsFor("ide.martin")
		delete(c, "aud")
		if p := mustVerify(t, v, sign(t, jose.RS256, priv, kid, c)); p.Login != "ide.martin" {
			t.Errorf("principal %+v", p)
		}
	})
	t.Run("azp with another aud", func(t *testing.T) {
		// What the web app's own tokens look like at Keycloak: aud
		// "account", azp the web client.
		verifier, challenge := pkce()
		_, cb := e.login("ide.martin", "ide.martin", challenge)
		_, tr := e.exchange(cb.Get("code"), verifier)
		if p := mustVerify(t, v, tr.AccessToken); p.Login != "ide.martin" {
			t.Errorf("principal %+v", p)
		}
	})
	t.Run("aud among several", func(t *testing.T) {
		c := e.claimsFor("ide.martin")
		c["aud"] = []string{"account", webClient}
		c["azp"] = "other-app"
		mustVerify(t, v, sign(t, jose.RS256, priv, kid, c))
	})
	t.Run("neither", func(t *testing.T) {
		c := e.claimsFor("ide.martin")
		c["aud"] = "account"
		c["azp"] = "other-app"
		mustReject(t, v, sign(t, jose.RS256, priv, kid, c), "not issued for this service")
	})
}

func TestTimeChecks(t *testing.T) {
	e := newEnv(t)
	v := e.verifier("in-process")
	priv, kid := signingKey(t, e.dir)

	t.Run("expired", func(t *testing.T) {
		tok := e.mint("ide.martin", time.Minute)
		e.clock.Advance(time.Minute + 10*time.Second) // past exp, within the 30 s skew
		mustVerify(t, v, tok)
		e.clock.Advance(25 * time.Second)
		mustReject(t, v, tok, "token expired")
	})
	t.Run("not yet valid", func(t *testing.T) {
		c := e.claimsFor("ide.martin")
		c["nbf"] = e.clock.Now().Add(20 * time.Second).Unix() // within skew
		mustVerify(t, v, sign(t, jose.RS256, priv, kid, c))
		c["nbf"] = e.clock.Now().Add(5 * time.Minute).Unix() // go-oidc alone would allow this
		mustReject(t, v, sign(t, jose.RS256, priv, kid, c), "token not valid yet")
	})
	t.Run("issuer clock ahead", func(t *testing.T) {
		// A provider whose clock runs ahead mints tokens whose nbf is
		// in our future.
		ahead := newEnv(t, func(c *devidp.Config) {
			c.Now = func() time.Time { return start.Add(10 * time.Minute) }
		})
		va := ahead.verifier("in-process")
		mustReject(t, va, ahead.mint("ide.martin", 0), "token not valid yet")
	})
	t.Run("no expiry", func(t *testing.T) {
		c := e.claimsFor("ide.martin")
		delete(c, "exp")
		mustReject(t, v, sign(t, jose.RS256, priv, kid, c), "no expiry")
	})
	t.Run("custom skew", func(t *testing.T) {
		strict := e.verifier("in-process", func(c *auth.Config) { c.Skew = time.Second })
		tok := e.mint("ide.martin", time.Minute)
		e.clock.Advance(time.Minute + 2*time.Second)
		mustReject(t, strict, tok, "token expired")
	})
}

func TestSignatureChecks(t *testing.T) {
	e := newEnv(t)
	v := e.verifier("in-process")
	priv, kid := signingKey(t, e.dir)
	good := e.mint("ide.martin", 0)
	mustVerify(t, v, good)

	stranger, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		token  func() string
		reason string
	}{
		{"unknown key", func() string {
			return sign(t, jose.RS256, stranger, kidOf(t, &stranger.PublicKey), e.claimsFor("ide.martin"))
		}, "unknown signing key"},
		{"known kid, other key", func() string {
			return sign(t, jose.RS256, stranger, kid, e.claimsFor("ide.martin"))
		}, "bad signature"},
		{"tampered payload", func() string {
			parts := segments(t, good)
			payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
			var c map[string]any
			json.Unmarshal(payload, &c)
			c["preferred_username"] = "dr.bernard"
			b, _ := json.Marshal(c)
			return parts[0] + "." + base64.RawURLEncoding.EncodeToString(b) + "." + parts[2]
		}, "bad signature"},
		{"alg none", func() string {
			h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
			b, _ := json.Marshal(e.claimsFor("ide.martin"))
			return h + "." + base64.RawURLEncoding.EncodeToString(b) + "."
		}, "unsupported algorithm"},
		{"alg none with the real signature", func() string {
			parts := segments(t, good)
			h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","kid":"` + kid + `"}`))
			return h + "." + parts[1] + "." + parts[2]
		}, "unsupported algorithm"},
		{"HS256 keyed with the public key", func() string {
			// The classic confusion attack: the public key, known to all,
			// used as an HMAC secret.
			pub, _ := json.Marshal(jose.JSONWebKey{Key: &priv.PublicKey})
			return sign(t, jose.HS256, pub, kid, e.claimsFor("ide.martin"))
		}, "unsupported algorithm"},
		{"RS384", func() string {
			return sign(t, jose.RS384, priv, kid, e.claimsFor("ide.martin"))
		}, "unsupported algorithm"},
		{"wrong issuer", func() string {
			c := e.claimsFor("ide.martin")
			c["iss"] = "https://elsewhere.example/realms/x"
			return sign(t, jose.RS256, priv, kid, c)
		}, "wrong issuer"},
		{"no subject", func() string {
			c := e.claimsFor("ide.martin")
			delete(c, "sub")
			return sign(t, jose.RS256, priv, kid, c)
		}, "no subject"},
		{"refresh token", func() string {
			c := e.claimsFor("ide.martin")
			c["typ"] = "Refresh"
			return sign(t, jose.RS256, priv, kid, c)
		}, "not an access token"},
		{"practitioner claim not a string", func() string {
			c := e.claimsFor("ide.martin")
			c["preferred_username"] = []string{"ide.martin"}
			return sign(t, jose.RS256, priv, kid, c)
		}, "malformed claims"},
		{"not a JWT", func() string { return "abc.def.ghi" }, "malformed token"},
		{"JSON serialisation", func() string {
			parts := segments(t, good)
			return `{"protected":"` + parts[0] + `","payload":"` + parts[1] + `","signature":"` + parts[2] + `"}`
		}, "malformed token"},
		{"whitespace inside", func() string { return strings.Replace(good, ".", ". ", 1) }, "malformed token"},
		{"JWE-shaped", func() string { return "a.b.c.d.e" }, "malformed token"},
		{"huge", func() string { return strings.Repeat("a", 40<<10) }, "token too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Each case is a first sight of its kid for the key set:
			// let the pacing allow a fetch, as it would in real time.
			e.clock.Advance(10 * time.Second)
			mustReject(t, v, tt.token(), tt.reason)
		})
	}
	if _, err := v.Verify(context.Background(), ""); !errors.Is(err, auth.ErrNoToken) {
		t.Errorf("empty token: %v", err)
	}
}

func TestKeyRotation(t *testing.T) {
	e := newEnv(t)
	v := e.verifier("http")
	old := e.mint("ide.martin", 3*time.Hour)
	mustVerify(t, v, old)
	oldKid := header(t, old)["kid"].(string)

	newKid, err := e.idp.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	fresh := e.mint("dr.bernard", 3*time.Hour)
	if got := header(t, fresh)["kid"]; got != newKid || newKid == oldKid {
		t.Fatalf("new token signed by %v, want %s (old %s)", got, newKid, oldKid)
	}
	if ids := e.idp.KeyIDs(); !slices.Equal(ids, []string{oldKid, newKid}) {
		t.Fatalf("KeyIDs() = %v", ids)
	}

	// The key set was fetched a moment ago: an unknown kid does not make
	// the verifier fetch it again straight away.
	fetches := e.jwksHits.Load()
	mustReject(t, v, fresh, "unknown signing key")
	if e.jwksHits.Load() != fetches {
		t.Fatal("key set refetched within the pacing interval")
	}
	e.clock.Advance(6 * time.Second)
	if p := mustVerify(t, v, fresh); p.Login != "dr.bernard" {
		t.Errorf("principal %+v", p)
	}
	if e.jwksHits.Load() != fetches+1 {
		t.Fatalf("%d key set fetches, want 1", e.jwksHits.Load()-fetches)
	}
	mustVerify(t, v, old) // still published

	// Once withdrawn, the old key stops verifying when the cached key set
	// ages out; tokens of the current key carry on.
	if err := e.idp.RemoveKey(newKid); err == nil {
		t.Fatal("removed the current key")
	}
	if err := e.idp.RemoveKey(oldKid); err != nil {
		t.Fatal(err)
	}
	mustVerify(t, v, old) // cached
	e.clock.Advance(61 * time.Minute)
	mustReject(t, v, old, "unknown signing key")
	mustVerify(t, v, fresh)
}

func TestUnknownKidsArePaced(t *testing.T) {
	e := newEnv(t)
	v := e.verifier("http")
	mustVerify(t, v, e.mint("ide.martin", 0))
	fetches := e.jwksHits.Load()
	stranger, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok := sign(t, jose.ES256, stranger, "made-up-"+string(rune('a'+i)), e.claimsFor("ide.martin"))
			if _, err := v.Verify(context.Background(), tok); !errors.Is(err, auth.ErrInvalidToken) {
				t.Errorf("Verify: %v", err)
			}
		}()
	}
	wg.Wait()
	if n := e.jwksHits.Load() - fetches; n != 0 {
		t.Fatalf("%d key set fetches for made-up kids, want 0", n)
	}
	e.clock.Advance(6 * time.Second)
	for range 5 {
		v.Verify(context.Background(), sign(t, jose.ES256, stranger, "other", e.claimsFor("ide.martin")))
	}
	if n := e.jwksHits.Load() - fetches; n != 1 {
		t.Fatalf("%d key set fetches, want 1", n)
	}
}

func TestLazyDiscovery(t *testing.T) {
	e := newEnv(t)
	e.down.Store(true)
	v := e.verifier("http") // does not fail: the issuer may start after us
	tok := e.mint("ide.martin", 0)

	_, err := v.Verify(context.Background(), tok)
	if !errors.Is(err, auth.ErrUnavailable) || !strings.Contains(err.Error(), "retry") {
		t.Fatalf("Verify while the issuer is down: %v", err)
	}
	if errors.Is(err, auth.ErrInvalidToken) {
		t.Fatal("unavailability reported as a bad token")
	}
	e.down.Store(false)
	hits := e.hits.Load()
	if _, err := v.Verify(context.Background(), tok); !errors.Is(err, auth.ErrUnavailable) {
		t.Fatalf("Verify right after a failure: %v", err)
	}
	if e.hits.Load() != hits {
		t.Fatal("discovery retried within the pacing interval")
	}
	e.clock.Advance(6 * time.Second)
	mustVerify(t, v, tok)

	// Garbage is refused without any call to the provider.
	e.down.Store(true)
	v2 := e.verifier("http")
	hits = e.hits.Load()
	mustReject(t, v2, "not-a-token", "malformed token")
	if e.hits.Load() != hits {
		t.Fatal("garbage triggered discovery")
	}
}

func TestKeySetUnavailable(t *testing.T) {
	e := newEnv(t)
	v := e.verifier("http")
	tok := e.mint("ide.martin", 0)
	mustVerify(t, v, tok)
	e.down.Store(true)
	mustVerify(t, v, tok) // known key: no need for the provider

	stranger, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	e.clock.Advance(6 * time.Second)
	_, err := v.Verify(context.Background(), sign(t, jose.ES256, stranger, "new-kid", e.claimsFor("ide.martin")))
	if !errors.Is(err, auth.ErrUnavailable) {
		t.Fatalf("unknown kid with the provider down: %v", err)
	}
}

func TestNewVerifierConfig(t *testing.T) {
	ctx := context.Background()
	for _, issuer := range []string{"", "issuer", "/dev-idp", "ftp://x/y", "http://", "https://x/y?a=b", "https://x/y#f", "https://u:p@x/"} {
		if _, err := auth.NewVerifier(ctx, auth.Config{Issuer: issuer, ClientID: "c"}); err == nil {
			t.Errorf("issuer %q accepted", issuer)
		}
	}
	if _, err := auth.NewVerifier(ctx, auth.Config{Issuer: "https://x/y"}); err == nil {
		t.Error("empty client id accepted")
	}
	if _, err := auth.NewVerifier(ctx, auth.Config{Issuer: "https://x/y", ClientID: "c", Skew: -time.Second}); err == nil {
		t.Error("negative skew accepted")
	}

	// A discovery document naming another issuer is a configuration error
	// that retrying cannot fix.
	e := newEnv(t)
	_, err := auth.NewVerifier(ctx, auth.Config{
		Issuer: strings.Replace(e.issuer, "127.0.0.1", "localhost", 1), ClientID: webClient,
		HTTPClient: e.srv.Client(),
	})
	if err == nil || !strings.Contains(err.Error(), "did not match") {
		t.Errorf("issuer mismatch: %v", err)
	}
}

func TestPractitionerClaim(t *testing.T) {
	e := newEnv(t)
	priv, kid := signingKey(t, e.dir)

	t.Run("configured claim", func(t *testing.T) {
		v := e.verifier("in-process", func(c *auth.Config) { c.PractitionerClaim = "SubjectNameID" })
		c := e.claimsFor("ide.martin")
		c["SubjectNameID"] = "810002345678"
		if p := mustVerify(t, v, sign(t, jose.RS256, priv, kid, c)); p.Login != "810002345678" || p.IsSystem {
			t.Errorf("principal %+v", p)
		}
		// preferred_username alone is not the configured claim.
		if p := mustVerify(t, v, e.mint("ide.martin", 0)); !p.IsSystem || p.Login != "" {
			t.Errorf("principal %+v", p)
		}
	})
	t.Run("keycloak service account", func(t *testing.T) {
		v := e.verifier("in-process")
		c := e.claimsFor("service-account-chu-demo-dpi")
		c["client_id"] = systemClient
		c["azp"] = systemClient
		c["aud"] = []string{webClient, "account"}
		if p := mustVerify(t, v, sign(t, jose.RS256, priv, kid, c)); !p.IsSystem || p.Login != "" || p.ClientID != systemClient {
			t.Errorf("principal %+v", p)
		}
	})
}

func TestConcurrentVerify(t *testing.T) {
	e := newEnv(t)
	v := e.verifier("http")
	tokens := []string{e.mint("ide.martin", 0), e.mint("dr.bernard", 0), e.mint(systemClient, 0)}
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := v.Verify(context.Background(), tokens[i%len(tokens)]); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
}

// TestES256 checks the second accepted algorithm against a minimal issuer
// that publishes an EC key, next to keys the verifier must skip.
func TestES256(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var issuer string
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{
			"issuer": issuer, "jwks_uri": issuer + "/certs",
			"authorization_endpoint": issuer + "/auth", "token_endpoint": issuer + "/token",
			"id_token_signing_alg_values_supported": []string{"ES256"},
		})
	})
	mux.HandleFunc("GET /certs", func(w http.ResponseWriter, r *http.Request) {
		keys, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
			{Key: &ec.PublicKey, KeyID: "ec-1", Algorithm: "ES256", Use: "sig"},
			{Key: []byte("a shared secret, at least 32 bytes long"), KeyID: "hmac"},
		}})
		w.Write(keys)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	issuer = srv.URL
	now := time.Now()
	v, err := auth.NewVerifier(context.Background(), auth.Config{Issuer: issuer, ClientID: webClient, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	claims := map[string]any{
		"iss": issuer, "sub": "s", "aud": webClient, "exp": now.Add(time.Hour).Unix(),
		"preferred_username": "dr.petit", "scope": "openid", "typ": "Bearer",
	}
	if p := mustVerify(t, v, sign(t, jose.ES256, ec, "ec-1", claims)); p.Login != "dr.petit" {
		t.Errorf("principal %+v", p)
	}
	mustReject(t, v, sign(t, jose.HS256, []byte("a shared secret, at least 32 bytes long"), "hmac", claims), "unsupported algorithm")
}

func FuzzVerify(f *testing.F) {
	dir := f.TempDir()
	p, err := devidp.New(devidp.Config{DataDir: dir, Issuer: "http://passerelle.test/dev-idp",
		Users: testUsers, Clients: []devidp.Client{{ID: systemClient, Secret: systemSecret}}})
	if err != nil {
		f.Fatal(err)
	}
	v, err := auth.NewVerifier(context.Background(), auth.Config{
		Issuer: p.Issuer(), ClientID: "passerelle", HTTPClient: p.HTTPClient(),
	})
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"ide.martin", systemClient} {
		tok, err := p.Mint(s, 0)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(tok)
		f.Add(tok[:len(tok)-3])
	}
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, raw string) {
		pr, err := v.Verify(context.Background(), raw)
		if err != nil {
			if !errors.Is(err, auth.ErrInvalidToken) && !errors.Is(err, auth.ErrNoToken) {
				t.Fatalf("untyped error %v", err)
			}
			if raw != "" && len(raw) > 8 && strings.Contains(err.Error(), raw) {
				t.Fatal("error echoes the token")
			}
			return
		}
		if pr.Subject == "" || pr.Expiry.IsZero() || (pr.IsSystem == (pr.Login != "")) {
			t.Fatalf("accepted token yields principal %+v", pr)
		}
	})
}

func TestKeysPersisted(t *testing.T) {
	dir := t.TempDir() // no seeded key: the first start creates it
	cfg := devidp.Config{
		DataDir: dir, Issuer: "http://passerelle.test/dev-idp", Users: testUsers,
		Clients: []devidp.Client{{ID: systemClient, Secret: systemSecret}},
	}
	first, err := devidp.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	person, err := first.Mint("ide.martin", 0)
	if err != nil {
		t.Fatal(err)
	}
	system, err := first.Mint(systemClient, 0)
	if err != nil {
		t.Fatal(err)
	}

	// A restart: a new provider on the same data directory, verified
	// through its own in-process transport.
	second, err := devidp.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewVerifier(context.Background(), auth.Config{
		Issuer: second.Issuer(), ClientID: webClient, HTTPClient: second.HTTPClient(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if p := mustVerify(t, v, person); p.Login != "ide.martin" {
		t.Errorf("principal %+v", p)
	}
	if p := mustVerify(t, v, system); !p.IsSystem {
		t.Errorf("principal %+v", p)
	}

	// "passerelle dev token" signs with the same keys, without a server.
	tok, err := devidp.MintFromDataDir(dir, cfg.Issuer, "", "ide.martin", cfg.Users, cfg.Clients, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if p := mustVerify(t, v, tok); p.Login != "ide.martin" || p.Expiry.Sub(time.Now()) > 5*time.Minute {
		t.Errorf("principal %+v", p)
	}
	if _, err := devidp.MintFromDataDir(dir, cfg.Issuer, "", "nobody", cfg.Users, cfg.Clients, 0); err == nil ||
		!strings.Contains(err.Error(), "chu-demo-dpi, dr.bernard, ide.martin") {
		t.Errorf("unknown subject: %v", err)
	}

	_, err = devidp.MintFromDataDir(t.TempDir(), cfg.Issuer, "", "ide.martin", cfg.Users, cfg.Clients, 0)
	if err == nil || !strings.Contains(err.Error(), "start passerelle once first") {
		t.Errorf("without keys: %v", err)
	}
}

// signTyped signs claims like sign, with typ in the protected header.
func signTyped(t *testing.T, key any, kid, typ string, claims map[string]any) string {
	t.Helper()
	return signWith(t, jose.RS256, key, kid, (&jose.SignerOptions{}).WithType(jose.ContentType(typ)), claims)
}

// TestAccessTokenType: only a token typed as an access token is a bearer
// credential — RFC 9068's header typ at+jwt (oidc-provider, the development
// provider) or Keycloak's typ claim Bearer. An ID token of an issuer that
// types neither carries aud = the client and must not pass.
func TestAccessTokenType(t *testing.T) {
	e := newEnv(t)
	v := e.verifier("in-process")
	priv, kid := signingKey(t, e.dir)
	untyped := func() map[string]any {
		c := e.claimsFor("ide.martin")
		delete(c, "typ")
		return c
	}
	withTyp := func(typ string) map[string]any {
		c := e.claimsFor("ide.martin")
		c["typ"] = typ
		return c
	}
	accepted := []struct {
		name  string
		token string
	}{
		{"typ claim Bearer (Keycloak)", sign(t, jose.RS256, priv, kid, withTyp("Bearer"))},
		{"header at+jwt, no typ claim (RFC 9068)", signTyped(t, priv, kid, "at+jwt", untyped())},
		{"header application/at+jwt", signTyped(t, priv, kid, "application/at+jwt", untyped())},
		{"header at+jwt and typ claim Bearer", signTyped(t, priv, kid, "at+jwt", withTyp("Bearer"))},
	}
	for _, c := range accepted {
		t.Run(c.name, func(t *testing.T) {
			if p := mustVerify(t, v, c.token); p.Login != "ide.martin" {
				t.Errorf("login %q", p.Login)
			}
		})
	}
	refused := []struct {
		name  string
		token string
	}{
		{"no typ at all (an untyped ID token)", sign(t, jose.RS256, priv, kid, untyped())},
		{"header JWT, no typ claim", signTyped(t, priv, kid, "JWT", untyped())},
		{"typ claim ID (Keycloak ID token)", sign(t, jose.RS256, priv, kid, withTyp("ID"))},
		{"header at+jwt but typ claim ID", signTyped(t, priv, kid, "at+jwt", withTyp("ID"))},
		{"typ claim Logout", sign(t, jose.RS256, priv, kid, withTyp("Logout"))},
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) { mustReject(t, v, c.token, "not an access token") })
	}
}
