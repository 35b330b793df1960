// Package devidp is the development OpenID Connect provider that Passerelle
// runs when no external issuer is configured, so that the single binary works
// out of the box: a login form for people (authorization code with PKCE), the
// client-credentials grant for systems, discovery and a JWKS.
//
// It is a real provider, not a bypass: its tokens are RS256-signed and the API
// verifies them with package auth through discovery and the JWKS, exactly as
// it verifies Keycloak's. Nothing here skips or weakens that verification.
// It must never run in production; refusing it there is the caller's job
// (PASSERELLE_ENV=production).
//
// Signing keys live in <data dir>/dev-idp/ (PEM, 0600, directory 0700) so
// tokens survive restarts and "passerelle dev token" can mint without a
// server (MintFromDataDir).
//
// Wiring, in the process that serves the public URL:
//
//	idp, err := devidp.New(devidp.Config{DataDir: dir, Issuer: publicURL + devidp.MountPath, Users: users, Clients: clients, Logger: log})
//	mux.Handle(devidp.MountPath+"/", idp.Handler())
//	v, err := auth.NewVerifier(ctx, auth.Config{Issuer: idp.Issuer(), ClientID: "passerelle", HTTPClient: idp.HTTPClient()})
//
// HTTPClient routes the verifier's discovery and JWKS requests to Handler in
// process, so verification works before the server listens and whatever the
// public URL resolves to from inside.
package devidp

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// User is a person who can log in.
type User struct {
	Login    string
	Password string
	Name     string
}

// Client is a registered OAuth client.
type Client struct {
	ID     string
	Secret string
	// RedirectURIs are the only redirect_uri values accepted, compared
	// exactly (RFC 9700 §4.1.3: no pattern matching).
	RedirectURIs []string
	// PostLogoutRedirectURIs are accepted as post_logout_redirect_uri at
	// logout, as are the RedirectURIs.
	PostLogoutRedirectURIs []string
	// Public clients (a browser or native app) hold no secret: they may
	// only use the authorization code grant, protected by PKCE.
	Public bool
}

// Config configures a Provider.
type Config struct {
	// DataDir holds the signing keys, under DataDir/dev-idp/.
	DataDir string
	// Issuer is <public URL>/dev-idp.
	Issuer string
	// Audience is put in every access token's aud: the web client id that
	// the API expects. Default "passerelle".
	Audience string
	Users    []User
	Clients  []Client
	// TokenTTL is the lifetime of the tokens issued. Default one hour.
	TokenTTL time.Duration
	// Now tells the time. Default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
	// Production is set in production mode: New then refuses to start.
	Production bool
}

const (
	defaultAudience = "passerelle"
	defaultTokenTTL = time.Hour
	codeTTL         = 60 * time.Second
	maxPendingCodes = 10000
	// serviceAccountPrefix makes a client's subject recognisable, as
	// Keycloak does for its service accounts.
	serviceAccountPrefix = "service-account-"
)

// subjectNamespace makes the subject of a person a stable UUID derived from
// the login, so it survives restarts and key rotations.
var subjectNamespace = uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://passerelle.health/dev-idp/user"))

// Provider is the development identity provider. It is safe for concurrent
// use.
type Provider struct {
	issuer   string
	issuerU  *url.URL
	audience string
	users    map[string]User
	clients  map[string]Client
	ttl      time.Duration
	now      func() time.Time
	log      *slog.Logger
	keyDir   string
	handler  http.Handler

	mu   sync.RWMutex
	keys []*signingKey // oldest first; the last one signs

	codesMu sync.Mutex
	codes   map[string]authCode

	onLoginFailure func(login string)
}

// OnLoginFailure sets fn to be called, with the login tried, after a wrong
// user name or password at the login form (for the audit trail). Call it
// before the provider serves.
func (p *Provider) OnLoginFailure(fn func(login string)) { p.onLoginFailure = fn }

// New starts the provider: it loads the signing keys from the data directory,
// creating the first one if there is none.
func New(cfg Config) (*Provider, error) {
	if cfg.Production {
		return nil, errors.New("devidp: the development identity provider never runs in production mode (PASSERELLE_ENV=production): set PASSERELLE_OIDC_ISSUER")
	}
	p, err := newProvider(cfg)
	if err != nil {
		return nil, err
	}
	keys, err := loadKeys(p.keyDir, true, p.warn)
	if err != nil {
		return nil, fmt.Errorf("devidp: %w", err)
	}
	if len(keys) == 0 {
		k, err := createKey(p.keyDir, 1)
		if errors.Is(err, fs.ErrExist) {
			// Another process created it between our read and write.
			keys, err = loadKeys(p.keyDir, true, p.warn)
		} else if err == nil {
			keys = []*signingKey{k}
		}
		if err != nil {
			return nil, fmt.Errorf("devidp: %w", err)
		}
	}
	p.keys = keys
	p.log.Warn("development identity provider active (no PASSERELLE_OIDC_ISSUER): for development only, refused with PASSERELLE_ENV=production",
		"issuer", p.issuer, "key_dir", p.keyDir, "users", len(p.users), "clients", len(p.clients))
	return p, nil
}

