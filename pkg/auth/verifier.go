package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
)

// Config configures a Verifier.
type Config struct {
	// Issuer is the identity provider's issuer URL, exactly as its
	// discovery document states it (an absolute http or https URL).
	Issuer string
	// ClientID is the web application's client id. A token is accepted
	// only if its aud contains it or its azp equals it (docs/contract.md, "Configuration",
	// PASSERELLE_OIDC_CLIENT_ID).
	ClientID string
	// PractitionerClaim names the claim matched to a Practitioner
	// identifier. Default "preferred_username".
	PractitionerClaim string
	// HTTPClient fetches the discovery document and the key set. The
	// development provider passes one whose transport serves it in
	// process. Default: a client with a 10 s timeout.
	HTTPClient *http.Client
	// Skew is the clock difference tolerated on exp and nbf. Default 30 s.
	Skew time.Duration
	// Now tells the time; it also paces retries of discovery and key set
	// fetches. Default time.Now.
	Now func() time.Time
	// Logger receives a warning when the provider cannot be reached at
	// start. Default: discard.
	Logger *slog.Logger
}

const (
	defaultPractitionerClaim = "preferred_username"
	defaultSkew              = 30 * time.Second
	// discoveryRetryInterval paces discovery while the provider is down,
	// so requests arriving meanwhile fail fast instead of each waiting for
	// a connection timeout.
	discoveryRetryInterval = 5 * time.Second
	// maxTokenBytes bounds what is parsed. Keycloak tokens with many roles
	// reach a few kilobytes; anything far larger is not a token of ours.
	maxTokenBytes = 32 << 10
)

// Verifier checks bearer tokens against one issuer. It is safe for
// concurrent use.
type Verifier struct {
	issuer   string
	clientID string
	claim    string
	client   *http.Client
	skew     time.Duration
	now      func() time.Time

	idv atomic.Pointer[oidc.IDTokenVerifier] // nil until discovery succeeds
	ep  atomic.Pointer[Endpoints]            // set with idv

	mu          sync.Mutex // serialises discovery
	triedAt     time.Time
	discoverErr error
}

