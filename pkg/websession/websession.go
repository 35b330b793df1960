// Package websession logs people into Passerelle's web pages and keeps
// them logged in: OpenID Connect authorization code with PKCE against the
// configured issuer (the development provider or an external one such as
// Keycloak or Pro Santé Connect), a server-side session behind an opaque
// cookie, a CSRF token for every form, and logout.
//
// # Routes (Manager.Register)
//
//	GET  /login?next=/worklist   starts a login: redirects to the issuer's authorization endpoint
//	GET  /auth/callback          the issuer's answer: code exchange, ID token check, directory lookup
//	POST /logout                 ends the session (the form carries the CSRF token), then the issuer's
//	                             end-session endpoint when it has one, else /
//
// # What the web pages call
//
//	m.Middleware(h)      puts the session's actor in the request's context with access.WithActor
//	                     (access.ActorFrom reads it back); a request without a session passes
//	                     through without an actor, so a page may show a login link
//	m.Require(h)         the same, but a GET without a session is redirected to /login?next=<path>
//	                     and any other method answers 401; unsafe methods (POST, PUT, PATCH,
//	                     DELETE) must carry the CSRF token, else 403
//	m.CSRFToken(r)       the token a form of this session carries, in a hidden field named
//	                     CSRFField ("csrf_token") — or an X-CSRF-Token header for scripts
//	m.CheckCSRF(r)       refuses (ErrCSRF) a request without the session's token or from
//	                     another origin; call it for every POST a page handles itself
//	SessionFrom(ctx)     the session (login, expiry) behind the request, when there is one
//
// A logout form is:
//
//	<form method="post" action="/logout"><input type="hidden" name="csrf_token" value="{{.CSRF}}">…</form>
//
// The actor is looked up in the directory on every request (through the
// directory's short cache): a member removed from the directory loses the
// session at once, and a valid login that matches nobody is refused with
// 403, never given a default role (docs/architecture.md, "Identity and access").
//
// # Sessions
//
// Sessions live in the memory of the process that serves the pages, with an
// absolute lifetime (TTL, default 8 h) and an idle timeout (default 30 min).
// A restart logs everyone out; with several replicas the load balancer must
// keep a browser on one replica. The cookie holds only a random id:
// HttpOnly, SameSite=Lax, Secure (and named with the __Host- prefix) when the
// public URL is https.
//
// A request made under a session ends with it: at logout (or when the
// session is found expired or its member removed), the requests still
// running under it — the live feed's open event stream first — see their
// context cancelled.
//
// Every login, failed login and logout is written to the audit trail
// (AuditEvent of type DICOM 110114 "User Authentication").
package websession

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/access"
	"github.com/passerelle-sante/passerelle/pkg/auth"
	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/fhirapi"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// Paths of the routes Register adds, and the form field of the CSRF token.
const (
	LoginPath    = "/login"
	CallbackPath = "/auth/callback"
	LogoutPath   = "/logout"
	CSRFField    = "csrf_token"
	CSRFHeader   = "X-CSRF-Token"
)

// Audit entities of authentication records, rendered as BALP login and
// logout AuditEvents by package fhirapi.
const (
	auditLogin  = fhirapi.AuditLogin
	auditLogout = fhirapi.AuditLogout
)

// ErrCSRF is returned by CheckCSRF.
var ErrCSRF = errors.New("missing or wrong CSRF token")

// Provider is the issuer as a web login uses it; *auth.Verifier is one.
type Provider interface {
	Endpoints(ctx context.Context) (auth.Endpoints, error)
	Exchange(ctx context.Context, x auth.CodeExchange) (auth.Tokens, error)
	VerifyIDToken(ctx context.Context, raw, nonce, accessToken string) (auth.Principal, error)
}

// Directory finds the member a login belongs to; *directory.Resolver is one.
type Directory interface {
	Person(ctx context.Context, tenant, login string) (directory.Actor, error)
}

// Auditor appends to the audit trail; a store.Store is one (through Tx).
type Auditor interface {
	Tx(ctx context.Context, fn func(store.Tx) error) error
}

