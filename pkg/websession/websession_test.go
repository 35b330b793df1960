package websession_test

import (
	"bufio"
	"context"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/access"
	"github.com/passerelle-sante/passerelle/pkg/auth"
	"github.com/passerelle-sante/passerelle/pkg/auth/devidp"
	"github.com/passerelle-sante/passerelle/pkg/clock"
	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/store"
	"github.com/passerelle-sante/passerelle/pkg/store/sqlite"
	"github.com/passerelle-sante/passerelle/pkg/websession"
)

type env struct {
	base  string
	clk   *clock.Fake
	st    store.Store
	m     *websession.Manager
	idp   *devidp.Provider
	jar   http.CookieJar
	plain *http.Client // follows no redirect
}

// setup runs the development provider, the login routes and two pages
// behind Require on one loopback server, as the platform does.
func setup(t *testing.T) *env {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	clk := clock.NewFake(time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC))
	users := []devidp.User{{Login: "ide.martin", Password: "ide.martin"}, {Login: "inconnu", Password: "inconnu"}}
	idp, err := devidp.New(devidp.Config{DataDir: t.TempDir(), Issuer: base + "/dev-idp", Audience: "passerelle", Users: users,
		Clients: []devidp.Client{{ID: "passerelle", Secret: "secret", RedirectURIs: []string{base + websession.CallbackPath},
			PostLogoutRedirectURIs: []string{base + "/"}}}, Now: clk.Now, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewVerifier(context.Background(), auth.Config{Issuer: idp.Issuer(), ClientID: "passerelle", HTTPClient: idp.HTTPClient(), Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if _, err := directory.SeedDev(context.Background(), st, "demo"); err != nil {
		t.Fatal(err)
	}
	m, err := websession.New(websession.Config{Provider: v, Directory: &directory.Resolver{Store: st, Now: clk.Now}, Audit: st,
		Tenant: "demo", PublicURL: base, ClientID: "passerelle", ClientSecret: "secret", Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	idp.OnLoginFailure(func(login string) { m.AuditFailedLogin(context.Background(), login) })
	mux := http.NewServeMux()
	mux.Handle("/dev-idp/", idp.Handler())
	m.Register(mux)
	mux.Handle("GET /worklist", m.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, _ := access.ActorFrom(r.Context())
		io.WriteString(w, a.Reference()+" csrf="+m.CSRFToken(r))
	})))
	mux.Handle("POST /tasks/1/action", m.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "done")
	})))
	// A stream open until its request ends, as the live feed is.
	mux.Handle("GET /stream", m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "open\n")
		http.NewResponseController(w).Flush()
		<-r.Context().Done()
	})))
	mux.Handle("GET /{$}", m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, ok := access.ActorFrom(r.Context())
		io.WriteString(w, map[bool]string{true: "logged in", false: "anonymous"}[ok])
	})))
	srv.Config.Handler = mux
	srv.Start()
	t.Cleanup(srv.Close)
	jar, _ := cookiejar.New(nil)
	return &env{base: base, clk: clk, st: st, m: m, idp: idp, jar: jar,
		plain: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type answer struct {
	status int
	header http.Header
	body   string
}

func (e *env) do(t *testing.T, method, target string, form url.Values, header ...string) answer {
	t.Helper()
	if strings.HasPrefix(target, "/") {
		target = e.base + target
	}
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := e.plain.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return answer{res.StatusCode, res.Header, string(b)}
}

var hiddenRE = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// login goes through the whole browser flow and returns where it landed.
func (e *env) login(t *testing.T, user, password, next string) answer {
	t.Helper()
	r := e.do(t, "GET", websession.LoginPath+"?next="+url.QueryEscape(next), nil)
	if r.status != http.StatusFound {
		t.Fatalf("login: %d %s", r.status, r.body)
	}
	authorize := r.header.Get("Location")
	if !strings.HasPrefix(authorize, e.base+"/dev-idp/authorize?") || !strings.Contains(authorize, "code_challenge_method=S256") {
		t.Fatalf("login redirects to %s", authorize)
	}
	form := e.do(t, "GET", authorize, nil)
	if form.status != 200 || !strings.Contains(form.body, `name="username"`) || !strings.Contains(form.body, `name="password"`) {
		t.Fatalf("login form: %d %s", form.status, form.body)
	}
	values := url.Values{"username": {user}, "password": {password}}
	for _, m := range hiddenRE.FindAllStringSubmatch(form.body, -1) {
		values.Set(m[1], html.UnescapeString(m[2]))
	}
	r = e.do(t, "POST", e.base+"/dev-idp/authorize", values)
	if r.status != http.StatusFound && r.status != http.StatusSeeOther {
		return r
	}
	cb := r.header.Get("Location")
	if !strings.HasPrefix(cb, e.base+websession.CallbackPath+"?") {
		t.Fatalf("provider redirects to %s", cb)
	}
	return e.do(t, "GET", cb, nil)
}

func (e *env) audit(t *testing.T) []store.AuditRecord {
	t.Helper()
	recs, err := e.st.AuditLog().List(context.Background(), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func TestLoginSessionCSRFLogout(t *testing.T) {
	e := setup(t)
	// A page that needs a login sends the browser to it, and back.
	r := e.do(t, "GET", "/worklist", nil)
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/login?next=%2Fworklist" {
		t.Fatalf("no session: %d %s", r.status, r.header.Get("Location"))
	}
	if r := e.do(t, "GET", "/", nil); r.body != "anonymous" {
		t.Errorf("Middleware without a session: %q", r.body)
	}
	// A wrong password is refused by the provider and audited.
	if r := e.login(t, "ide.martin", "nope", "/worklist"); r.status != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", r.status)
	}
	r = e.login(t, "ide.martin", "ide.martin", "/worklist")
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/worklist" {
		t.Fatalf("callback: %d %s %s", r.status, r.header.Get("Location"), r.body)
	}
	var session *http.Cookie
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == "passerelle_session" {
			session = c
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteLaxMode || session.Secure || session.Path != "/" {
		t.Fatalf("session cookie %+v", session)
	}
	r = e.do(t, "GET", "/worklist", nil)
	if r.status != 200 || !strings.HasPrefix(r.body, "PractitionerRole/pr-ide-martin csrf=") {
		t.Fatalf("worklist: %d %s", r.status, r.body)
	}
	csrf := strings.TrimPrefix(r.body, "PractitionerRole/pr-ide-martin csrf=")
	if len(csrf) < 40 {
		t.Fatalf("csrf token %q", csrf)
	}
	if r := e.do(t, "GET", "/", nil); r.body != "logged in" {
		t.Errorf("Middleware with a session: %q", r.body)
	}
	// Every form needs the session's token, from this site.
	if r := e.do(t, "POST", "/tasks/1/action", url.Values{"action": {"accept"}}); r.status != http.StatusForbidden {
		t.Errorf("form without token: %d", r.status)
	}
	if r := e.do(t, "POST", "/tasks/1/action", url.Values{"action": {"accept"}, websession.CSRFField: {"forged"}}); r.status != http.StatusForbidden {
		t.Errorf("form with a wrong token: %d", r.status)
	}
	if r := e.do(t, "POST", "/tasks/1/action", url.Values{websession.CSRFField: {csrf}}, "Origin", "https://evil.example"); r.status != http.StatusForbidden {
		t.Errorf("form from another origin: %d", r.status)
	}
	if r := e.do(t, "POST", "/tasks/1/action", url.Values{"action": {"accept"}, websession.CSRFField: {csrf}}, "Origin", e.base); r.status != 200 || r.body != "done" {
		t.Errorf("form with the token: %d %s", r.status, r.body)
	}
	// Logout needs the token too, ends the session and goes to the
	// provider's end-session endpoint.
	if r := e.do(t, "POST", websession.LogoutPath, url.Values{}); r.status != http.StatusForbidden {
		t.Errorf("logout without token: %d", r.status)
	}
	r = e.do(t, "POST", websession.LogoutPath, url.Values{websession.CSRFField: {csrf}})
	if loc := r.header.Get("Location"); r.status != http.StatusSeeOther || !strings.HasPrefix(loc, e.base+"/dev-idp/logout?") || !strings.Contains(loc, "id_token_hint=") {
		t.Fatalf("logout: %d %s", r.status, loc)
	}
	if r := e.do(t, "GET", "/worklist", nil); r.status != http.StatusSeeOther {
		t.Errorf("after logout: %d", r.status)
	}
	// The session id is dead on the server, even if a copy of the cookie
	// is replayed.
	req, _ := http.NewRequest("GET", e.base+"/worklist", nil)
	req.AddCookie(&http.Cookie{Name: "passerelle_session", Value: session.Value})
	res, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther {
		t.Errorf("replayed cookie after logout: %d", res.StatusCode)
	}

	var got []string
	for _, rec := range e.audit(t) {
		got = append(got, rec.Entity+" "+rec.Outcome+" "+rec.Agent+" "+rec.Detail)
	}
	want := []string{"login 4  ide.martin", "login 0 PractitionerRole/pr-ide-martin ", "logout 0 PractitionerRole/pr-ide-martin "}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("audit trail:\n got %q\nwant %q", got, want)
	}
}

