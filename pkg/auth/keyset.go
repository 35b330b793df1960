package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// allowedAlgs are the only signature algorithms accepted. The list is closed
// on purpose: "none" and the HMAC family (where a public key could be abused
// as a shared secret) never reach a key.
var allowedAlgs = []jose.SignatureAlgorithm{jose.RS256, jose.ES256}

const (
	// keyRefetchInterval is the least time between two fetches of the key
	// set. An unknown kid triggers a fetch (that is how a rotated key is
	// learnt, OpenID Connect Core §10.1.1), and anyone can send a token with
	// a made-up kid: without a floor, every such request would cost a round
	// trip to the identity provider.
	keyRefetchInterval = 5 * time.Second
	// keyMaxAge is how long a fetched key set is trusted before it is
	// fetched again on use, so that a key withdrawn by the provider (after a
	// compromise) stops being accepted without a restart.
	keyMaxAge = time.Hour
	// fetchTimeout bounds each call to the identity provider.
	fetchTimeout = 10 * time.Second
	// maxKeySetBytes bounds the JWKS document read into memory.
	maxKeySetBytes = 1 << 20
)

// keySet implements oidc.KeySet over a provider's JWKS. It plays the role of
// go-oidc's RemoteKeySet (refetch on an unknown kid, so rotation needs no
// restart) with two differences: fetches are paced by keyRefetchInterval,
// and a failed fetch is reported through verifyState so that Verify can tell
// "provider unreachable" (503) from "bad token" (401).
type keySet struct {
	url    string
	client *http.Client
	now    func() time.Time

	// fetchMu lets one fetch run at a time; mu guards the fields below and
	// is never held during a fetch, so tokens signed with a known key are
	// verified while a slow provider is being asked for new keys.
	fetchMu   sync.Mutex
	mu        sync.RWMutex
	keys      []jose.JSONWebKey
	fetchedAt time.Time // last successful fetch
	triedAt   time.Time // last attempt, successful or not
}

func newKeySet(url string, client *http.Client, now func() time.Time) *keySet {
	return &keySet{url: url, client: client, now: now}
}

// verifyState is threaded through go-oidc (which only keeps the text of the
// key set's errors) so Verify learns what happened inside VerifySignature.
type verifyState struct {
	payload  []byte // set once the signature is verified
	reason   string // why the signature was not verified
	fetchErr error  // the key set could not be fetched when it was needed
}

type verifyStateKey struct{}

var (
	errUnknownKey   = errors.New("no published key matches the token's key id")
	errBadSignature = errors.New("signature does not verify")
)

// VerifySignature implements oidc.KeySet.
func (s *keySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	st, _ := ctx.Value(verifyStateKey{}).(*verifyState)
	if st == nil {
		st = &verifyState{}
	}
	jws, err := jose.ParseSigned(raw, allowedAlgs)
	if err != nil {
		st.reason = "malformed token"
		return nil, err
	}
	if len(jws.Signatures) != 1 {
		st.reason = "malformed token"
		return nil, errors.New("exactly one signature is required")
	}
	hdr := jws.Signatures[0].Header

	keys, stale := s.cached()
	if stale && s.fetchMu.TryLock() {
		// The periodic refresh is done by whichever request finds the set
		// stale first; the others carry on with the cached keys. A failed
		// refresh keeps them too: the provider being down must not reject
		// tokens signed with a known key.
		keys, _ = s.refreshLocked(ctx)
		s.fetchMu.Unlock()
	}
	payload, known := verifyWith(jws, keys, hdr.KeyID, hdr.Algorithm)
	if payload != nil {
		st.payload = payload
		return payload, nil
	}
	if known && hdr.KeyID != "" {
		// The key is one we hold: a bad signature is a bad token, and
		// refetching would only let a forger make us call the provider.
		st.reason = "bad signature"
		return nil, errBadSignature
	}
	keys, ferr := s.refresh(ctx)
	if payload, known = verifyWith(jws, keys, hdr.KeyID, hdr.Algorithm); payload != nil {
		st.payload = payload
		return payload, nil
	}
	switch {
	case ferr != nil && !errors.Is(ferr, errPaced):
		st.fetchErr = ferr
		return nil, ferr
	case known:
		st.reason = "bad signature"
		return nil, errBadSignature
	default:
		st.reason = "unknown signing key"
		return nil, errUnknownKey
	}
}

