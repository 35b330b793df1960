package devidp

import (
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// MountPath is where the caller mounts Handler under the public URL, making
// the issuer <public URL>/dev-idp (docs/contract.md, "Configuration").
const MountPath = "/dev-idp"

//go:embed templates/*.html
var templateFS embed.FS

// Parsed once at start, so a broken template fails boot, not a login.
var pages = template.Must(template.ParseFS(templateFS, "templates/*.html"))

const (
	maxFormBytes = 64 << 10
	// maxParamLen bounds state, nonce and scope, which are echoed into
	// pages, codes and tokens.
	maxParamLen = 1024
	csrfCookie  = "devidp_csrf"

	msgBadCredentials = "Identifiant ou mot de passe incorrect"
	msgSessionExpired = "La session a expiré : veuillez réessayer."
)

// Handler serves the provider's endpoints at the issuer's paths:
// <issuer>/.well-known/openid-configuration, /jwks, /token, /authorize and
// /logout. Mount it without stripping the prefix:
//
//	mux.Handle(devidp.MountPath+"/", provider.Handler())
//
// Requests under MountPath are accepted as well when the issuer's path is
// longer, for a reverse proxy that strips the public URL's own path.
func (p *Provider) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest, ok := p.relative(r.URL.Path)
		if !ok {
			http.NotFound(w, r)
			return
		}
		r2 := new(http.Request)
		*r2 = *r
		r2.URL = new(url.URL)
		*r2.URL = *r.URL
		r2.URL.Path, r2.URL.RawPath = rest, ""
		p.handler.ServeHTTP(w, r2)
	})
}

// relative returns path relative to the issuer.
func (p *Provider) relative(path string) (string, bool) {
	for _, prefix := range []string{p.issuerU.Path, MountPath} {
		if rest, ok := strings.CutPrefix(path, prefix); ok && strings.HasPrefix(rest, "/") {
			return rest, true
		}
	}
	return "", false
}

func (p *Provider) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", p.serveDiscovery)
	mux.HandleFunc("GET /jwks", p.serveJWKS)
	mux.HandleFunc("POST /token", p.serveToken)
	mux.HandleFunc("GET /authorize", p.serveAuthorizeForm)
	mux.HandleFunc("POST /authorize", p.serveAuthorizeLogin)
	mux.HandleFunc("GET /logout", p.serveLogout)
	mux.HandleFunc("POST /logout", p.serveLogout)
	return mux
}

// discovery is the OpenID Provider Metadata (OpenID Connect Discovery 1.0
// §3, RFC 8414).
type discovery struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	JWKSURI                           string   `json:"jwks_uri"`
	EndSessionEndpoint                string   `json:"end_session_endpoint"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	ResponseModesSupported            []string `json:"response_modes_supported"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	SubjectTypesSupported             []string `json:"subject_types_supported"`
	IDTokenSigningAlgValuesSupported  []string `json:"id_token_signing_alg_values_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported"`
	ScopesSupported                   []string `json:"scopes_supported"`
	ClaimsSupported                   []string `json:"claims_supported"`
	AuthorizationResponseISS          bool     `json:"authorization_response_iss_parameter_supported"`
}

var supportedScopes = []string{"openid", "profile"}

func (p *Provider) serveDiscovery(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, discovery{
		Issuer:                            p.issuer,
		AuthorizationEndpoint:             p.issuer + "/authorize",
		TokenEndpoint:                     p.issuer + "/token",
		JWKSURI:                           p.issuer + "/jwks",
		EndSessionEndpoint:                p.issuer + "/logout",
		ResponseTypesSupported:            []string{"code"},
		ResponseModesSupported:            []string{"query"},
		GrantTypesSupported:               []string{"authorization_code", "client_credentials"},
		SubjectTypesSupported:             []string{"public"},
		IDTokenSigningAlgValuesSupported:  []string{string(jose.RS256)},
		TokenEndpointAuthMethodsSupported: []string{"client_secret_basic", "client_secret_post", "none"},
		CodeChallengeMethodsSupported:     []string{"S256"},
		ScopesSupported:                   supportedScopes,
		ClaimsSupported:                   []string{"iss", "sub", "aud", "azp", "exp", "iat", "nbf", "client_id", "preferred_username", "name", "nonce", "auth_time", "at_hash"},
		AuthorizationResponseISS:          true,
	})
}