// Config configures a Manager.
type Config struct {
	Provider  Provider
	Directory Directory
	Audit     Auditor
	// Tenant is the CPTS whose directory people log into.
	Tenant string
	// PublicURL is the URL people use (no trailing slash); the callback is
	// PublicURL + CallbackPath and must be registered at the issuer.
	PublicURL string
	// ClientID names the web client at the issuer's end-session endpoint;
	// ClientSecret authenticates the code exchange (empty: public client).
	ClientID, ClientSecret string
	// TTL is a session's absolute lifetime (default 8 h); IdleTimeout ends
	// a session unused for that long (default 30 min).
	TTL, IdleTimeout time.Duration
	// MaxSessions bounds the sessions held (default 100 000): past it the
	// oldest are dropped.
	MaxSessions int
	Now         func() time.Time
	Logger      *slog.Logger
}

// Session is one logged-in browser.
type Session struct {
	ID      string
	Login   string
	Created time.Time
	Expires time.Time
	csrf    string
	idToken string
	seen    time.Time
	// ctx ends with the session (logout, expiry, removal from the
	// directory): the requests made under it, the live feed first, end
	// with it.
	ctx context.Context
	end context.CancelFunc
}

// pending is a login under way, between /login and the callback.
type pending struct {
	verifier, nonce, next string
	expires               time.Time
}

// Manager runs logins and holds sessions. It is safe for concurrent use.
type Manager struct {
	cfg     Config
	secure  bool
	cookie  string
	origin  string
	now     func() time.Time
	log     *slog.Logger
	mu      sync.Mutex
	byID    map[string]*Session
	logins  map[string]pending
	maxSess int
}

const (
	loginCookie  = "passerelle_login"
	loginTTL     = 10 * time.Minute
	maxPending   = 10000
	defaultTTL   = 8 * time.Hour
	defaultIdle  = 30 * time.Minute
	defaultMaxSe = 100000
)

// New returns a Manager.
func New(cfg Config) (*Manager, error) {
	if cfg.Provider == nil || cfg.Directory == nil || cfg.Audit == nil {
		return nil, errors.New("websession: provider, directory and audit are required")
	}
	u, err := url.Parse(cfg.PublicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("websession: public URL %q is not an absolute http(s) URL", cfg.PublicURL)
	}
	m := &Manager{cfg: cfg, secure: u.Scheme == "https", origin: u.Scheme + "://" + u.Host, now: cfg.Now, log: cfg.Logger,
		byID: map[string]*Session{}, logins: map[string]pending{}, maxSess: cfg.MaxSessions}
	m.cfg.PublicURL = strings.TrimSuffix(cfg.PublicURL, "/")
	if m.now == nil {
		m.now = time.Now
	}
	if m.log == nil {
		m.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if m.cfg.TTL <= 0 {
		m.cfg.TTL = defaultTTL
	}
	if m.cfg.IdleTimeout <= 0 {
		m.cfg.IdleTimeout = defaultIdle
	}
	if m.maxSess <= 0 {
		m.maxSess = defaultMaxSe
	}
	// __Host-: the browser accepts the cookie only over HTTPS, for this
	// host alone and path /, so a sibling subdomain cannot plant one.
	m.cookie = "passerelle_session"
	if m.secure {
		m.cookie = "__Host-passerelle_session"
	}
	return m, nil
}

// Register adds the login, callback and logout routes to mux.
func (m *Manager) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET "+LoginPath, m.login)
	mux.HandleFunc("GET "+CallbackPath, m.callback)
	mux.HandleFunc("POST "+LogoutPath, m.logout)
}

