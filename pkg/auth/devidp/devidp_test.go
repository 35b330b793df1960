package devidp_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/auth/devidp"
	"github.com/passerelle-sante/passerelle/pkg/clock"
)

const (
	issuer      = "http://passerelle.test/dev-idp"
	callback    = "http://app.test/auth/callback"
	afterLogout = "http://app.test/"
)

var start = time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)

var (
	seedOnce sync.Once
	seedDir  string
	seedErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if seedDir != "" {
		os.RemoveAll(seedDir)
	}
	os.Exit(code)
}

// seedKeys copies one key generated once into dataDir: RSA key generation
// is slow under the race detector. Tests of key creation make their own.
func seedKeys(t *testing.T, dataDir string) {
	t.Helper()
	seedOnce.Do(func() {
		seedDir, seedErr = os.MkdirTemp("", "devidp-seed-")
		if seedErr == nil {
			_, seedErr = devidp.New(devidp.Config{DataDir: seedDir, Issuer: issuer})
		}
	})
	if seedErr != nil {
		t.Fatal(seedErr)
	}
	dst := filepath.Join(dataDir, "dev-idp")
	if err := os.MkdirAll(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(seedDir, "dev-idp", "*.pem"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, filepath.Base(f)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

type fixture struct {
	t     *testing.T
	clock *clock.Fake
	dir   string
	p     *devidp.Provider
	logs  *bytes.Buffer
}

func testConfig(dir string, c *clock.Fake, logs io.Writer) devidp.Config {
	return devidp.Config{
		DataDir: dir,
		Issuer:  issuer,
		Users: []devidp.User{
			{Login: "ide.martin", Password: "ide.martin", Name: "Claire Martin"},
			{Login: "admin", Password: "admin"},
		},
		Clients: []devidp.Client{
			{ID: "passerelle", Secret: "web-secret", RedirectURIs: []string{callback}, PostLogoutRedirectURIs: []string{afterLogout}},
			{ID: "mobile", Public: true, RedirectURIs: []string{"http://127.0.0.1:9999/cb"}},
			{ID: "chu-demo-dpi", Secret: "chu-demo-dpi"},
		},
		Now:    c.Now,
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
	}
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, clock: clock.NewFake(start), dir: t.TempDir(), logs: &bytes.Buffer{}}
	seedKeys(t, f.dir)
	var err error
	f.p, err = devidp.New(testConfig(f.dir, f.clock, f.logs))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// client is a browser with cookies that talks to the provider in process
// and stops at redirects, so the test sees where it is sent.
func (f *fixture) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{
		Jar:       jar,
		Transport: f.p.Transport(),
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

func pkce() (verifier, challenge string) {
	b := make([]byte, 32)
	rand.Read(b)
	verifier = base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

func authQuery(clientID, redirect, challenge string) url.Values {
	return url.Values{
		"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirect},
		"scope": {"openid profile email"}, "state": {"xyz"}, "nonce": {"n1"},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"},
	}
}

type response struct {
	status int
	header http.Header
	body   string
}

func do(t *testing.T, c *http.Client, req *http.Request) response {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, string(b)}
}

func get(t *testing.T, c *http.Client, u string) response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return do(t, c, req)
}

func postForm(t *testing.T, c *http.Client, u string, form url.Values, basicUser, basicPass string) response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicUser != "" {
		req.SetBasicAuth(basicUser, basicPass)
	}
	return do(t, c, req)
}

var hiddenInput = regexp.MustCompile(`<input type="hidden" name="([^"]*)" value="([^"]*)">`)

// hidden returns the hidden fields of a login page.
func hidden(page string) url.Values {
	v := url.Values{}
	for _, m := range hiddenInput.FindAllStringSubmatch(page, -1) {
		v.Set(html.UnescapeString(m[1]), html.UnescapeString(m[2]))
	}
	return v
}

// login opens the form for q, posts the credentials and returns the answer.
func (f *fixture) login(c *http.Client, q url.Values, user, pass string) response {
	f.t.Helper()
	page := get(f.t, c, issuer+"/authorize?"+q.Encode())
	if page.status != http.StatusOK {
		f.t.Fatalf("authorize: %d %s", page.status, page.body)
	}
	form := hidden(page.body)
	form.Set("username", user)
	form.Set("password", pass)
	return postForm(f.t, c, issuer+"/authorize", form, "", "")
}

// code logs in and returns the code from the redirect.
func (f *fixture) code(c *http.Client, clientID, redirect, challenge string) string {
	f.t.Helper()
	r := f.login(c, authQuery(clientID, redirect, challenge), "ide.martin", "ide.martin")
	if r.status != http.StatusSeeOther {
		f.t.Fatalf("login: %d %s", r.status, r.body)
	}
	loc, err := url.Parse(r.header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		f.t.Fatalf("redirect %q", r.header.Get("Location"))
	}
	return loc.Query().Get("code")
}

type tokenResponse struct {
	AccessToken string `json:"access_token"`
	IDToken     string `json:"id_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Scope       string `json:"scope"`
	Error       string `json:"error"`
}

func decodeToken(t *testing.T, r response) tokenResponse {
	t.Helper()
	var tr tokenResponse
	if err := json.Unmarshal([]byte(r.body), &tr); err != nil {
		t.Fatalf("token response %q: %v", r.body, err)
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}
	return tr
}

func claimsOf(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDiscoveryAndJWKS(t *testing.T) {
	f := newFixture(t)
	c := f.client()
	r := get(t, c, issuer+"/.well-known/openid-configuration")
	if r.status != http.StatusOK {
		t.Fatalf("discovery: %d", r.status)
	}
	var doc map[string]any
	json.Unmarshal([]byte(r.body), &doc)
	want := map[string]any{
		"issuer":                 issuer,
		"authorization_endpoint": issuer + "/authorize",
		"token_endpoint":         issuer + "/token",
		"jwks_uri":               issuer + "/jwks",
		"end_session_endpoint":   issuer + "/logout",
	}
	for k, v := range want {
		if doc[k] != v {
			t.Errorf("%s = %v, want %v", k, doc[k], v)
		}
	}
	for k, v := range map[string]string{
		"code_challenge_methods_supported":      "S256",
		"id_token_signing_alg_values_supported": "RS256",
		"grant_types_supported":                 "client_credentials",
	} {
		if !slices.Contains(toStrings(doc[k]), v) {
			t.Errorf("%s = %v, lacks %s", k, doc[k], v)
		}
	}
	if slices.Contains(toStrings(doc["code_challenge_methods_supported"]), "plain") {
		t.Error("plain PKCE advertised")
	}

	r = get(t, c, issuer+"/jwks")
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal([]byte(r.body), &set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("jwks %q: %v", r.body, err)
	}
	k := set.Keys[0]
	if k["kty"] != "RSA" || k["alg"] != "RS256" || k["use"] != "sig" || k["kid"] != f.p.KeyIDs()[0] {
		t.Errorf("jwk %v", k)
	}
	for _, private := range []string{"d", "p", "q", "dp", "dq", "qi"} {
		if _, ok := k[private]; ok {
			t.Errorf("jwks publishes private member %q", private)
		}
	}
}

func toStrings(v any) []string {
	var out []string
	if list, ok := v.([]any); ok {
		for _, x := range list {
			out = append(out, fmt.Sprint(x))
		}
	}
	return out
}

func TestAuthorizationCodeTokens(t *testing.T) {
	f := newFixture(t)
	c := f.client()
	verifier, challenge := pkce()
	r := f.login(c, authQuery("passerelle", callback, challenge), "ide.martin", "ide.martin")
	if r.status != http.StatusSeeOther {
		t.Fatalf("login: %d %s", r.status, r.body)
	}
	loc, _ := url.Parse(r.header.Get("Location"))
	if loc.Host != "app.test" || loc.Path != "/auth/callback" || loc.Query().Get("state") != "xyz" || loc.Query().Get("iss") != issuer {
		t.Fatalf("redirect %s", loc)
	}
	r = postForm(t, c, issuer+"/token", url.Values{
		"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")},
		"redirect_uri": {callback}, "code_verifier": {verifier},
		"client_id": {"passerelle"}, "client_secret": {"web-secret"},
	}, "", "")
	tr := decodeToken(t, r)
	if r.status != http.StatusOK || tr.TokenType != "Bearer" || tr.ExpiresIn != 3600 || tr.Scope != "openid profile" {
		t.Fatalf("token: %d %+v", r.status, tr)
	}
	at := claimsOf(t, tr.AccessToken)
	if at["preferred_username"] != "ide.martin" || at["name"] != "Claire Martin" || at["azp"] != "passerelle" ||
		!slices.Equal(toStrings(at["aud"]), []string{"passerelle"}) || at["iss"] != issuer || at["typ"] != "Bearer" ||
		at["exp"] != float64(start.Add(time.Hour).Unix()) {
		t.Errorf("access token claims %v", at)
	}
	id := claimsOf(t, tr.IDToken)
	if id["nonce"] != "n1" || id["typ"] != "ID" || id["sub"] != at["sub"] || id["at_hash"] == nil {
		t.Errorf("id token claims %v", id)
	}
}

func TestAuthorizationCodeFailures(t *testing.T) {
	f := newFixture(t)
	exchange := func(c *http.Client, code, redirect, verifier, clientID, secret string) (int, string) {
		t.Helper()
		r := postForm(t, c, issuer+"/token", url.Values{
			"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect}, "code_verifier": {verifier},
		}, clientID, secret)
		return r.status, decodeToken(t, r).Error
	}
	tests := []struct {
		name string
		run  func(t *testing.T, c *http.Client) (int, string)
		want string
	}{
		{"wrong verifier", func(t *testing.T, c *http.Client) (int, string) {
			_, ch := pkce()
			other, _ := pkce()
			return exchange(c, f.code(c, "passerelle", callback, ch), callback, other, "passerelle", "web-secret")
		}, "invalid_grant"},
		{"no verifier", func(t *testing.T, c *http.Client) (int, string) {
			_, ch := pkce()
			return exchange(c, f.code(c, "passerelle", callback, ch), callback, "", "passerelle", "web-secret")
		}, "invalid_grant"},
		{"code reused", func(t *testing.T, c *http.Client) (int, string) {
			v, ch := pkce()
			code := f.code(c, "passerelle", callback, ch)
			if st, e := exchange(c, code, callback, v, "passerelle", "web-secret"); st != http.StatusOK {
				t.Fatalf("first use: %d %s", st, e)
			}
			return exchange(c, code, callback, v, "passerelle", "web-secret")
		}, "invalid_grant"},
		{"code consumed by a failed attempt", func(t *testing.T, c *http.Client) (int, string) {
			v, ch := pkce()
			other, _ := pkce()
			code := f.code(c, "passerelle", callback, ch)
			exchange(c, code, callback, other, "passerelle", "web-secret")
			return exchange(c, code, callback, v, "passerelle", "web-secret")
		}, "invalid_grant"},
		{"code expired", func(t *testing.T, c *http.Client) (int, string) {
			v, ch := pkce()
			code := f.code(c, "passerelle", callback, ch)
			f.clock.Advance(61 * time.Second)
			return exchange(c, code, callback, v, "passerelle", "web-secret")
		}, "invalid_grant"},
		{"other redirect_uri", func(t *testing.T, c *http.Client) (int, string) {
			v, ch := pkce()
			return exchange(c, f.code(c, "passerelle", callback, ch), callback+"/x", v, "passerelle", "web-secret")
		}, "invalid_grant"},
		{"code of another client", func(t *testing.T, c *http.Client) (int, string) {
			v, ch := pkce()
			code := f.code(c, "passerelle", callback, ch)
			return exchange(c, code, callback, v, "chu-demo-dpi", "chu-demo-dpi")
		}, "invalid_grant"},
		{"wrong client secret", func(t *testing.T, c *http.Client) (int, string) {
			v, ch := pkce()
			return exchange(c, f.code(c, "passerelle", callback, ch), callback, v, "passerelle", "nope")
		}, "invalid_client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, code := tt.run(t, f.client())
			if code != tt.want {
				t.Fatalf("error %q (status %d), want %q", code, status, tt.want)
			}
			wantStatus := http.StatusBadRequest
			if tt.want == "invalid_client" {
				wantStatus = http.StatusUnauthorized
			}
			if status != wantStatus {
				t.Fatalf("status %d, want %d", status, wantStatus)
			}
		})
	}
}

func TestPublicClient(t *testing.T) {
	f := newFixture(t)
	c := f.client()
	v, ch := pkce()
	code := f.code(c, "mobile", "http://127.0.0.1:9999/cb", ch)
	r := postForm(t, c, issuer+"/token", url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"http://127.0.0.1:9999/cb"},
		"code_verifier": {v}, "client_id": {"mobile"},
	}, "", "")
	if tr := decodeToken(t, r); r.status != http.StatusOK || claimsOf(t, tr.AccessToken)["azp"] != "mobile" {
		t.Fatalf("public client exchange: %d %s", r.status, r.body)
	}
	r = postForm(t, c, issuer+"/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {"mobile"}}, "", "")
	if tr := decodeToken(t, r); r.status != http.StatusBadRequest || tr.Error != "unauthorized_client" {
		t.Fatalf("public client credentials: %d %s", r.status, r.body)
	}
}

func TestLoginForm(t *testing.T) {
	f := newFixture(t)
	_, ch := pkce()

	t.Run("wrong password", func(t *testing.T) {
		c := f.client()
		r := f.login(c, authQuery("passerelle", callback, ch), "ide.martin", "ide.leroy")
		if r.status != http.StatusUnauthorized || r.header.Get("Location") != "" {
			t.Fatalf("status %d, location %q", r.status, r.header.Get("Location"))
		}
		if !strings.Contains(r.body, "Identifiant ou mot de passe incorrect") || !strings.Contains(r.body, `value="ide.martin"`) {
			t.Errorf("page lacks the error or the login:\n%s", r.body)
		}
		if strings.Contains(r.body, "ide.leroy") {
			t.Error("the password is echoed")
		}
		// The form still works after a failure.
		form := hidden(r.body)
		form.Set("username", "ide.martin")
		form.Set("password", "ide.martin")
		if r := postForm(t, c, issuer+"/authorize", form, "", ""); r.status != http.StatusSeeOther {
			t.Errorf("retry: %d", r.status)
		}
	})
	t.Run("unknown user", func(t *testing.T) {
		r := f.login(f.client(), authQuery("passerelle", callback, ch), "nobody", "nobody")
		if r.status != http.StatusUnauthorized || !strings.Contains(r.body, "Identifiant ou mot de passe incorrect") {
			t.Fatalf("status %d", r.status)
		}
	})
	t.Run("no csrf cookie", func(t *testing.T) {
		c := f.client()
		page := get(t, c, issuer+"/authorize?"+authQuery("passerelle", callback, ch).Encode())
		form := hidden(page.body)
		form.Set("username", "ide.martin")
		form.Set("password", "ide.martin")
		jarless := &http.Client{Transport: f.p.Transport(), CheckRedirect: c.CheckRedirect}
		if r := postForm(t, jarless, issuer+"/authorize", form, "", ""); r.status != http.StatusBadRequest {
			t.Fatalf("status %d", r.status)
		}
	})
	t.Run("escaping", func(t *testing.T) {
		q := authQuery("passerelle", callback, ch)
		q.Set("state", `"><script>alert(1)</script>`)
		r := get(t, f.client(), issuer+"/authorize?"+q.Encode())
		if strings.Contains(r.body, "<script>") {
			t.Fatalf("state not escaped:\n%s", r.body)
		}
		if hidden(r.body).Get("state") != q.Get("state") {
			t.Errorf("state not carried")
		}
		if r.header.Get("X-Frame-Options") != "DENY" || !strings.Contains(r.header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
			t.Errorf("framing allowed: %v", r.header)
		}
		for _, want := range []string{`lang="fr"`, "Identifiant", "Mot de passe", "Se connecter", `name="username"`, `name="password"`} {
			if !strings.Contains(r.body, want) {
				t.Errorf("page lacks %s", want)
			}
		}
	})
}