func (p *Provider) serveJWKS(w http.ResponseWriter, r *http.Request) {
	p.mu.RLock()
	set := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, len(p.keys))}
	for i, k := range p.keys {
		set.Keys[i] = k.publicJWK()
	}
	p.mu.RUnlock()
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	json.NewEncoder(w).Encode(set)
}

// oauthError is an error response of RFC 6749 §5.2.
type oauthError struct {
	status int
	Code   string `json:"error"`
	Desc   string `json:"error_description,omitempty"`
}

func (e *oauthError) Error() string { return e.Code + ": " + e.Desc }

func errInvalidRequest(desc string) *oauthError {
	return &oauthError{http.StatusBadRequest, "invalid_request", desc}
}

func errInvalidGrant(desc string) *oauthError {
	return &oauthError{http.StatusBadRequest, "invalid_grant", desc}
}

// errInvalidClient answers 401: RFC 6749 §5.2 requires it (with a
// challenge) when the client tried HTTP authentication, and it is the
// clearer answer in every case.
func errInvalidClient(desc string) *oauthError {
	return &oauthError{http.StatusUnauthorized, "invalid_client", desc}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeOAuthError(w http.ResponseWriter, e *oauthError) {
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="dev-idp"`)
	}
	writeJSON(w, e.status, e)
}

// tokenResponse is the successful answer of RFC 6749 §5.1.
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	IDToken     string `json:"id_token,omitempty"`
	Scope       string `json:"scope,omitempty"`
}

func (p *Provider) serveToken(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, errInvalidRequest("unreadable form body"))
		return
	}
	form := r.PostForm
	// RFC 6749 §3.2: parameters must not be repeated.
	for name, vs := range form {
		if len(vs) > 1 {
			writeOAuthError(w, errInvalidRequest("parameter "+name+" repeated"))
			return
		}
	}
	client, oerr := p.authenticateClient(r)
	if oerr != nil {
		writeOAuthError(w, oerr)
		return
	}
	var resp tokenResponse
	switch grant := form.Get("grant_type"); grant {
	case "client_credentials":
		resp, oerr = p.grantClientCredentials(client)
	case "authorization_code":
		resp, oerr = p.grantAuthorizationCode(client, form)
	case "":
		oerr = errInvalidRequest("grant_type is required")
	default:
		oerr = &oauthError{http.StatusBadRequest, "unsupported_grant_type", "supported: authorization_code, client_credentials"}
	}
	if oerr != nil {
		writeOAuthError(w, oerr)
		return
	}
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, resp)
}

// authenticateClient applies RFC 6749 §2.3: HTTP Basic (client_secret_basic,
// whose parts are form-encoded) or client_id and client_secret in the body
// (client_secret_post), not both; a public client sends only client_id.
func (p *Provider) authenticateClient(r *http.Request) (Client, *oauthError) {
	form := r.PostForm
	id, secret := form.Get("client_id"), form.Get("client_secret")
	if user, pass, ok := r.BasicAuth(); ok {
		if secret != "" {
			return Client{}, errInvalidRequest("use one client authentication method")
		}
		var err1, err2 error
		user, err1 = url.QueryUnescape(user)
		pass, err2 = url.QueryUnescape(pass)
		if err1 != nil || err2 != nil {
			return Client{}, errInvalidClient("malformed client credentials")
		}
		if id != "" && id != user {
			return Client{}, errInvalidRequest("client_id differs from the authenticated client")
		}
		id, secret = user, pass
	}
	if id == "" {
		return Client{}, errInvalidClient("client authentication required")
	}
	c, ok := p.clients[id]
	if !ok {
		return Client{}, errInvalidClient("unknown client or wrong secret")
	}
	if c.Public {
		if secret != "" {
			return Client{}, errInvalidClient("public client must not send a secret")
		}
		return c, nil
	}
	if !equalSecret(secret, c.Secret) {
		return Client{}, errInvalidClient("unknown client or wrong secret")
	}
	return c, nil
}

func (p *Provider) grantClientCredentials(c Client) (tokenResponse, *oauthError) {
	if c.Public {
		return tokenResponse{}, &oauthError{http.StatusBadRequest, "unauthorized_client", "a public client cannot use client credentials"}
	}
	tok, err := p.clientToken(c, p.ttl)
	if err != nil {
		return tokenResponse{}, &oauthError{http.StatusInternalServerError, "server_error", ""}
	}
	return tokenResponse{AccessToken: tok, TokenType: "Bearer", ExpiresIn: int64(p.ttl / time.Second)}, nil
}

func (p *Provider) grantAuthorizationCode(c Client, form url.Values) (tokenResponse, *oauthError) {
	code := form.Get("code")
	if code == "" {
		return tokenResponse{}, errInvalidRequest("code is required")
	}
	// The code is consumed by any attempt, good or bad: a code is tried
	// once, so a stolen one cannot be used to guess the verifier.
	ac, ok := p.takeCode(code)
	const bad = "code unknown, expired, already used or not issued to this client"
	if !ok || !p.now().Before(ac.expires) || ac.clientID != c.ID {
		return tokenResponse{}, errInvalidGrant(bad)
	}
	if form.Get("redirect_uri") != ac.redirectURI {
		return tokenResponse{}, errInvalidGrant("redirect_uri differs from the authorization request")
	}
	// RFC 7636 §4.6.
	verifier := form.Get("code_verifier")
	sum := sha256.Sum256([]byte(verifier))
	if !validVerifier(verifier) || !equalSecret(base64.RawURLEncoding.EncodeToString(sum[:]), ac.challenge) {
		return tokenResponse{}, errInvalidGrant("PKCE verification failed")
	}
	access, err := p.personToken(ac.user, c.ID, ac.scope, p.ttl)
	if err != nil {
		return tokenResponse{}, &oauthError{http.StatusInternalServerError, "server_error", ""}
	}
	id, err := p.idToken(ac.user, c.ID, ac.nonce, access, ac.authTime)
	if err != nil {
		return tokenResponse{}, &oauthError{http.StatusInternalServerError, "server_error", ""}
	}
	return tokenResponse{AccessToken: access, TokenType: "Bearer", ExpiresIn: int64(p.ttl / time.Second), IDToken: id, Scope: ac.scope}, nil
}

// validVerifier checks RFC 7636 §4.1: 43 to 128 unreserved characters.
func validVerifier(v string) bool {
	if len(v) < 43 || len(v) > 128 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	return true
}

// validChallenge checks an S256 challenge: base64url without padding of 32
// bytes, hence 43 characters.
func validChallenge(c string) bool {
	b, err := base64.RawURLEncoding.DecodeString(c)
	return err == nil && len(b) == sha256.Size
}

type authCode struct {
	clientID    string
	redirectURI string
	challenge   string
	nonce       string
	scope       string
	user        User
	authTime    time.Time
	expires     time.Time
}

var errTooManyCodes = errors.New("too many pending authorization codes")

func (p *Provider) storeCode(ac authCode) (string, error) {
	p.codesMu.Lock()
	defer p.codesMu.Unlock()
	now := p.now()
	for k, c := range p.codes {
		if !now.Before(c.expires) {
			delete(p.codes, k)
		}
	}
	if len(p.codes) >= maxPendingCodes {
		return "", errTooManyCodes
	}
	code := randomToken()
	p.codes[code] = ac
	return code, nil
}

func (p *Provider) takeCode(code string) (authCode, bool) {
	p.codesMu.Lock()
	defer p.codesMu.Unlock()
	ac, ok := p.codes[code]
	delete(p.codes, code)
	return ac, ok
}

// authRequest is an authorization request (RFC 6749 §4.1.1, RFC 7636 §4.3).
type authRequest struct {
	client              Client
	redirectURI         string
	state               string
	nonce               string
	scope               string
	codeChallenge       string
	codeChallengeMethod string
	responseType        string
}

// authParams travel through the login form as hidden fields, and are
// checked again when it comes back.
var authParams = []string{"response_type", "client_id", "redirect_uri", "scope", "state", "nonce", "code_challenge", "code_challenge_method"}

// authFailure is a bad authorization request. With redirect, the error goes
// back to the client's redirect URI (RFC 6749 §4.1.2.1); without, the
// client or the redirect URI is itself in doubt, so the user is told and
// nothing is redirected: that would make an open redirector.
type authFailure struct {
	redirect bool
	code     string
	desc     string
}

func (p *Provider) parseAuthRequest(v url.Values) (authRequest, *authFailure) {
	for _, name := range []string{"client_id", "redirect_uri"} {
		if len(v[name]) > 1 {
			return authRequest{}, &authFailure{desc: "paramètre " + name + " répété"}
		}
	}
	c, ok := p.clients[v.Get("client_id")]
	if !ok {
		return authRequest{}, &authFailure{desc: "client inconnu"}
	}
	redirect := v.Get("redirect_uri")
	if !slices.Contains(c.RedirectURIs, redirect) {
		return authRequest{}, &authFailure{desc: "adresse de retour (redirect_uri) non enregistrée pour ce client"}
	}
	req := authRequest{
		client:              c,
		redirectURI:         redirect,
		state:               v.Get("state"),
		nonce:               v.Get("nonce"),
		codeChallenge:       v.Get("code_challenge"),
		codeChallengeMethod: v.Get("code_challenge_method"),
		responseType:        v.Get("response_type"),
	}
	fail := func(code, desc string) (authRequest, *authFailure) {
		return req, &authFailure{redirect: true, code: code, desc: desc}
	}
	for _, name := range authParams {
		if len(v[name]) > 1 {
			return fail("invalid_request", "parameter "+name+" repeated")
		}
		if len(v.Get(name)) > maxParamLen {
			return fail("invalid_request", "parameter "+name+" too long")
		}
	}
	if req.responseType != "code" {
		return fail("unsupported_response_type", "only response_type=code is supported")
	}
	if req.codeChallengeMethod != "S256" || !validChallenge(req.codeChallenge) {
		return fail("invalid_request", "PKCE is required: code_challenge with code_challenge_method=S256")
	}
	var scopes []string
	for _, s := range strings.Fields(v.Get("scope")) {
		if slices.Contains(supportedScopes, s) && !slices.Contains(scopes, s) {
			scopes = append(scopes, s)
		}
	}
	req.scope = strings.Join(scopes, " ")
	return req, nil
}

// redirectTo sends the browser to the client's registered redirect URI with
// params added to its query, plus iss (RFC 9207) against mix-up attacks.
func (p *Provider) redirectTo(w http.ResponseWriter, r *http.Request, target string, params url.Values) {
	u, err := url.Parse(target)
	if err != nil { // registered URIs were checked in New
		http.Error(w, "bad redirect URI", http.StatusInternalServerError)
		return
	}
	q := u.Query()
	for k, vs := range params {
		for _, v := range vs {
			if v != "" {
				q.Set(k, v)
			}
		}
	}
	u.RawQuery = q.Encode()
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
}

func (p *Provider) failAuth(w http.ResponseWriter, r *http.Request, req authRequest, f *authFailure) {
	if !f.redirect {
		p.renderMessage(w, http.StatusBadRequest, "Requête d’autorisation invalide", f.desc)
		return
	}
	p.redirectTo(w, r, req.redirectURI, url.Values{
		"error": {f.code}, "error_description": {f.desc}, "state": {req.state}, "iss": {p.issuer},
	})
}

func (p *Provider) serveAuthorizeForm(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	req, f := p.parseAuthRequest(q)
	if f != nil {
		p.failAuth(w, r, req, f)
		return
	}
	p.renderLogin(w, r, http.StatusOK, q, "", "")
}

func (p *Provider) serveAuthorizeLogin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		p.renderMessage(w, http.StatusBadRequest, "Requête d’autorisation invalide", "formulaire illisible")
		return
	}
	form := r.PostForm
	req, f := p.parseAuthRequest(form)
	if f != nil {
		p.failAuth(w, r, req, f)
		return
	}
	login := form.Get("username")
	// Double-submit cookie: a page on another site can post this form, but
	// cannot read or set our cookie.
	if ck, err := r.Cookie(csrfCookie); err != nil || ck.Value == "" || !equalSecret(ck.Value, form.Get("csrf")) {
		p.renderLogin(w, r, http.StatusBadRequest, form, login, msgSessionExpired)
		return
	}
	user, ok := p.checkPassword(login, form.Get("password"))
	if !ok {
		if p.onLoginFailure != nil {
			p.onLoginFailure(login)
		}
		p.renderLogin(w, r, http.StatusUnauthorized, form, login, msgBadCredentials)
		return
	}
	now := p.now()
	code, err := p.storeCode(authCode{
		clientID:    req.client.ID,
		redirectURI: req.redirectURI,
		challenge:   req.codeChallenge,
		nonce:       req.nonce,
		scope:       req.scope,
		user:        user,
		authTime:    now,
		expires:     now.Add(codeTTL),
	})
	if err != nil {
		p.failAuth(w, r, req, &authFailure{redirect: true, code: "temporarily_unavailable", desc: err.Error()})
		return
	}
	p.redirectTo(w, r, req.redirectURI, url.Values{"code": {code}, "state": {req.state}, "iss": {p.issuer}})
}

type hiddenField struct{ Name, Value string }

type loginPage struct {
	Action   string
	Hidden   []hiddenField
	Username string
	Error    string
}

func (p *Provider) renderLogin(w http.ResponseWriter, r *http.Request, status int, params url.Values, username, msg string) {
	token := ""
	if ck, err := r.Cookie(csrfCookie); err == nil && len(ck.Value) == 43 {
		token = ck.Value // keep it, so that a second open tab stays valid
	} else {
		token = randomToken()
	}
	http.SetCookie(w, &http.Cookie{
		Name:     csrfCookie,
		Value:    token,
		Path:     p.issuerU.Path + "/authorize",
		HttpOnly: true,
		Secure:   p.issuerU.Scheme == "https",
		SameSite: http.SameSiteLaxMode,
	})
	page := loginPage{Action: p.issuer + "/authorize", Username: username, Error: msg}
	for _, name := range authParams {
		if v := params.Get(name); v != "" {
			page.Hidden = append(page.Hidden, hiddenField{name, v})
		}
	}
	page.Hidden = append(page.Hidden, hiddenField{"csrf", token})
	p.render(w, status, "login.html", page)
}

type messagePage struct{ Title, Message string }

func (p *Provider) renderMessage(w http.ResponseWriter, status int, title, msg string) {
	p.render(w, status, "message.html", messagePage{title, msg})
}

func (p *Provider) render(w http.ResponseWriter, status int, name string, data any) {
	var buf strings.Builder
	if err := pages.ExecuteTemplate(&buf, name, data); err != nil {
		p.log.Error("render page", "page", name, "error", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	h.Set("Cache-Control", "no-store")
	// No form-action: browsers apply it to the redirect that follows the
	// login, which goes to the client's own origin.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	w.Write([]byte(buf.String()))
}

// serveLogout is RP-initiated logout (OpenID Connect RP-Initiated Logout
// 1.0). The provider keeps no login session, so there is nothing to end
// here; it only sends the browser back, and only to a registered address.
func (p *Provider) serveLogout(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		p.renderMessage(w, http.StatusBadRequest, "Déconnexion", "requête illisible")
		return
	}
	target := r.Form.Get("post_logout_redirect_uri")
	if target == "" {
		p.renderMessage(w, http.StatusOK, "Déconnexion", "Vous êtes déconnecté.")
		return
	}
	if !p.logoutTargetAllowed(r.Form.Get("client_id"), target) {
		p.renderMessage(w, http.StatusBadRequest, "Déconnexion", "Adresse de retour non enregistrée.")
		return
	}
	p.redirectTo(w, r, target, url.Values{"state": {r.Form.Get("state")}})
}

func (p *Provider) logoutTargetAllowed(clientID, target string) bool {
	allowed := func(c Client) bool {
		return slices.Contains(c.PostLogoutRedirectURIs, target) || slices.Contains(c.RedirectURIs, target)
	}
	if clientID != "" {
		c, ok := p.clients[clientID]
		return ok && allowed(c)
	}
	for _, c := range p.clients {
		if allowed(c) {
			return true
		}
	}
	return false
}