func TestSessionExpires(t *testing.T) {
	e := setup(t)
	if r := e.login(t, "ide.martin", "ide.martin", "/worklist"); r.status != http.StatusSeeOther {
		t.Fatalf("login: %d", r.status)
	}
	e.clk.Advance(20 * time.Minute)
	if r := e.do(t, "GET", "/worklist", nil); r.status != 200 {
		t.Fatalf("within the idle timeout: %d", r.status)
	}
	e.clk.Advance(31 * time.Minute)
	if r := e.do(t, "GET", "/worklist", nil); r.status != http.StatusSeeOther {
		t.Errorf("idle for 31 min: %d, want a redirect to the login", r.status)
	}
	// The absolute lifetime ends a session however busy.
	if r := e.login(t, "ide.martin", "ide.martin", "/worklist"); r.status != http.StatusSeeOther {
		t.Fatalf("login: %d", r.status)
	}
	for i := 0; i < 17; i++ {
		e.clk.Advance(29 * time.Minute)
		e.do(t, "GET", "/worklist", nil)
	}
	if r := e.do(t, "GET", "/worklist", nil); r.status != http.StatusSeeOther {
		t.Errorf("after 8 h: %d", r.status)
	}
}

func TestRefusedLogins(t *testing.T) {
	e := setup(t)
	// A valid login that matches nobody in the directory: 403, no session.
	r := e.login(t, "inconnu", "inconnu", "/worklist")
	if r.status != http.StatusForbidden {
		t.Fatalf("unknown member: %d %s", r.status, r.body)
	}
	if r := e.do(t, "GET", "/worklist", nil); r.status != http.StatusSeeOther {
		t.Errorf("unknown member got a session: %d", r.status)
	}
	// A callback this browser did not start (login CSRF) is refused.
	other := setup(t)
	r = other.do(t, "GET", websession.LoginPath, nil)
	loc, _ := url.Parse(r.header.Get("Location"))
	if r := e.do(t, "GET", websession.CallbackPath+"?code=x&state="+loc.Query().Get("state"), nil); r.status != http.StatusBadRequest {
		t.Errorf("foreign state: %d", r.status)
	}
	// An open redirect through next is refused.
	// Browsers drop tabs and newlines and read "\\" as "/": each of these
	// would land on evil.example.
	for _, next := range []string{"//evil.example/", "https://evil.example/", "/\\evil.example", "/\t/evil.example/x",
		"/\n/evil.example/x", "/\r\n/evil.example", "/x\\..\\\\evil.example", "/\x00/evil.example", "/\x7f/evil.example"} {
		r := e.login(t, "ide.martin", "ide.martin", next)
		if r.header.Get("Location") != "/" {
			t.Errorf("next=%s led to %s", next, r.header.Get("Location"))
		}
	}
	// A path of this site, with its query, is kept.
	if r := e.login(t, "ide.martin", "ide.martin", "/worklist?lang=en"); r.header.Get("Location") != "/worklist?lang=en" {
		t.Errorf("next=/worklist?lang=en led to %s", r.header.Get("Location"))
	}
	recs := e.audit(t)
	failed := 0
	for _, rec := range recs {
		if rec.Entity == "login" && rec.Outcome == "4" {
			failed++
		}
	}
	if failed != 2 {
		t.Errorf("%d failed logins audited, want 2: %+v", failed, recs)
	}
}

