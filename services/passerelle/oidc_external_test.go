package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/passerelle-sante/passerelle/pkg/directory"
)

// externalIssuer runs the oidc-provider package (testdata/oidcprovider,
// installed by .ci/run with npm ci) on loopback: an OpenID provider that is
// not Passerelle's code. It returns its issuer URL.
func externalIssuer(t *testing.T, passerelleURL string) string {
	t.Helper()
	dir, _ := filepath.Abs(filepath.Join("testdata", "oidcprovider"))
	node, err := exec.LookPath("node")
	_, modErr := os.Stat(filepath.Join(dir, "node_modules", "oidc-provider"))
	if err != nil || modErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the external OpenID provider is not installed (node: %v, modules: %v): run npm ci --prefix services/passerelle/testdata/oidcprovider", err, modErr)
		}
		t.Skip("node or testdata/oidcprovider/node_modules missing: npm ci --prefix services/passerelle/testdata/oidcprovider")
	}
	cmd := exec.Command(node, "server.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "USERS=ide.martin,coord.cpts,intrus", "CLIENT_SECRET=s3cret",
		"REDIRECT_URI="+passerelleURL+"/auth/callback", "POST_LOGOUT_URI="+passerelleURL+"/")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stdin.Close() // the provider exits when its input closes
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("external provider did not start: %v", err)
	}
	var hello struct{ Issuer string }
	if err := json.Unmarshal([]byte(line), &hello); err != nil || hello.Issuer == "" {
		t.Fatalf("external provider said %q", line)
	}
	return hello.Issuer
}

// browser follows a login through the provider's pages as a person would,
// up to the redirect back to redirectPrefix, and returns that URL.
func browser(t *testing.T, jar http.CookieJar, start, user, password, redirectPrefix string) *url.URL {
	t.Helper()
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	next, method, form := start, "GET", url.Values(nil)
	action := regexp.MustCompile(`<form method="post" action="([^"]+)">`)
	for i := 0; i < 12; i++ {
		if strings.HasPrefix(next, redirectPrefix) {
			u, _ := url.Parse(next)
			return u
		}
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, _ := http.NewRequest(method, next, body)
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		switch {
		case res.StatusCode >= 300 && res.StatusCode < 400:
			loc, _ := req.URL.Parse(res.Header.Get("Location"))
			next, method, form = loc.String(), "GET", nil
		case res.StatusCode == 200 && action.Match(b):
			loc, _ := req.URL.Parse(string(action.FindSubmatch(b)[1]))
			next, method, form = loc.String(), "POST", url.Values{"username": {user}, "password": {password}}
		default:
			t.Fatalf("login at %s: %d %s", next, res.StatusCode, b)
		}
	}
	t.Fatalf("login did not come back to %s", redirectPrefix)
	return nil
}