// MintFromDataDir signs a token for subject (a user login or a client id) with
// the keys an earlier start left in dataDir, without starting a provider: it
// is what "passerelle dev token" runs. It never creates keys, since a token
// signed with a key no server publishes would not verify.
func MintFromDataDir(dataDir, issuer, audience, subject string, users []User, clients []Client, ttl time.Duration) (string, error) {
	p, err := newProvider(Config{DataDir: dataDir, Issuer: issuer, Audience: audience, Users: users, Clients: clients, TokenTTL: ttl})
	if err != nil {
		return "", err
	}
	keys, err := loadKeys(p.keyDir, false, p.warn)
	if err != nil {
		return "", fmt.Errorf("devidp: %w", err)
	}
	if len(keys) == 0 {
		return "", fmt.Errorf("devidp: %w in %s: start passerelle once first", errNoKeys, p.keyDir)
	}
	p.keys = keys
	return p.Mint(subject, ttl)
}

func newProvider(cfg Config) (*Provider, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("devidp: data directory is required")
	}
	u, err := url.Parse(cfg.Issuer)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("devidp: issuer %q must be an absolute http(s) URL without query or fragment", cfg.Issuer)
	}
	issuer := strings.TrimSuffix(cfg.Issuer, "/")
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	p := &Provider{
		issuer:   issuer,
		issuerU:  u,
		audience: cfg.Audience,
		users:    make(map[string]User, len(cfg.Users)),
		clients:  make(map[string]Client, len(cfg.Clients)),
		ttl:      cfg.TokenTTL,
		now:      cfg.Now,
		log:      cfg.Logger,
		keyDir:   keyDir(cfg.DataDir),
		codes:    make(map[string]authCode),
	}
	if p.audience == "" {
		p.audience = defaultAudience
	}
	if p.ttl <= 0 {
		p.ttl = defaultTokenTTL
	}
	if p.now == nil {
		p.now = time.Now
	}
	if p.log == nil {
		p.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	for _, usr := range cfg.Users {
		if usr.Login == "" || usr.Password == "" {
			return nil, fmt.Errorf("devidp: user %q: login and password are required", usr.Login)
		}
		if _, dup := p.users[usr.Login]; dup {
			return nil, fmt.Errorf("devidp: user %q listed twice", usr.Login)
		}
		p.users[usr.Login] = usr
	}
	for _, c := range cfg.Clients {
		if c.ID == "" {
			return nil, errors.New("devidp: client without id")
		}
		if _, dup := p.clients[c.ID]; dup {
			return nil, fmt.Errorf("devidp: client %q listed twice", c.ID)
		}
		// Mint takes a user or a client name: one name must not be both.
		if _, clash := p.users[c.ID]; clash {
			return nil, fmt.Errorf("devidp: %q is both a user and a client", c.ID)
		}
		if !c.Public && c.Secret == "" {
			return nil, fmt.Errorf("devidp: confidential client %q needs a secret", c.ID)
		}
		if c.Public && c.Secret != "" {
			return nil, fmt.Errorf("devidp: public client %q must not have a secret", c.ID)
		}
		for _, r := range slices.Concat(c.RedirectURIs, c.PostLogoutRedirectURIs) {
			ru, err := url.Parse(r)
			if err != nil || !ru.IsAbs() || ru.Fragment != "" {
				return nil, fmt.Errorf("devidp: client %q: redirect URI %q must be absolute, without fragment", c.ID, r)
			}
		}
		p.clients[c.ID] = c
	}
	p.handler = p.routes()
	return p, nil
}

func (p *Provider) warn(msg string, args ...any) { p.log.Warn(msg, args...) }

// Issuer returns the issuer URL, as it appears in tokens and discovery.
func (p *Provider) Issuer() string { return p.issuer }

// Rotate creates a new signing key, stores it and makes it current. Earlier
// keys stay published in the JWKS, so tokens they signed keep verifying,
// until RemoveKey. It returns the new key id.
func (p *Provider) Rotate() (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	next := 1
	if n := len(p.keys); n > 0 {
		next = p.keys[n-1].seq + 1
	}
	k, err := createKey(p.keyDir, next)
	if err != nil {
		return "", fmt.Errorf("devidp: rotate: %w", err)
	}
	p.keys = append(p.keys, k)
	p.log.Info("development signing key rotated", "kid", k.kid)
	return k.kid, nil
}

// RemoveKey withdraws an old key from the JWKS and deletes its file. The
// current key cannot be removed.
func (p *Provider) RemoveKey(kid string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := slices.IndexFunc(p.keys, func(k *signingKey) bool { return k.kid == kid })
	switch {
	case i < 0:
		return fmt.Errorf("devidp: no key %q", kid)
	case i == len(p.keys)-1:
		return fmt.Errorf("devidp: key %q is the current key; rotate first", kid)
	}
	if err := os.Remove(p.keys[i].path); err != nil {
		return fmt.Errorf("devidp: remove key: %w", err)
	}
	p.keys = slices.Delete(p.keys, i, i+1)
	return nil
}