func TestSecureCookiesBehindHTTPS(t *testing.T) {
	e := setup(t)
	v, err := auth.NewVerifier(context.Background(), auth.Config{Issuer: e.idp.Issuer(), ClientID: "passerelle", HTTPClient: e.idp.HTTPClient()})
	if err != nil {
		t.Fatal(err)
	}
	m, err := websession.New(websession.Config{Provider: v, Directory: &directory.Resolver{Store: e.st}, Audit: e.st,
		Tenant: "demo", PublicURL: "https://passerelle.example", ClientID: "passerelle"})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	m.Register(mux)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "https://passerelle.example/login", nil))
	cs := rec.Result().Cookies()
	if rec.Code != http.StatusFound || len(cs) != 1 || !cs[0].Secure || !cs[0].HttpOnly || cs[0].SameSite != http.SameSiteLaxMode {
		t.Fatalf("login cookie behind HTTPS: %d %+v", rec.Code, cs)
	}
	if !strings.Contains(rec.Header().Get("Location"), url.QueryEscape("https://passerelle.example/auth/callback")) {
		t.Errorf("redirect_uri: %s", rec.Header().Get("Location"))
	}
	// The session cookie's name carries __Host-, which browsers accept
	// only when Secure, host-only and for path /.
	rec = httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("POST", "https://passerelle.example/logout", nil))
	found := false
	for _, c := range rec.Result().Cookies() {
		if c.Name == "__Host-passerelle_session" && c.Secure && c.Path == "/" {
			found = true
		}
	}
	if !found {
		t.Errorf("no __Host- session cookie cleared at logout: %v", rec.Result().Cookies())
	}
}