func TestExternalIssuer(t *testing.T) {
	addr := freeAddr(t)
	base := "http://" + addr
	issuer := externalIssuer(t, base)
	tp := startPlatform(t, map[string]string{"PASSERELLE_HTTP_ADDR": addr, "PASSERELLE_OIDC_ISSUER": issuer,
		"PASSERELLE_OIDC_CLIENT_SECRET": "s3cret"})
	if tp.IdP != nil {
		t.Fatal("the development provider runs although an issuer is configured")
	}
	// With an external issuer the directory is the CPTS's own: here the
	// development one.
	if _, err := directory.SeedDev(context.Background(), tp.Store, tp.Cfg.Tenant); err != nil {
		t.Fatal(err)
	}
	tokenURL := issuer + "/token"
	clientToken := func(client, secret, resource string) string {
		form := url.Values{"grant_type": {"client_credentials"}, "scope": {"api"}}
		if resource != "" {
			form.Set("resource", resource)
		}
		req, _ := http.NewRequest("POST", tokenURL, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(client, secret)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		if err := json.NewDecoder(res.Body).Decode(&tok); err != nil || tok.AccessToken == "" {
			t.Fatalf("client credentials: %d %v", res.StatusCode, err)
		}
		return tok.AccessToken
	}
	// personToken runs the authorization code flow with PKCE as the web
	// client, and returns the access token.
	personToken := func(user string) string {
		verifier := strings.Repeat("v", 50)
		sum := sha256.Sum256([]byte(verifier))
		q := url.Values{"response_type": {"code"}, "client_id": {"passerelle"}, "redirect_uri": {base + "/auth/callback"},
			"scope": {"openid profile api"}, "state": {"st"}, "nonce": {"no"}, "resource": {"urn:passerelle:api"},
			"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
		jar, _ := cookiejar.New(nil)
		back := browser(t, jar, issuer+"/auth?"+q.Encode(), user, user, base+"/auth/callback")
		form := url.Values{"grant_type": {"authorization_code"}, "code": {back.Query().Get("code")}, "redirect_uri": {base + "/auth/callback"},
			"code_verifier": {verifier}}
		req, _ := http.NewRequest("POST", tokenURL, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("passerelle", "s3cret")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		if err := json.NewDecoder(res.Body).Decode(&tok); err != nil || tok.AccessToken == "" {
			t.Fatalf("code exchange for %s: %d %v", user, res.StatusCode, err)
		}
		return tok.AccessToken
	}

	coord := personToken("coord.cpts")
	if r := tp.do(t, "GET", "/fhir/Patient", coord, ""); r.status != 200 {
		t.Errorf("coordinator's token from the external issuer: %d %s", r.status, r.body)
	}
	// A hospital system's client-credentials token is verified and mapped
	// to the directory's client: it is then refused by the policy (a
	// system does not browse records), not as a token.
	r := tp.do(t, "GET", "/fhir/Patient", clientToken("chu-demo-dpi", "chu-demo-dpi", ""), "")
	if r.status != 403 || !strings.Contains(string(r.body), "hospital system") {
		t.Errorf("system token: %d %s", r.status, r.body)
	}
	// Refused: a token for another audience, a tampered one, a person who
	// is in nobody's directory.
	outcome(t, tp.do(t, "GET", "/fhir/Patient", clientToken("chu-demo-dpi", "chu-demo-dpi", "urn:other:api"), ""), 401, "")
	parts := strings.Split(coord, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	forged := strings.Replace(string(payload), `"coord.cpts"`, `"admin"`, 1)
	outcome(t, tp.do(t, "GET", "/fhir/Patient", parts[0]+"."+base64.RawURLEncoding.EncodeToString([]byte(forged))+"."+parts[2], ""), 401, "")
	outcome(t, tp.do(t, "GET", "/fhir/Patient", personToken("intrus"), ""), 403, "")

	// The web login through Passerelle's own /login: code + PKCE against
	// the external issuer, session cookie, audit.
	jar, _ := cookiejar.New(nil)
	back := browser(t, jar, base+"/login?next=/worklist", "ide.martin", "ide.martin", base+"/auth/callback")
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.Get(back.String())
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/worklist" {
		t.Fatalf("callback: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	session := false
	for _, ck := range res.Cookies() {
		session = session || (ck.Name == "passerelle_session" && ck.HttpOnly && ck.SameSite == http.SameSiteLaxMode)
	}
	if !session {
		t.Errorf("no session cookie: %v", res.Cookies())
	}
	// A person the directory does not know logs in at the issuer but gets
	// no session.
	jar2, _ := cookiejar.New(nil)
	back = browser(t, jar2, base+"/login", "intrus", "intrus", base+"/auth/callback")
	res, err = (&http.Client{Jar: jar2}).Get(back.String())
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden {
		t.Errorf("unknown person's login: %d", res.StatusCode)
	}
	recs, _ := tp.Store.AuditLog().List(context.Background(), 0, 1000)
	var logins []string
	for _, rec := range recs {
		if rec.Entity == "login" {
			logins = append(logins, rec.Outcome+" "+rec.Agent+" "+rec.Detail)
		}
	}
	if strings.Join(logins, "|") != "0 PractitionerRole/pr-ide-martin |4  intrus" {
		t.Errorf("login audit: %q", logins)
	}
}