// NewVerifier validates cfg and tries discovery once. If the issuer cannot be
// reached yet (it may start after us), NewVerifier still succeeds: Verify
// retries discovery, at most every few seconds, and meanwhile returns an
// error wrapping ErrUnavailable. Only a discovery document that contradicts
// the configuration (another issuer) fails here, since retrying cannot fix it.
func NewVerifier(ctx context.Context, cfg Config) (*Verifier, error) {
	if err := checkIssuer(cfg.Issuer); err != nil {
		return nil, err
	}
	if cfg.ClientID == "" {
		return nil, errors.New("auth: client id is required")
	}
	if cfg.Skew < 0 {
		return nil, fmt.Errorf("auth: negative clock skew %s", cfg.Skew)
	}
	v := &Verifier{
		issuer:   cfg.Issuer,
		clientID: cfg.ClientID,
		claim:    cfg.PractitionerClaim,
		client:   cfg.HTTPClient,
		skew:     cfg.Skew,
		now:      cfg.Now,
	}
	if v.claim == "" {
		v.claim = defaultPractitionerClaim
	}
	if v.client == nil {
		v.client = &http.Client{Timeout: fetchTimeout}
	}
	if v.skew == 0 {
		v.skew = defaultSkew
	}
	if v.now == nil {
		v.now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if _, err := v.verifier(ctx); err != nil {
		var mismatch *oidc.IssuerMismatchError
		if errors.As(err, &mismatch) {
			return nil, fmt.Errorf("auth: %w", mismatch)
		}
		log.WarnContext(ctx, "identity provider not reachable; discovery will be retried on the next request",
			"issuer", v.issuer, "error", err)
	}
	return v, nil
}

func checkIssuer(issuer string) error {
	u, err := url.Parse(issuer)
	if err != nil {
		return fmt.Errorf("auth: issuer %q: %w", issuer, err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
		u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("auth: issuer %q must be an absolute http(s) URL without query or fragment", issuer)
	}
	return nil
}

// verifier returns the go-oidc verifier, running discovery if it has not
// succeeded yet.
func (v *Verifier) verifier(ctx context.Context) (*oidc.IDTokenVerifier, error) {
	if idv := v.idv.Load(); idv != nil {
		return idv, nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if idv := v.idv.Load(); idv != nil {
		return idv, nil
	}
	now := v.now()
	if since := now.Sub(v.triedAt); !v.triedAt.IsZero() && since >= 0 && since < discoveryRetryInterval {
		return nil, fmt.Errorf("%w: discovery of %s failed, retrying in a few seconds: %w",
			ErrUnavailable, v.issuer, v.discoverErr)
	}
	v.triedAt = now
	idv, err := v.discover(ctx)
	if err != nil {
		v.discoverErr = err
		return nil, fmt.Errorf("%w: discovery of %s failed, will retry on a later request: %w",
			ErrUnavailable, v.issuer, err)
	}
	v.idv.Store(idv)
	return idv, nil
}

func (v *Verifier) discover(ctx context.Context) (*oidc.IDTokenVerifier, error) {
	// Discovery outlives the request that happened to trigger it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
	defer cancel()
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, v.client), v.issuer)
	if err != nil {
		return nil, err
	}
	var meta struct {
		JWKSURI    string `json:"jwks_uri"`
		EndSession string `json:"end_session_endpoint"`
	}
	if err := p.Claims(&meta); err != nil {
		return nil, fmt.Errorf("discovery document: %w", err)
	}
	v.ep.Store(&Endpoints{Authorization: p.Endpoint().AuthURL, Token: p.Endpoint().TokenURL, EndSession: meta.EndSession})
	if u, err := url.Parse(meta.JWKSURI); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("discovery document: bad jwks_uri %q", meta.JWKSURI)
	}
	algs := make([]string, len(allowedAlgs))
	for i, a := range allowedAlgs {
		algs[i] = string(a)
	}
	return oidc.NewVerifier(v.issuer, newKeySet(meta.JWKSURI, v.client, v.now), &oidc.Config{
		SupportedSigningAlgs: algs,
		// The audience rule is Passerelle's own (aud contains the client
		// id, or azp equals it) and is applied in Verify.
		SkipClientIDCheck: true,
		// go-oidc checks exp without leeway and nbf with five minutes;
		// Verify checks both with Config.Skew.
		SkipExpiryCheck: true,
	}), nil
}