func random() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// localPath keeps next a path of this site, else "/". Browsers drop tabs
// and newlines from a URL and read a backslash as a slash, so
// "/\t/evil.example" or "/\\evil.example" would land on another host like
// "//evil.example": a control character or a backslash anywhere refuses the
// path, and what is left must parse as a path alone (no scheme, no host)
// that starts with a single slash.
func localPath(next string) string {
	if next == "" || next[0] != '/' || strings.HasPrefix(next, "//") {
		return "/"
	}
	for i := 0; i < len(next); i++ {
		if c := next[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return "/"
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" ||
		!strings.HasPrefix(u.Path, "/") || strings.HasPrefix(u.Path, "//") {
		return "/"
	}
	return next
}

func (m *Manager) redirectURI() string { return m.cfg.PublicURL + CallbackPath }

func (m *Manager) login(w http.ResponseWriter, r *http.Request) {
	ep, err := m.cfg.Provider.Endpoints(r.Context())
	if err != nil {
		m.log.ErrorContext(r.Context(), "login: identity provider unavailable", "error", err)
		m.page(w, http.StatusServiceUnavailable, "Connexion impossible", "Le fournisseur d'identité ne répond pas. Réessayez dans un instant.",
			"The identity provider is unavailable. Try again in a moment.")
		return
	}
	state, verifier, nonce := random(), random(), random()
	now := m.now()
	m.mu.Lock()
	for k, p := range m.logins {
		if !now.Before(p.expires) || len(m.logins) >= maxPending {
			delete(m.logins, k)
		}
	}
	m.logins[state] = pending{verifier: verifier, nonce: nonce, next: localPath(r.URL.Query().Get("next")), expires: now.Add(loginTTL)}
	m.mu.Unlock()
	// The state is also bound to this browser: a callback with a state
	// started elsewhere (login CSRF) is refused.
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: state, Path: CallbackPath, MaxAge: int(loginTTL / time.Second),
		HttpOnly: true, Secure: m.secure, SameSite: http.SameSiteLaxMode})
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{"response_type": {"code"}, "client_id": {m.cfg.ClientID}, "redirect_uri": {m.redirectURI()},
		"scope": {"openid profile"}, "state": {state}, "nonce": {nonce},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
	target := ep.Authorization
	if strings.Contains(target, "?") {
		target += "&" + q.Encode()
	} else {
		target += "?" + q.Encode()
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, target, http.StatusFound)
}

func (m *Manager) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	state := q.Get("state")
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Path: CallbackPath, MaxAge: -1, HttpOnly: true, Secure: m.secure, SameSite: http.SameSiteLaxMode})
	ck, err := r.Cookie(loginCookie)
	m.mu.Lock()
	p, ok := m.logins[state]
	if ok {
		delete(m.logins, state)
	}
	m.mu.Unlock()
	if state == "" || !ok || err != nil || subtle.ConstantTimeCompare([]byte(ck.Value), []byte(state)) != 1 || !m.now().Before(p.expires) {
		m.failed(w, r, "", "unknown, expired or foreign login state", http.StatusBadRequest,
			"Cette connexion a expiré ou n'a pas été demandée depuis ce navigateur.", "This login has expired or was not started from this browser.")
		return
	}
	if e := q.Get("error"); e != "" {
		m.failed(w, r, "", "issuer refused: "+e, http.StatusUnauthorized,
			"Le fournisseur d'identité a refusé la connexion.", "The identity provider refused the login.")
		return
	}
	tok, err := m.cfg.Provider.Exchange(r.Context(), auth.CodeExchange{Code: q.Get("code"), CodeVerifier: p.verifier,
		RedirectURI: m.redirectURI(), ClientSecret: m.cfg.ClientSecret})
	if err != nil {
		status := http.StatusUnauthorized
		if errors.Is(err, auth.ErrUnavailable) {
			status = http.StatusServiceUnavailable
		}
		m.failed(w, r, "", "code exchange: "+err.Error(), status,
			"La connexion n'a pas pu être confirmée auprès du fournisseur d'identité.", "The login could not be confirmed with the identity provider.")
		return
	}
	pr, err := m.cfg.Provider.VerifyIDToken(r.Context(), tok.IDToken, p.nonce, tok.AccessToken)
	if err != nil {
		m.failed(w, r, "", "ID token: "+err.Error(), http.StatusUnauthorized,
			"L'identité renvoyée par le fournisseur d'identité est invalide.", "The identity returned by the identity provider is invalid.")
		return
	}
	a, err := m.cfg.Directory.Person(r.Context(), m.cfg.Tenant, pr.Login)
	if errors.Is(err, directory.ErrUnknown) {
		m.failed(w, r, pr.Login, "not in the directory", http.StatusForbidden,
			"Ce compte n'est pas inscrit à l'annuaire de la CPTS.", "This account is not registered in the CPTS directory.")
		return
	}
	if err != nil {
		m.log.ErrorContext(r.Context(), "login: directory lookup failed", "error", err)
		m.page(w, http.StatusInternalServerError, "Connexion impossible", "Erreur interne.", "Internal error.")
		return
	}
	now := m.now()
	s := &Session{ID: random(), Login: pr.Login, Created: now, Expires: now.Add(m.cfg.TTL), csrf: random(), idToken: tok.IDToken, seen: now}
	s.ctx, s.end = context.WithCancel(context.Background())
	if err := m.audit(r.Context(), store.AuditRecord{Agent: a.Reference(), Action: "E", Entity: auditLogin, Outcome: "0"}); err != nil {
		m.log.ErrorContext(r.Context(), "login: audit failed", "error", err)
		m.page(w, http.StatusInternalServerError, "Connexion impossible", "Erreur interne.", "Internal error.")
		return
	}
	m.mu.Lock()
	m.sweepLocked(now)
	m.byID[s.ID] = s
	m.mu.Unlock()
	m.log.InfoContext(r.Context(), "login", "agent", a.Reference())
	http.SetCookie(w, &http.Cookie{Name: m.cookie, Value: s.ID, Path: "/", MaxAge: int(m.cfg.TTL / time.Second), HttpOnly: true, Secure: m.secure,
		SameSite: http.SameSiteLaxMode})
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, p.next, http.StatusSeeOther)
}