func TestAuthorizeRequestErrors(t *testing.T) {
	f := newFixture(t)
	_, ch := pkce()
	tests := []struct {
		name      string
		mod       func(url.Values)
		wantError string // "" means no redirect, an error page
	}{
		{"unknown client", func(q url.Values) { q.Set("client_id", "intruder") }, ""},
		{"unregistered redirect", func(q url.Values) { q.Set("redirect_uri", "http://evil.test/cb") }, ""},
		{"redirect prefix only", func(q url.Values) { q.Set("redirect_uri", callback+"/../x") }, ""},
		{"no pkce", func(q url.Values) { q.Del("code_challenge") }, "invalid_request"},
		{"plain pkce", func(q url.Values) { q.Set("code_challenge_method", "plain") }, "invalid_request"},
		{"bad challenge", func(q url.Values) { q.Set("code_challenge", "short") }, "invalid_request"},
		{"implicit", func(q url.Values) { q.Set("response_type", "token") }, "unsupported_response_type"},
		{"repeated state", func(q url.Values) { q.Add("state", "again") }, "invalid_request"},
		{"long state", func(q url.Values) { q.Set("state", strings.Repeat("s", 2000)) }, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := authQuery("passerelle", callback, ch)
			tt.mod(q)
			r := get(t, f.client(), issuer+"/authorize?"+q.Encode())
			if tt.wantError == "" {
				if r.status != http.StatusBadRequest || r.header.Get("Location") != "" {
					t.Fatalf("status %d, location %q", r.status, r.header.Get("Location"))
				}
				return
			}
			loc, _ := url.Parse(r.header.Get("Location"))
			if r.status != http.StatusSeeOther || loc == nil || !strings.HasPrefix(loc.String(), callback+"?") || loc.Query().Get("error") != tt.wantError {
				t.Fatalf("status %d, location %q", r.status, r.header.Get("Location"))
			}
		})
	}
}