// Verify checks raw (the token, without "Bearer ") and returns its principal.
// Errors wrap ErrNoToken, ErrInvalidToken (with the reason) or ErrUnavailable;
// none contains the token.
func (v *Verifier) Verify(ctx context.Context, raw string) (Principal, error) {
	if raw == "" {
		return Principal{}, ErrNoToken
	}
	if len(raw) > maxTokenBytes {
		return Principal{}, invalid("token too large", nil)
	}
	// Parse before anything reaches the network: a string that is not a
	// JWS with an accepted algorithm is rejected without discovery. Only
	// the compact form is a JWT (RFC 7519 §1); go-jose would also take the
	// JSON form, and would skip whitespace.
	if !isCompactJWS(raw) {
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
	if _, err := idv.Verify(context.WithValue(ctx, verifyStateKey{}, st), raw); err != nil {
		return Principal{}, v.classify(st, err)
	}
	c, err := decodeClaims(st.payload, v.claim)
	if err != nil {
		return Principal{}, invalid("malformed claims", err)
	}
	return v.check(c, headerType(jws))
}

// headerType is the typ of a token's protected header, "" without one.
func headerType(jws *jose.JSONWebSignature) string {
	if len(jws.Signatures) != 1 {
		return ""
	}
	typ, _ := jws.Signatures[0].Protected.ExtraHeaders[jose.HeaderType].(string)
	return typ
}

// isAccessToken tells an access token from the other tokens an issuer signs
// with the same keys (an ID token even carries aud = the client): the header
// typ of RFC 9068 ("at+jwt", as oidc-provider and the development provider
// send), or Keycloak's typ claim "Bearer" (Keycloak, Pro Santé Connect). A
// token with neither is refused: an ID token of an issuer that types
// neither would otherwise pass as a bearer credential.
func isAccessToken(c claims, headerTyp string) bool {
	switch strings.ToLower(headerTyp) {
	case "at+jwt", "application/at+jwt":
		// RFC 9068 §2.1; a typ claim saying otherwise still refuses it
		// below.
		switch strings.ToLower(c.Type) {
		case "", "bearer":
			return true
		}
		return false
	}
	return strings.EqualFold(c.Type, "Bearer")
}

// classify turns a go-oidc failure into our errors, using what the key set
// recorded: go-oidc keeps only the text of the errors it wraps.
func (v *Verifier) classify(st *verifyState, err error) error {
	switch {
	case st.fetchErr != nil:
		return fmt.Errorf("%w: signing keys: %w", ErrUnavailable, st.fetchErr)
	case st.payload == nil && st.reason != "":
		return invalid(st.reason, err)
	case st.payload == nil:
		return invalid("signature not verified", err)
	}
	// The signature held, so go-oidc objected to the claims.
	if c, derr := decodeClaims(st.payload, v.claim); derr == nil && c.Issuer != v.issuer {
		return invalid("wrong issuer", err)
	}
	return invalid("malformed claims", err)
}

// check applies the rules go-oidc was told to skip, and builds the principal.
func (v *Verifier) check(c claims, headerTyp string) (Principal, error) {
	now := v.now()
	if c.Expiry.IsZero() {
		return Principal{}, invalid("no expiry", nil)
	}
	if !now.Before(c.Expiry.Add(v.skew)) {
		return Principal{}, invalid("token expired", nil)
	}
	if !c.NotBefore.IsZero() && now.Add(v.skew).Before(c.NotBefore) {
		return Principal{}, invalid("token not valid yet", nil)
	}
	if !slices.Contains(c.Audience, v.clientID) && c.AuthorizedParty != v.clientID {
		return Principal{}, invalid("token not issued for this service", nil)
	}
	// Keycloak signs ID, refresh and logout tokens with the same keys; an
	// ID token even carries aud = the client. Only access tokens are
	// bearer credentials for the API.
	if !isAccessToken(c, headerTyp) {
		return Principal{}, invalid("not an access token", nil)
	}
	if c.Subject == "" {
		return Principal{}, invalid("no subject", nil)
	}
	p := Principal{
		Subject:         c.Subject,
		ClientID:        c.ClientID,
		AuthorizedParty: c.AuthorizedParty,
		Login:           c.Login,
		Expiry:          c.Expiry,
		Scopes:          c.Scopes,
	}
	if p.ClientID == "" {
		p.ClientID = c.AuthorizedParty
	}
	// Keycloak gives a client's service account the username
	// "service-account-<client>": such a token speaks for the client, and
	// its login must never be matched to a person.
	if !c.HasLogin || c.Login == "" || strings.HasPrefix(c.Login, "service-account-") {
		p.IsSystem = true
		p.Login = ""
	}
	return p, nil
}

// Issuer returns the issuer URL tokens must come from.
func (v *Verifier) Issuer() string { return v.issuer }

// compile-time check that keySet satisfies go-oidc's interface.
var _ oidc.KeySet = (*keySet)(nil)

// isCompactJWS reports whether raw is three base64url segments.
func isCompactJWS(raw string) bool {
	dots := 0
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; {
		case c == '.':
			dots++
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return dots == 2
}