// endLocked forgets a session and ends the requests still running under it.
func (m *Manager) endLocked(s *Session) {
	delete(m.byID, s.ID)
	if s.end != nil {
		s.end()
	}
}

// sweepLocked drops expired sessions and, past the bound, the oldest.
func (m *Manager) sweepLocked(now time.Time) {
	if len(m.byID) < m.maxSess/2 {
		return
	}
	for _, s := range m.byID {
		if m.expired(s, now) {
			m.endLocked(s)
		}
	}
	for len(m.byID) >= m.maxSess {
		var oldest *Session
		for _, s := range m.byID {
			if oldest == nil || s.Created.Before(oldest.Created) {
				oldest = s
			}
		}
		m.endLocked(oldest)
	}
}

func (m *Manager) expired(s *Session, now time.Time) bool {
	return !now.Before(s.Expires) || now.Sub(s.seen) >= m.cfg.IdleTimeout
}

// failed answers a refused login, after recording it in the audit trail.
func (m *Manager) failed(w http.ResponseWriter, r *http.Request, login, reason string, status int, fr, en string) {
	m.log.WarnContext(r.Context(), "login refused", "reason", reason)
	if err := m.audit(r.Context(), store.AuditRecord{Action: "E", Entity: auditLogin, Outcome: "4", Detail: login}); err != nil {
		m.log.ErrorContext(r.Context(), "login: audit failed", "error", err)
	}
	m.page(w, status, "Connexion refusée", fr, en)
}

// AuditFailedLogin records a failed login that happened at the identity
// provider itself (the development provider's wrong password).
func (m *Manager) AuditFailedLogin(ctx context.Context, login string) {
	if err := m.audit(ctx, store.AuditRecord{Action: "E", Entity: auditLogin, Outcome: "4", Detail: login}); err != nil {
		m.log.ErrorContext(ctx, "login: audit failed", "error", err)
	}
}

func (m *Manager) audit(ctx context.Context, rec store.AuditRecord) error {
	rec.Tenant, rec.Time = m.cfg.Tenant, m.now()
	return m.cfg.Audit.Tx(context.WithoutCancel(ctx), func(tx store.Tx) error { return tx.Audit(ctx, rec) })
}