func TestTokenEndpointErrors(t *testing.T) {
	f := newFixture(t)
	c := f.client()
	cc := url.Values{"grant_type": {"client_credentials"}}
	with := func(v url.Values, kv ...string) url.Values {
		out := url.Values{}
		for k, vs := range v {
			out[k] = slices.Clone(vs)
		}
		for i := 0; i < len(kv); i += 2 {
			out.Add(kv[i], kv[i+1])
		}
		return out
	}
	tests := []struct {
		name       string
		form       url.Values
		user, pass string
		status     int
		error      string
	}{
		{"ok basic", cc, "chu-demo-dpi", "chu-demo-dpi", 200, ""},
		{"ok post", with(cc, "client_id", "chu-demo-dpi", "client_secret", "chu-demo-dpi"), "", "", 200, ""},
		{"wrong secret", cc, "chu-demo-dpi", "nope", 401, "invalid_client"},
		{"unknown client", cc, "intruder", "x", 401, "invalid_client"},
		{"no client", cc, "", "", 401, "invalid_client"},
		{"two methods", with(cc, "client_secret", "chu-demo-dpi"), "chu-demo-dpi", "chu-demo-dpi", 400, "invalid_request"},
		{"no grant", url.Values{}, "chu-demo-dpi", "chu-demo-dpi", 400, "invalid_request"},
		{"unknown grant", url.Values{"grant_type": {"password"}}, "chu-demo-dpi", "chu-demo-dpi", 400, "unsupported_grant_type"},
		{"repeated parameter", with(cc, "grant_type", "client_credentials"), "chu-demo-dpi", "chu-demo-dpi", 400, "invalid_request"},
		{"no code", url.Values{"grant_type": {"authorization_code"}}, "passerelle", "web-secret", 400, "invalid_request"},
		{"unknown code", url.Values{"grant_type": {"authorization_code"}, "code": {"forged"}}, "passerelle", "web-secret", 400, "invalid_grant"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := postForm(t, c, issuer+"/token", tt.form, tt.user, tt.pass)
			tr := decodeToken(t, r)
			if r.status != tt.status || tr.Error != tt.error {
				t.Fatalf("got %d %q, want %d %q (%s)", r.status, tr.Error, tt.status, tt.error, r.body)
			}
			if r.status == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic") {
				t.Errorf("401 without a Basic challenge")
			}
			if r.status == 200 {
				cl := claimsOf(t, tr.AccessToken)
				if cl["client_id"] != "chu-demo-dpi" || cl["azp"] != "chu-demo-dpi" || cl["sub"] != "service-account-chu-demo-dpi" ||
					cl["preferred_username"] != nil || !slices.Equal(toStrings(cl["aud"]), []string{"passerelle"}) {
					t.Errorf("claims %v", cl)
				}
			}
		})
	}
	if r := get(t, c, issuer+"/token"); r.status != http.StatusMethodNotAllowed {
		t.Errorf("GET /token: %d", r.status)
	}
}

