package ui

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/url"
	"regexp"
	"sync"
	"time"
)

// keptForms holds visit forms posted after the session expired, for the
// login round trip: the nurse who typed a visit at the door and tapped
// "Enregistrer" half an hour after her last tap finds it filled in again
// once logged in, and records it with one more tap (with her new session's
// CSRF token: a kept form is never recorded by itself, since nothing
// proves who posted it). Each is keyed by a random token in a cookie of
// the browser that posted it, bound to its task, shown only to the task's
// owner, used once, and forgotten after keepFor.
type keptForms struct {
	mu sync.Mutex
	m  map[string]keptForm
}

type keptForm struct {
	task    string
	values  url.Values
	expires time.Time
}

const (
	keepCookie = "passerelle_kept"
	keepFor    = 30 * time.Minute
	// maxKept bounds the forms kept at once; past it, the oldest go.
	maxKept = 10000
)

// keptFields are the fields of a visit form worth keeping.
var keptFields = []string{"weight-kg", "systolic", "diastolic", "heart-rate", "nyha", "oedema", "breathlessness", "symptoms", "note"}

var visitPath = regexp.MustCompile(`^/tasks/([A-Za-z0-9\-.]{1,64})/visit$`)

// keep stashes a visit form posted without a session and sends the
// browser to the login, coming back to the task's page. It answers false
// for anything else, which the caller refuses as before.
func (u *UI) keep(w http.ResponseWriter, r *http.Request) bool {
	m := visitPath.FindStringSubmatch(r.URL.Path)
	if r.Method != http.MethodPost || m == nil {
		return false
	}
	// A form another site makes the browser post is not kept.
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
		return false
	}
	// Only a form the nurse tapped (a navigation) is kept: the phone's
	// offline queue sends its visits in the background with their
	// idempotency key, and on a 401 waits for her to log in again and
	// sends the same request. Kept here too, the visit would come back
	// filled in as a new form, to be recorded a second time, while the
	// queue, following the redirect to the login, believed it sent.
	if m := r.Header.Get("Sec-Fetch-Mode"); m != "" && m != "navigate" {
		return false
	}
	if err := r.ParseForm(); err != nil {
		return false
	}
	v := url.Values{}
	for _, f := range keptFields {
		if x := r.PostForm.Get(f); x != "" && len(x) <= 4000 {
			v.Set(f, x)
		}
	}
	if len(v) == 0 {
		return false
	}
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return false
	}
	token := base64.RawURLEncoding.EncodeToString(b)
	now := u.d.Clock.Now()
	u.kept.mu.Lock()
	if u.kept.m == nil {
		u.kept.m = map[string]keptForm{}
	}
	for k, f := range u.kept.m {
		if !now.Before(f.expires) || len(u.kept.m) >= maxKept {
			delete(u.kept.m, k)
		}
	}
	u.kept.m[token] = keptForm{task: m[1], values: v, expires: now.Add(keepFor)}
	u.kept.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: keepCookie, Value: token, Path: "/", MaxAge: int(keepFor / time.Second),
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode})
	next := "/tasks/" + m[1]
	http.Redirect(w, r, u.d.LoginURL+"?next="+url.QueryEscape(next), http.StatusSeeOther)
	return true
}

// takeKept returns, once, the form kept by this browser for task; mine
// tells whether the actor owns the task (another's login leaves it).
func (u *UI) takeKept(w http.ResponseWriter, r *http.Request, task string, mine bool) url.Values {
	c, err := r.Cookie(keepCookie)
	if err != nil || !mine {
		return nil
	}
	u.kept.mu.Lock()
	defer u.kept.mu.Unlock()
	f, ok := u.kept.m[c.Value]
	if !ok || f.task != task {
		return nil
	}
	delete(u.kept.m, c.Value)
	http.SetCookie(w, &http.Cookie{Name: keepCookie, Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	if !u.d.Clock.Now().Before(f.expires) {
		return nil
	}
	return f.values
}