func (m *Manager) logout(w http.ResponseWriter, r *http.Request) {
	s, a, ok := m.current(r)
	if ok {
		if err := m.CheckCSRF(r); err != nil {
			m.page(w, http.StatusForbidden, "Déconnexion refusée", "Formulaire expiré ou d'une autre origine : rechargez la page.",
				"The form has expired or comes from elsewhere: reload the page.")
			return
		}
		m.mu.Lock()
		m.endLocked(s)
		m.mu.Unlock()
		if err := m.audit(r.Context(), store.AuditRecord{Agent: a.Reference(), Action: "E", Entity: auditLogout, Outcome: "0"}); err != nil {
			m.log.ErrorContext(r.Context(), "logout: audit failed", "error", err)
		}
	}
	http.SetCookie(w, &http.Cookie{Name: m.cookie, Path: "/", MaxAge: -1, HttpOnly: true, Secure: m.secure, SameSite: http.SameSiteLaxMode})
	target := m.cfg.PublicURL + "/"
	if ep, err := m.cfg.Provider.Endpoints(r.Context()); err == nil && ep.EndSession != "" {
		q := url.Values{"post_logout_redirect_uri": {m.cfg.PublicURL + "/"}, "client_id": {m.cfg.ClientID}}
		if ok && s.idToken != "" {
			q.Set("id_token_hint", s.idToken)
		}
		sep := "?"
		if strings.Contains(ep.EndSession, "?") {
			sep = "&"
		}
		target = ep.EndSession + sep + q.Encode()
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// current returns the request's live session and its actor.
func (m *Manager) current(r *http.Request) (*Session, directory.Actor, bool) {
	ck, err := r.Cookie(m.cookie)
	if err != nil || ck.Value == "" {
		return nil, directory.Actor{}, false
	}
	now := m.now()
	m.mu.Lock()
	s, ok := m.byID[ck.Value]
	if ok && m.expired(s, now) {
		m.endLocked(s)
		ok = false
	}
	if ok {
		s.seen = now
	}
	m.mu.Unlock()
	if !ok {
		return nil, directory.Actor{}, false
	}
	a, err := m.cfg.Directory.Person(r.Context(), m.cfg.Tenant, s.Login)
	if err != nil {
		if errors.Is(err, directory.ErrUnknown) {
			// Removed from the directory: the session ends now.
			m.mu.Lock()
			m.endLocked(s)
			m.mu.Unlock()
		} else {
			m.log.ErrorContext(r.Context(), "session: directory lookup failed", "error", err)
		}
		return nil, directory.Actor{}, false
	}
	return s, a, true
}

// bind returns ctx ended also when the session ends, so that a request
// made under a session, such as the live feed's open stream, does not
// outlive a logout.
func (s *Session) bind(ctx context.Context) (context.Context, func()) {
	if s.ctx == nil {
		return ctx, func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.ctx, cancel)
	return ctx, func() { stop(); cancel() }
}

type sessionKey struct{}

// SessionFrom returns the session of a request that went through
// Middleware or Require.
func SessionFrom(ctx context.Context) (Session, bool) {
	s, ok := ctx.Value(sessionKey{}).(*Session)
	if !ok {
		return Session{}, false
	}
	return Session{ID: s.ID, Login: s.Login, Created: s.Created, Expires: s.Expires, csrf: s.csrf}, true
}

// Middleware puts the session's actor in the request's context
// (access.WithActor). A request without a live session passes through
// without an actor.
func (m *Manager) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, a, ok := m.current(r)
		if ok {
			ctx, stop := s.bind(r.Context())
			defer stop()
			r = r.WithContext(context.WithValue(access.WithActor(ctx, a), sessionKey{}, s))
		}
		next.ServeHTTP(w, r)
	})
}

// Require is Middleware for pages that need a login: a GET without a
// session goes to the login (and comes back), anything else answers 401;
// an unsafe method without the session's CSRF token answers 403.
func (m *Manager) Require(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, a, ok := m.current(r)
		if !ok {
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				http.Redirect(w, r, LoginPath+"?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			m.page(w, http.StatusUnauthorized, "Connexion requise", "Votre session a expiré : reconnectez-vous.", "Your session has expired: log in again.")
			return
		}
		ctx, stop := s.bind(r.Context())
		defer stop()
		r = r.WithContext(context.WithValue(access.WithActor(ctx, a), sessionKey{}, s))
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
		default:
			if err := m.CheckCSRF(r); err != nil {
				m.page(w, http.StatusForbidden, "Formulaire refusé", "Formulaire expiré ou d'une autre origine : rechargez la page et recommencez.",
					"The form has expired or comes from elsewhere: reload the page and try again.")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// CSRFToken returns the CSRF token of the request's session, for the hidden
// field CSRFField of every form; empty without a session.
func (m *Manager) CSRFToken(r *http.Request) string {
	if s, ok := r.Context().Value(sessionKey{}).(*Session); ok {
		return s.csrf
	}
	if s, _, ok := m.current(r); ok {
		return s.csrf
	}
	return ""
}

// CheckCSRF refuses a request that does not carry its session's CSRF token
// (form field CSRFField or header X-CSRF-Token), or whose Origin is another
// site. It reads the form (ParseForm) if needed.
func (m *Manager) CheckCSRF(r *http.Request) error {
	if o := r.Header.Get("Origin"); o != "" && o != m.origin {
		return fmt.Errorf("%w: request from origin %s", ErrCSRF, o)
	}
	want := m.CSRFToken(r)
	if want == "" {
		return fmt.Errorf("%w: no session", ErrCSRF)
	}
	got := r.Header.Get(CSRFHeader)
	if got == "" {
		got = r.PostFormValue(CSRFField)
	}
	if subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return ErrCSRF
	}
	return nil
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="fr"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} — Passerelle</title></head>
<body><main><h1>{{.Title}}</h1><p>{{.FR}}</p><p lang="en">{{.EN}}</p><p><a href="` + LoginPath + `">Se connecter / Log in</a></p></main></body></html>
`))

func (m *Manager) page(w http.ResponseWriter, status int, title, fr, en string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	w.WriteHeader(status)
	_ = pageTmpl.Execute(w, struct{ Title, FR, EN string }{title, fr, en})
}