func TestLogout(t *testing.T) {
	f := newFixture(t)
	c := f.client()
	tests := []struct {
		name     string
		query    url.Values
		status   int
		location string
	}{
		{"registered", url.Values{"post_logout_redirect_uri": {afterLogout}, "state": {"s1"}, "client_id": {"passerelle"}}, 303, afterLogout + "?state=s1"},
		{"a redirect URI, no client", url.Values{"post_logout_redirect_uri": {callback}}, 303, callback},
		{"not registered", url.Values{"post_logout_redirect_uri": {"http://evil.test/"}}, 400, ""},
		{"registered for another client", url.Values{"post_logout_redirect_uri": {afterLogout}, "client_id": {"mobile"}}, 400, ""},
		{"no target", url.Values{}, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := get(t, c, issuer+"/logout?"+tt.query.Encode())
			if r.status != tt.status || r.header.Get("Location") != tt.location {
				t.Fatalf("got %d %q, want %d %q", r.status, r.header.Get("Location"), tt.status, tt.location)
			}
		})
	}
}

func TestMint(t *testing.T) {
	f := newFixture(t)
	tok, err := f.p.Mint("ide.martin", 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	c := claimsOf(t, tok)
	if c["preferred_username"] != "ide.martin" || c["azp"] != "passerelle" || c["exp"] != float64(start.Add(10*time.Minute).Unix()) {
		t.Errorf("person token %v", c)
	}
	tok, err = f.p.Mint("chu-demo-dpi", 0)
	if err != nil {
		t.Fatal(err)
	}
	if c := claimsOf(t, tok); c["client_id"] != "chu-demo-dpi" || c["preferred_username"] != nil || c["exp"] != float64(start.Add(time.Hour).Unix()) {
		t.Errorf("client token %v", c)
	}
	_, err = f.p.Mint("nobody", 0)
	if err == nil || !strings.Contains(err.Error(), "admin, chu-demo-dpi, ide.martin") {
		t.Errorf("unknown subject: %v", err)
	}
	if _, err := f.p.Mint("mobile", 0); err == nil {
		t.Error("client-credentials token for a public client")
	}
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	logs := &bytes.Buffer{}
	cfg := testConfig(dir, clock.NewFake(start), logs)
	p, err := devidp.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	keyDir := filepath.Join(dir, "dev-idp")
	assertMode(t, keyDir, 0o700)
	files, _ := filepath.Glob(filepath.Join(keyDir, "*.pem"))
	if len(files) != 1 {
		t.Fatalf("key files %v", files)
	}
	assertMode(t, files[0], 0o600)
	if !strings.Contains(logs.String(), "refused with PASSERELLE_ENV=production") {
		t.Errorf("no production warning in the log:\n%s", logs)
	}

	// A restart reuses the key.
	p2, err := devidp.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.KeyIDs(), p2.KeyIDs()) {
		t.Fatalf("key ids %v then %v", p.KeyIDs(), p2.KeyIDs())
	}

	// Rotation adds a file; a restart publishes both, the new one current.
	kid, err := p2.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	files, _ = filepath.Glob(filepath.Join(keyDir, "*.pem"))
	for _, f := range files {
		assertMode(t, f, 0o600)
	}
	p3, err := devidp.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if ids := p3.KeyIDs(); len(ids) != 2 || ids[1] != kid {
		t.Fatalf("after rotation and restart: %v, want current %s", ids, kid)
	}

	// Permissions loosened by hand are tightened again.
	os.Chmod(keyDir, 0o755)
	os.Chmod(files[0], 0o644)
	if _, err := devidp.New(cfg); err != nil {
		t.Fatal(err)
	}
	assertMode(t, keyDir, 0o700)
	assertMode(t, files[0], 0o600)

	// A damaged key file stops the start rather than being replaced.
	os.WriteFile(files[0], []byte("garbage"), 0o600)
	if _, err := devidp.New(cfg); err == nil {
		t.Fatal("damaged key accepted")
	}
}

func assertMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != want {
		t.Errorf("%s mode %v, want %v", path, fi.Mode().Perm(), want)
	}
}

func TestMintFromDataDir(t *testing.T) {
	cfg := testConfig(t.TempDir(), clock.NewFake(start), io.Discard)
	_, err := devidp.MintFromDataDir(cfg.DataDir, issuer, "", "ide.martin", cfg.Users, cfg.Clients, 0)
	if err == nil || !strings.Contains(err.Error(), "start passerelle once first") {
		t.Fatalf("without keys: %v", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "dev-idp")); !os.IsNotExist(err) {
		t.Errorf("MintFromDataDir created the key directory: %v", err)
	}
}

func TestNewValidation(t *testing.T) {
	dir := t.TempDir()
	base := func() devidp.Config { return testConfig(dir, clock.NewFake(start), io.Discard) }
	tests := []struct {
		name string
		mod  func(*devidp.Config)
	}{
		{"no data dir", func(c *devidp.Config) { c.DataDir = "" }},
		{"relative issuer", func(c *devidp.Config) { c.Issuer = "/dev-idp" }},
		{"issuer with query", func(c *devidp.Config) { c.Issuer = issuer + "?x=1" }},
		{"user twice", func(c *devidp.Config) { c.Users = append(c.Users, c.Users[0]) }},
		{"user without password", func(c *devidp.Config) { c.Users = append(c.Users, devidp.User{Login: "x"}) }},
		{"confidential without secret", func(c *devidp.Config) { c.Clients = append(c.Clients, devidp.Client{ID: "x"}) }},
		{"public with secret", func(c *devidp.Config) {
			c.Clients = append(c.Clients, devidp.Client{ID: "x", Public: true, Secret: "s"})
		}},
		{"name both user and client", func(c *devidp.Config) { c.Clients = append(c.Clients, devidp.Client{ID: "admin", Secret: "s"}) }},
		{"relative redirect", func(c *devidp.Config) {
			c.Clients = append(c.Clients, devidp.Client{ID: "x", Secret: "s", RedirectURIs: []string{"/cb"}})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base()
			tt.mod(&cfg)
			if _, err := devidp.New(cfg); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestTransport(t *testing.T) {
	f := newFixture(t)
	rt := f.p.Transport()
	for _, u := range []string{
		"http://elsewhere.test/dev-idp/jwks",
		"https://passerelle.test/dev-idp/jwks",
		"http://passerelle.test:8080/dev-idp/jwks",
		"http://passerelle.test/dev-idpx/jwks",
		"http://passerelle.test/other",
	} {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		if resp, err := rt.RoundTrip(req); err == nil {
			resp.Body.Close()
			t.Errorf("%s served in process", u)
		}
	}
	for _, u := range []string{"http://PASSERELLE.test:80/dev-idp/jwks", "http://passerelle.test/dev-idp/jwks"} {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.ContentLength != int64(len(b)) || !bytes.Contains(b, []byte(`"keys"`)) {
			t.Errorf("%s: %d %q", u, resp.StatusCode, b)
		}
	}
}

func TestHandlerPaths(t *testing.T) {
	// The issuer may sit below a public URL with a path; a proxy that
	// strips it leaves requests under MountPath.
	dir := t.TempDir()
	seedKeys(t, dir)
	cfg := testConfig(dir, clock.NewFake(start), io.Discard)
	cfg.Issuer = "https://example.test/passerelle/dev-idp"
	p, err := devidp.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := p.Handler()
	for path, want := range map[string]int{
		"/passerelle/dev-idp/jwks": 200,
		"/dev-idp/jwks":            200,
		"/elsewhere/jwks":          404,
		"/dev-idp":                 404,
	} {
		req, _ := http.NewRequest(http.MethodGet, "https://example.test"+path, nil)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("%s: %d, want %d", path, rec.Code, want)
		}
	}
}

func TestRefusedInProduction(t *testing.T) {
	cfg := testConfig(t.TempDir(), clock.NewFake(start), &bytes.Buffer{})
	cfg.Production = true
	if _, err := devidp.New(cfg); err == nil || !strings.Contains(err.Error(), "PASSERELLE_ENV=production") {
		t.Fatalf("started in production mode: %v", err)
	}
}