// TestLogoutEndsStreams: a request still running under a session, such as
// the live feed's open stream, ends when the session is logged out, rather
// than feeding a browser that has left.
func TestLogoutEndsStreams(t *testing.T) {
	e := setup(t)
	if r := e.login(t, "ide.martin", "ide.martin", "/worklist"); r.status != http.StatusSeeOther {
		t.Fatalf("login: %d %s", r.status, r.body)
	}
	csrf := strings.TrimPrefix(e.do(t, "GET", "/worklist", nil).body, "PractitionerRole/pr-ide-martin csrf=")
	// The stream waits for the logout; the deadline only keeps a broken
	// build from hanging.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.base+"/stream", nil)
	res, err := e.plain.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	rd := bufio.NewReader(res.Body)
	if line, err := rd.ReadString('\n'); err != nil || line != "open\n" {
		t.Fatalf("stream: %q %v", line, err)
	}
	if r := e.do(t, "POST", websession.LogoutPath, url.Values{websession.CSRFField: {csrf}}); r.status != http.StatusSeeOther {
		t.Fatalf("logout: %d %s", r.status, r.body)
	}
	rest, err := io.ReadAll(rd)
	if err != nil || len(rest) != 0 || ctx.Err() != nil {
		t.Fatalf("the stream outlived the logout: %q %v", rest, err)
	}
}