// verifyWith tries the keys that may have made the signature. known reports
// whether a key with the token's kid (or, without a kid, any usable key)
// was there to try.
func verifyWith(jws *jose.JSONWebSignature, keys []jose.JSONWebKey, kid, alg string) (payload []byte, known bool) {
	for i := range keys {
		k := &keys[i]
		if kid != "" && k.KeyID != kid {
			continue
		}
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		if k.Algorithm != "" && k.Algorithm != alg {
			continue
		}
		known = true
		if p, err := jws.Verify(k); err == nil {
			return p, true
		}
	}
	return nil, known
}

func (s *keySet) cached() (keys []jose.JSONWebKey, stale bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.keys, !s.fetchedAt.IsZero() && s.now().Sub(s.fetchedAt) > keyMaxAge
}

var errPaced = errors.New("key set fetched moments ago")

// refresh fetches the key set unless one was attempted less than
// keyRefetchInterval ago. It always returns the best keys known, so that
// callers that waited on a concurrent fetch use its result.
func (s *keySet) refresh(ctx context.Context) ([]jose.JSONWebKey, error) {
	s.fetchMu.Lock()
	defer s.fetchMu.Unlock()
	return s.refreshLocked(ctx)
}

// refreshLocked is refresh for a caller holding fetchMu.
func (s *keySet) refreshLocked(ctx context.Context) ([]jose.JSONWebKey, error) {
	s.mu.Lock()
	now := s.now()
	if since := now.Sub(s.triedAt); !s.triedAt.IsZero() && since >= 0 && since < keyRefetchInterval {
		keys := s.keys
		s.mu.Unlock()
		return keys, errPaced
	}
	s.triedAt = now
	s.mu.Unlock()

	keys, err := s.fetch(ctx)

	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		return s.keys, err
	}
	s.keys, s.fetchedAt = keys, now
	return keys, nil
}

func (s *keySet) fetch(ctx context.Context) ([]jose.JSONWebKey, error) {
	// The fetch serves every waiting request, not only the one that
	// started it: one client going away must not fail it for the others.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch key set: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch key set: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxKeySetBytes+1))
	if err != nil {
		return nil, fmt.Errorf("fetch key set %s: %w", s.url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch key set %s: %s", s.url, resp.Status)
	}
	if len(body) > maxKeySetBytes {
		return nil, fmt.Errorf("fetch key set %s: larger than %d bytes", s.url, maxKeySetBytes)
	}
	return parseKeySet(body)
}

// parseKeySet reads a JWKS, skipping keys it cannot use instead of failing
// the whole set: providers publish encryption keys and key types go-jose
// does not know next to their signing keys (RFC 7517 §5: "implementations
// SHOULD ignore JWKs ... that use kty values that are not understood").
func parseKeySet(body []byte) ([]jose.JSONWebKey, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("parse key set: %w", err)
	}
	var keys []jose.JSONWebKey
	for _, raw := range doc.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil {
			continue
		}
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		// Keep only the public half, whatever was published.
		pub := k.Public()
		if !pub.Valid() {
			continue
		}
		switch pk := pub.Key.(type) {
		case *rsa.PublicKey:
			// RSA below 2048 bits is breakable; no current provider uses it.
			if pk.N.BitLen() < 2048 {
				continue
			}
		case *ecdsa.PublicKey:
		default:
			continue // only RS256 and ES256 are accepted
		}
		keys = append(keys, pub)
	}
	return keys, nil
}
