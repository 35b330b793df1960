// Package idempotency makes the writes of the HTTP API and of the web forms
// safe to retry. A client names a write with an Idempotency-Key header (a
// form may carry it as a hidden field instead): the first request with a key
// is processed, and the key is recorded in the transaction of its first
// write (store.WithIdempotencyKey), so that the key exists exactly when the
// write does; its answer is stored after. A later request with the same key
// and the same content gets that answer again and writes nothing; with other
// content, 422. A twin arriving while the first is still being processed
// cannot write either: its transaction finds the key taken, and it answers
// the first request's answer, or 409 while there is none yet.
//
// Keys belong to the caller (tenant and authenticated actor), so two users
// never share one; they are kept store.IdempotencyRetention.
package idempotency

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/passerelle-sante/passerelle/pkg/access"
	"github.com/passerelle-sante/passerelle/pkg/fhir"
	"github.com/passerelle-sante/passerelle/pkg/fhirapi"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

const (
	// Header is the request header naming a write.
	Header = "Idempotency-Key"
	// FormField is the form field that may carry the key instead.
	FormField = "idempotency-key"
	// ReplayedHeader marks an answer given again: "true".
	ReplayedHeader = "Idempotent-Replayed"
	// MaxKeyLength bounds a key, in characters.
	MaxKeyLength = 255
)

// kept are the answer headers stored and replayed with the status and body:
// those that tell the client what was written and where. Cookies are not:
// a session may have been renewed since.
var kept = []string{"Content-Type", "Content-Language", "Location", "Content-Location", "ETag", "Last-Modified", "Cache-Control"}

// Config configures the middleware.
type Config struct {
	// Store keeps the keys and answers.
	Store store.Store
	// Scope says whom the request's keys belong to; false lets the request
	// through without a key (not authenticated: the handler refuses it).
	// Default: ActorScope.
	Scope func(r *http.Request) (string, bool)
	// Form, when set, also reads the key from the form field FormField of
	// a URL-encoded body.
	Form bool
	// Unhashed are form fields left out of a request's identity: a CSRF
	// token changes at every login, and a retry after a new login is the
	// same request.
	Unhashed []string
	// Cookies names the cookies an answer sets that are part of the answer
	// and replayed with it (the pages' flash message, which tells whether
	// an action was refused); other cookies (a session) are not.
	Cookies []string
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Stale is how long a key claimed by a write may wait for its answer
	// before a retry is told the answer was lost (default 1 minute): the
	// process that wrote stopped before it could store its answer.
	Stale time.Duration
	Log   *slog.Logger
}

// ActorScope is the scope of the authenticated actor of the request
// (access.WithActor): its tenant and who it is.
func ActorScope(r *http.Request) (string, bool) {
	a, ok := access.ActorFrom(r.Context())
	if !ok {
		return "", false
	}
	who := a.Practitioner
	if a.System != "" {
		who = "system:" + a.System
	}
	if who == "" {
		return "", false
	}
	return a.Tenant + " " + who, true
}

// Middleware applies the idempotency keys of POST and PUT requests to next.
// It must run after authentication (the scope is the caller).
func Middleware(c Config) func(http.Handler) http.Handler {
	if c.Scope == nil {
		c.Scope = ActorScope
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Stale <= 0 {
		c.Stale = time.Minute
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost && r.Method != http.MethodPut {
				next.ServeHTTP(w, r)
				return
			}
			c.serve(w, r, next)
		})
	}
}