// KeyIDs returns the published key ids, oldest first; the last one signs.
func (p *Provider) KeyIDs() []string {
	p.mu.RLock()
	defer p.mu.RUnlock()
	ids := make([]string, len(p.keys))
	for i, k := range p.keys {
		ids[i] = k.kid
	}
	return ids
}

func (p *Provider) currentKey() *signingKey {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.keys[len(p.keys)-1]
}

// Mint issues an access token for subject without a login: a person token
// (azp the audience client) if subject is a user, a client-credentials token
// if it is a client. ttl <= 0 means the configured lifetime.
func (p *Provider) Mint(subject string, ttl time.Duration) (string, error) {
	if ttl <= 0 {
		ttl = p.ttl
	}
	if u, ok := p.users[subject]; ok {
		return p.personToken(u, p.audience, "openid profile", ttl)
	}
	if c, ok := p.clients[subject]; ok {
		if c.Public {
			return "", fmt.Errorf("devidp: %q is a public client: it has no client-credentials tokens", subject)
		}
		return p.clientToken(c, ttl)
	}
	return "", fmt.Errorf("devidp: unknown user or client %q; known: %s", subject, strings.Join(p.knownNames(), ", "))
}

func (p *Provider) knownNames() []string {
	names := make([]string, 0, len(p.users)+len(p.clients))
	for n := range p.users {
		names = append(names, n)
	}
	for n, c := range p.clients {
		if !c.Public {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

// tokenClaims are the claims of every token this provider signs.
type tokenClaims struct {
	Issuer            string   `json:"iss"`
	Subject           string   `json:"sub"`
	Audience          []string `json:"aud"`
	AuthorizedParty   string   `json:"azp,omitempty"`
	ClientID          string   `json:"client_id,omitempty"`
	Expiry            int64    `json:"exp"`
	IssuedAt          int64    `json:"iat"`
	NotBefore         int64    `json:"nbf"`
	ID                string   `json:"jti"`
	Type              string   `json:"typ"`
	Scope             string   `json:"scope,omitempty"`
	PreferredUsername string   `json:"preferred_username,omitempty"`
	Name              string   `json:"name,omitempty"`
	Nonce             string   `json:"nonce,omitempty"`
	AuthTime          int64    `json:"auth_time,omitempty"`
	AccessTokenHash   string   `json:"at_hash,omitempty"`
}

func (p *Provider) baseClaims(ttl time.Duration) tokenClaims {
	now := p.now()
	return tokenClaims{
		Issuer:    p.issuer,
		Expiry:    now.Add(ttl).Unix(),
		IssuedAt:  now.Unix(),
		NotBefore: now.Unix(),
		ID:        uuid.NewString(),
	}
}

func userSubject(login string) string {
	return uuid.NewSHA1(subjectNamespace, []byte(login)).String()
}

// personToken is an access token for u, obtained through client azp. "typ"
// follows Keycloak ("Bearer" for access tokens, "ID" for ID tokens), which is
// what lets the verifier refuse an ID token presented as a bearer token.
func (p *Provider) personToken(u User, azp, scope string, ttl time.Duration) (string, error) {
	c := p.baseClaims(ttl)
	c.Subject = userSubject(u.Login)
	c.Audience = []string{p.audience}
	c.AuthorizedParty = azp
	c.Type = "Bearer"
	c.Scope = scope
	c.PreferredUsername = u.Login
	c.Name = u.Name
	return p.currentKey().sign(c, "at+jwt")
}

func (p *Provider) clientToken(cl Client, ttl time.Duration) (string, error) {
	c := p.baseClaims(ttl)
	c.Subject = serviceAccountPrefix + cl.ID
	c.Audience = []string{p.audience}
	c.AuthorizedParty = cl.ID
	c.ClientID = cl.ID
	c.Type = "Bearer"
	return p.currentKey().sign(c, "at+jwt")
}

func (p *Provider) idToken(u User, clientID, nonce, accessToken string, authTime time.Time) (string, error) {
	c := p.baseClaims(p.ttl)
	c.Subject = userSubject(u.Login)
	c.Audience = []string{clientID}
	c.AuthorizedParty = clientID
	c.Type = "ID"
	c.PreferredUsername = u.Login
	c.Name = u.Name
	c.Nonce = nonce
	c.AuthTime = authTime.Unix()
	// at_hash (OpenID Connect Core §3.1.3.6): left half of SHA-256.
	sum := sha256.Sum256([]byte(accessToken))
	c.AccessTokenHash = base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
	return p.currentKey().sign(c, "JWT")
}

// equalSecret compares in constant time. Hashing first makes the time
// independent of the lengths as well.
func equalSecret(got, want string) bool {
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// checkPassword does the same work whether or not the login exists, so the
// answer time does not reveal which logins do.
func (p *Provider) checkPassword(login, password string) (User, bool) {
	u, ok := p.users[login]
	want := u.Password
	if !ok {
		want = "\x00no such user"
	}
	if !equalSecret(password, want) || !ok {
		return User{}, false
	}
	return u, true
}

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails: crypto/rand aborts the program instead
	return base64.RawURLEncoding.EncodeToString(b)
}
