package auth_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/passerelle-sante/passerelle/pkg/auth"
	"github.com/passerelle-sante/passerelle/pkg/auth/devidp"
	"github.com/passerelle-sante/passerelle/pkg/clock"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if seedDir != "" {
		os.RemoveAll(seedDir)
	}
	if code == 0 {
		if err := leakedGoroutines(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// leakedGoroutines waits a little for goroutines started by this module to
// end, and reports those that do not.
func leakedGoroutines() error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		var leaked []string
		for _, g := range strings.Split(stacks, "\n\n") {
			if strings.Contains(g, "passerelle-sante/passerelle/pkg/auth") &&
				!strings.Contains(g, "leakedGoroutines") && !strings.Contains(g, "testing.(*M)") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("leaked goroutines:\n%s", strings.Join(leaked, "\n\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A 2048-bit RSA key takes a noticeable time to generate under the race
// detector, so tests start from a copy of one generated once; tests about
// key creation and rotation still generate their own.
var (
	seedOnce sync.Once
	seedDir  string
	seedErr  error
)

func seedKeys(t *testing.T, dataDir string) {
	t.Helper()
	seedOnce.Do(func() {
		seedDir, seedErr = os.MkdirTemp("", "devidp-seed-")
		if seedErr != nil {
			return
		}
		_, seedErr = devidp.New(devidp.Config{DataDir: seedDir, Issuer: "http://seed.invalid/dev-idp"})
	})
	if seedErr != nil {
		t.Fatal(seedErr)
	}
	src := filepath.Join(seedDir, "dev-idp")
	dst := filepath.Join(dataDir, "dev-idp")
	if err := os.MkdirAll(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

type tWriter struct {
	t   *testing.T
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *tWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func (w *tWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

var (
	testUsers = []devidp.User{
		{Login: "ide.martin", Password: "ide.martin", Name: "Claire Martin"},
		{Login: "dr.bernard", Password: "dr.bernard", Name: "Paul Bernard"},
	}
	start = time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
)

const (
	webClient    = "passerelle"
	webSecret    = "dev-web-secret"
	systemClient = "chu-demo-dpi"
	systemSecret = "chu-demo-dpi"
)

// env is a development provider served on a real local port (the
// "external issuer" case), with a client application's callback.
type env struct {
	t        *testing.T
	clock    *clock.Fake
	dir      string
	idp      *devidp.Provider
	issuer   string
	srv      *httptest.Server
	hits     atomic.Int64 // requests that reached srv over the network
	jwksHits atomic.Int64
	down     atomic.Bool // srv answers 503 while set
	callback *httptest.Server
	codes    chan url.Values
	logs     *tWriter
}

type envOption func(*devidp.Config)

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	e := &env{t: t, clock: clock.NewFake(start), dir: t.TempDir(), codes: make(chan url.Values, 10)}
	seedKeys(t, e.dir)
	e.callback = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.codes <- r.URL.Query()
		io.WriteString(w, "callback reached")
	}))
	t.Cleanup(e.callback.Close)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.issuer = "http://" + l.Addr().String() + "/dev-idp"
	e.logs = &tWriter{t: t}
	cfg := devidp.Config{
		DataDir: e.dir,
		Issuer:  e.issuer,
		Users:   testUsers,
		Clients: []devidp.Client{
			{ID: webClient, Secret: webSecret, RedirectURIs: []string{e.callback.URL + "/auth/callback"}},
			{ID: systemClient, Secret: systemSecret},
		},
		Now:    e.clock.Now,
		Logger: slog.New(slog.NewTextHandler(e.logs, nil)),
	}
	for _, o := range opts {
		o(&cfg)
	}
	e.idp, err = devidp.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(devidp.MountPath+"/", e.idp.Handler())
	e.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.hits.Add(1)
		if strings.HasSuffix(r.URL.Path, "/jwks") {
			e.jwksHits.Add(1)
		}
		if e.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	e.srv.Listener.Close()
	e.srv.Listener = l
	e.srv.Start()
	t.Cleanup(e.srv.Close)
	return e
}

// verifier returns a verifier of e's issuer, reached over the network
// ("http") or through the provider's in-process transport ("in-process").
func (e *env) verifier(mode string, mods ...func(*auth.Config)) *auth.Verifier {
	e.t.Helper()
	cfg := auth.Config{Issuer: e.issuer, ClientID: webClient, Now: e.clock.Now}
	switch mode {
	case "http":
		cfg.HTTPClient = e.srv.Client()
	case "in-process":
		cfg.HTTPClient = e.idp.HTTPClient()
	default:
		e.t.Fatalf("mode %q", mode)
	}
	for _, m := range mods {
		m(&cfg)
	}
	v, err := auth.NewVerifier(context.Background(), cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

var modes = []string{"http", "in-process"}

func (e *env) mint(subject string, ttl time.Duration) string {
	e.t.Helper()
	tok, err := e.idp.Mint(subject, ttl)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

type tokenResponse struct {
	AccessToken string `json:"access_token"`
	IDToken     string `json:"id_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Scope       string `json:"scope"`
	Error       string `json:"error"`
}

// postToken calls the token endpoint with form and, unless user is empty,
// HTTP Basic client authentication.
func postToken(t *testing.T, client *http.Client, issuer string, form url.Values, user, pass string) (int, tokenResponse) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, issuer+"/token", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr tokenResponse
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil {
		t.Fatalf("token response: %v", err)
	}
	return resp.StatusCode, tr
}

// pkce returns a code verifier and its S256 challenge (RFC 7636 §4.1-4.2).
func pkce() (verifier, challenge string) {
	b := make([]byte, 32)
	rand.Read(b)
	verifier = base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

var (
	formAction  = regexp.MustCompile(`<form method="post" action="([^"]*)">`)
	hiddenInput = regexp.MustCompile(`<input type="hidden" name="([^"]*)" value="([^"]*)">`)
)

// login drives the login form like a browser with cookies: it opens the
// authorization URL, posts the credentials, and follows the redirect to
// the callback. It returns the status of the credentials post and, when
// the callback was reached, its query.
func (e *env) login(username, password string, challenge string) (int, url.Values) {
	e.t.Helper()
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	q := url.Values{
		"response_type":         {"code"},
		"client_id":             {webClient},
		"redirect_uri":          {e.callback.URL + "/auth/callback"},
		"scope":                 {"openid profile"},
		"state":                 {"st-123"},
		"nonce":                 {"n-456"},
		"code_challenge":        {challenge},
		"code_challenge_method": {"S256"},
	}
	resp, err := browser.Get(e.issuer + "/authorize?" + q.Encode())
	if err != nil {
		e.t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("authorize GET: %s\n%s", resp.Status, page)
	}
	for _, want := range []string{`name="username"`, `name="password"`, "Identifiant", "Mot de passe", "Se connecter"} {
		if !bytes.Contains(page, []byte(want)) {
			e.t.Fatalf("login form lacks %s:\n%s", want, page)
		}
	}
	m := formAction.FindSubmatch(page)
	if m == nil {
		e.t.Fatalf("no form action in\n%s", page)
	}
	form := url.Values{"username": {username}, "password": {password}}
	for _, h := range hiddenInput.FindAllSubmatch(page, -1) {
		form.Set(html.UnescapeString(string(h[1])), html.UnescapeString(string(h[2])))
	}
	resp, err = browser.PostForm(html.UnescapeString(string(m[1])), form)
	if err != nil {
		e.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("callback reached")) {
		return resp.StatusCode, nil
	}
	select {
	case v := <-e.codes:
		return resp.StatusCode, v
	default:
		e.t.Fatal("callback reached but recorded nothing")
		return 0, nil
	}
}

// exchange redeems a code as the web client.
func (e *env) exchange(code, verifier string) (int, tokenResponse) {
	e.t.Helper()
	return postToken(e.t, e.srv.Client(), e.issuer, url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"redirect_uri":  {e.callback.URL + "/auth/callback"},
		"code_verifier": {verifier},
	}, webClient, webSecret)
}

// signingKey reads the provider's current key from the data directory, so
// tests can sign tokens the provider would never issue (wrong issuer,
// missing aud, another algorithm) with a key the JWKS does publish.
func signingKey(t *testing.T, dataDir string) (*rsa.PrivateKey, string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dataDir, "dev-idp", "*.pem"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no key files: %v", err)
	}
	slices.Sort(files)
	b, err := os.ReadFile(files[len(files)-1])
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	priv := k.(*rsa.PrivateKey)
	return priv, kidOf(t, &priv.PublicKey)
}

func kidOf(t *testing.T, pub crypto.PublicKey) string {
	t.Helper()
	jwk := jose.JSONWebKey{Key: pub}
	sum, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(sum)
}

func sign(t *testing.T, alg jose.SignatureAlgorithm, key any, kid string, claims map[string]any) string {
	t.Helper()
	return signWith(t, alg, key, kid, nil, claims)
}

// signWith signs claims with the signer options opts (nil: none).
func signWith(t *testing.T, alg jose.SignatureAlgorithm, key any, kid string, opts *jose.SignerOptions, claims map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// claimsFor returns valid person-token claims for e, to be altered.
func (e *env) claimsFor(login string) map[string]any {
	now := e.clock.Now()
	return map[string]any{
		"iss": e.issuer, "sub": "sub-" + login, "aud": []string{webClient}, "azp": webClient,
		"exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "nbf": now.Unix(),
		"typ": "Bearer", "preferred_username": login,
	}
}

// segments splits a compact JWS.
func segments(t *testing.T, tok string) []string {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	return parts
}

func header(t *testing.T, tok string) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(segments(t, tok)[0])
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	return h
}