func (c Config) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	key := r.Header.Get(Header)
	if key == "" && !(c.Form && isForm(r)) {
		next.ServeHTTP(w, r)
		return
	}
	scope, ok := c.Scope(r)
	if !ok {
		next.ServeHTTP(w, r)
		return
	}
	// The body is read once here (its size is bounded before) to hash it,
	// and handed on to the handler as it was.
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeError(w, fhir.Errorf(fhir.Invalid, "invalid", "Corps de la requête illisible", "Unreadable request body"))
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	var form url.Values
	if c.Form && isForm(r) {
		form, _ = url.ParseQuery(string(body))
		if key == "" {
			key = form.Get(FormField)
		}
	}
	if key == "" {
		next.ServeHTTP(w, r)
		return
	}
	if utf8.RuneCountInString(key) > MaxKeyLength {
		writeError(w, fhir.Errorf(fhir.Invalid, "invalid",
			"La clé d'idempotence (Idempotency-Key) dépasse "+strconv.Itoa(MaxKeyLength)+" caractères",
			"The Idempotency-Key is longer than "+strconv.Itoa(MaxKeyLength)+" characters", Header))
		return
	}
	hash := c.hash(r, body, form)
	ctx := r.Context()
	prev, err := c.Store.Idempotency().Get(ctx, scope, key)
	switch {
	case err == nil:
		c.replay(w, prev, hash)
		return
	case !errors.Is(err, store.ErrNotFound):
		c.Log.ErrorContext(ctx, "idempotency key lookup", "error", err)
		writeError(w, fhir.FromError(err))
		return
	}
	k := &store.IdempotencyKey{Scope: scope, Key: key, Hash: hash}
	rec := &recorder{h: http.Header{}}
	next.ServeHTTP(rec, r.WithContext(store.WithIdempotencyKey(ctx, k)))
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	switch {
	case k.Lost():
		// A twin claimed the key first: this request wrote nothing, and
		// answers what the twin answered.
		prev, err := c.Store.Idempotency().Get(ctx, scope, key)
		switch {
		case errors.Is(err, store.ErrNotFound):
			// The twin's transaction has not committed yet (it shared this
			// one's group commit): it is still in progress.
			prev = store.IdempotentRequest{Hash: hash, Created: c.Now()}
		case err != nil:
			c.Log.ErrorContext(ctx, "idempotency key lookup", "error", err)
			writeError(w, fhir.FromError(err))
			return
		}
		c.replay(w, prev, hash)
		return
	case k.Claimed() || rec.status < http.StatusBadRequest:
		// A refusal that wrote nothing is not kept: a retry runs again and
		// may succeed (a session renewed, a field corrected elsewhere); a
		// write, or a success, is answered the same from now on.
		ans := store.IdempotentRequest{Scope: scope, Key: key, Hash: hash, Status: rec.status, Header: map[string][]string{}, Body: rec.body.Bytes()}
		for _, h := range kept {
			if v := rec.h.Values(h); len(v) > 0 {
				ans.Header[h] = v
			}
		}
		for _, ck := range rec.h.Values("Set-Cookie") {
			name, _, _ := strings.Cut(ck, "=")
			if slices.Contains(c.Cookies, strings.TrimSpace(name)) {
				ans.Header["Set-Cookie"] = append(ans.Header["Set-Cookie"], ck)
			}
		}
		got, stored, err := c.Store.Idempotency().Answer(ctx, ans)
		if err != nil {
			// The write is done: its answer is given, only not kept.
			c.Log.ErrorContext(ctx, "idempotency answer not stored", "error", err)
		} else if !stored && !k.Claimed() {
			// A twin took the key while this request wrote nothing.
			c.replay(w, got, hash)
			return
		}
	}
	rec.flush(w)
}

// replay answers a request whose key is known.
func (c Config) replay(w http.ResponseWriter, prev store.IdempotentRequest, hash string) {
	switch {
	case prev.Hash != hash:
		writeError(w, fhir.Errorf(fhir.Unprocessable, "business-rule",
			"Cette clé d'idempotence (Idempotency-Key) a déjà servi pour une autre requête : une nouvelle requête demande une nouvelle clé",
			"This Idempotency-Key was already used for another request: a new request needs a new key", Header))
	case prev.Status == 0 && c.Now().Sub(prev.Created) < c.Stale:
		w.Header().Set("Retry-After", "1")
		writeError(w, fhir.Errorf(fhir.Conflict, "conflict",
			"Une requête avec la même clé d'idempotence est en cours de traitement : réessayer dans un instant",
			"A request with the same Idempotency-Key is in progress: retry in a moment", Header))
	case prev.Status == 0:
		writeError(w, fhir.Errorf(fhir.Conflict, "conflict",
			"Une requête avec la même clé d'idempotence a été enregistrée mais sa réponse est perdue : consulter la ressource concernée",
			"A request with the same Idempotency-Key was recorded but its answer was lost: check the resource concerned", Header))
	default:
		for h, v := range prev.Header {
			w.Header()[h] = v
		}
		w.Header().Set(ReplayedHeader, "true")
		w.WriteHeader(prev.Status)
		_, _ = w.Write(prev.Body)
	}
}

// hash identifies a request: method, target, the version it applies to,
// and content (a form by its fields, in order, less the unhashed ones).
func (c Config) hash(r *http.Request, body []byte, form url.Values) string {
	h := sha256.New()
	for _, s := range []string{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("If-Match")} {
		h.Write([]byte(strconv.Itoa(len(s)) + ":" + s))
	}
	if form != nil {
		f := url.Values{}
		for k, v := range form {
			f[k] = v
		}
		f.Del(FormField)
		for _, u := range c.Unhashed {
			f.Del(u)
		}
		body = []byte(f.Encode())
	}
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

func isForm(r *http.Request) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mt == "application/x-www-form-urlencoded"
}

func writeError(w http.ResponseWriter, e *fhir.Error) {
	w.Header().Set("Content-Type", "application/fhir+json; charset=utf-8")
	w.WriteHeader(fhirapi.Status(e.Kind))
	_, _ = w.Write(e.OperationOutcome())
}

// recorder holds the handler's answer until it is known whether to give it,
// keep it, or give another request's instead.
type recorder struct {
	h      http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.h }

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}

func (r *recorder) flush(w http.ResponseWriter) {
	for k, v := range r.h {
		w.Header()[k] = v
	}
	w.WriteHeader(r.status)
	_, _ = w.Write(r.body.Bytes())
}
