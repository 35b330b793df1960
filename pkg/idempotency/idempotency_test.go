package idempotency_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/passerelle-sante/passerelle/pkg/access"
	"github.com/passerelle-sante/passerelle/pkg/clock"
	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/fhir"
	"github.com/passerelle-sante/passerelle/pkg/fhirapi"
	"github.com/passerelle-sante/passerelle/pkg/idempotency"
	"github.com/passerelle-sante/passerelle/pkg/store"
	"github.com/passerelle-sante/passerelle/pkg/store/sqlite"
	"github.com/passerelle-sante/passerelle/pkg/store/sqlstore"
)

// rig is a handler that writes one resource per request it processes,
// behind the middleware, over a real SQLite store.
type rig struct {
	st     store.Store
	path   string
	writes atomic.Int32
	// refuse makes the handler answer 400 without writing.
	refuse atomic.Bool
	h      http.Handler
	// started, when set, is told each time the handler starts.
	started func()
}

func openStore(t *testing.T, path string) store.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path, sqlite.Options{Options: sqlstore.Options{Clock: clock.System{}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func newRig(t *testing.T, path string, form bool) *rig {
	if path == "" {
		path = filepath.Join(t.TempDir(), "passerelle.db")
	}
	g := &rig{path: path, st: openStore(t, path)}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g.started != nil {
			g.started()
		}
		body, _ := io.ReadAll(r.Body)
		if g.refuse.Load() {
			http.Error(w, "refused", http.StatusBadRequest)
			return
		}
		var res store.Resource
		err := g.st.Tx(r.Context(), func(tx store.Tx) error {
			var err error
			res, err = tx.Create(r.Context(), "demo", json.RawMessage(fmt.Sprintf(`{"resourceType":"Basic","text":{"div":%q}}`, body)))
			return err
		})
		if err != nil {
			fe := fhir.FromError(err)
			w.WriteHeader(fhirapi.Status(fe.Kind))
			_, _ = w.Write(fe.OperationOutcome())
			return
		}
		g.writes.Add(1)
		w.Header().Set("Location", "/fhir/Basic/"+res.ID)
		w.Header().Set("Content-Type", "application/fhir+json")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write(res.Body)
	})
	g.h = idempotency.Middleware(idempotency.Config{Store: g.st, Form: form, Unhashed: []string{"csrf_token"}})(handler)
	return g
}

func asActor(r *http.Request, practitioner string) *http.Request {
	return r.WithContext(access.WithActor(r.Context(), directory.Actor{Tenant: "demo", Practitioner: practitioner}))
}

func (g *rig) post(key, body, who string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/fhir/Basic", strings.NewReader(body))
	if key != "" {
		r.Header.Set(idempotency.Header, key)
	}
	w := httptest.NewRecorder()
	g.h.ServeHTTP(w, asActor(r, who))
	return w
}

func TestSameKeySameAnswerOneWrite(t *testing.T) {
	g := newRig(t, "", false)
	first := g.post("k-1", `{"weight":82}`, "Practitioner/a")
	if first.Code != http.StatusCreated {
		t.Fatalf("first: %d %s", first.Code, first.Body)
	}
	again := g.post("k-1", `{"weight":82}`, "Practitioner/a")
	if again.Code != http.StatusCreated || again.Body.String() != first.Body.String() ||
		again.Header().Get("Location") != first.Header().Get("Location") || again.Header().Get("Content-Type") != "application/fhir+json" {
		t.Fatalf("replay: %d %v %s; want the first answer %d %v %s", again.Code, again.Header(), again.Body, first.Code, first.Header(), first.Body)
	}
	if again.Header().Get(idempotency.ReplayedHeader) != "true" {
		t.Errorf("replay not marked %s", idempotency.ReplayedHeader)
	}
	if n := g.writes.Load(); n != 1 {
		t.Errorf("%d writes, want 1", n)
	}
	// Without a key, every request is processed.
	g.post("", `{"weight":82}`, "Practitioner/a")
	g.post("", `{"weight":82}`, "Practitioner/a")
	if n := g.writes.Load(); n != 3 {
		t.Errorf("%d writes after two posts without a key, want 3", n)
	}
}

func TestSameKeyOtherBody422(t *testing.T) {
	g := newRig(t, "", false)
	if w := g.post("k-1", `{"weight":82}`, "Practitioner/a"); w.Code != http.StatusCreated {
		t.Fatalf("first: %d", w.Code)
	}
	w := g.post("k-1", `{"weight":900}`, "Practitioner/a")
	if w.Code != http.StatusUnprocessableEntity {
		t.Fatalf("other body: %d %s, want 422", w.Code, w.Body)
	}
	var oo struct {
		ResourceType string
		Issue        []struct {
			Code    string
			Details struct{ Text string }
		}
	}
	if err := json.Unmarshal(w.Body.Bytes(), &oo); err != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) != 1 {
		t.Fatalf("answer is not an OperationOutcome: %s", w.Body)
	}
	if txt := oo.Issue[0].Details.Text; !strings.Contains(txt, "déjà servi pour une autre requête") || !strings.Contains(txt, "already used for another request") {
		t.Errorf("OperationOutcome text %q does not say the key was used for another request (FR/EN)", txt)
	}
	if n := g.writes.Load(); n != 1 {
		t.Errorf("%d writes, want 1", n)
	}
}

func TestKeysAreTheCallers(t *testing.T) {
	g := newRig(t, "", false)
	a := g.post("k-1", `{}`, "Practitioner/a")
	b := g.post("k-1", `{}`, "Practitioner/b")
	if a.Code != http.StatusCreated || b.Code != http.StatusCreated || a.Header().Get("Location") == b.Header().Get("Location") {
		t.Fatalf("two callers with one key: %d %s, %d %s; want two writes", a.Code, a.Header().Get("Location"), b.Code, b.Header().Get("Location"))
	}
	if n := g.writes.Load(); n != 2 {
		t.Errorf("%d writes, want 2", n)
	}
}

func TestRefusalWithoutWriteIsNotKept(t *testing.T) {
	g := newRig(t, "", false)
	g.refuse.Store(true)
	if w := g.post("k-1", `{}`, "Practitioner/a"); w.Code != http.StatusBadRequest {
		t.Fatalf("refused: %d", w.Code)
	}
	g.refuse.Store(false)
	if w := g.post("k-1", `{}`, "Practitioner/a"); w.Code != http.StatusCreated || w.Header().Get(idempotency.ReplayedHeader) != "" {
		t.Fatalf("retry after a refusal: %d %v, want processed", w.Code, w.Header())
	}
	if n := g.writes.Load(); n != 1 {
		t.Errorf("%d writes, want 1", n)
	}
}

func TestKeyTooLong(t *testing.T) {
	g := newRig(t, "", false)
	if w := g.post(strings.Repeat("k", 256), `{}`, "Practitioner/a"); w.Code != http.StatusBadRequest {
		t.Fatalf("256-character key: %d, want 400", w.Code)
	}
	if w := g.post(strings.Repeat("é", 255), `{}`, "Practitioner/a"); w.Code != http.StatusCreated {
		t.Fatalf("255-character key: %d, want 201", w.Code)
	}
}

// TestConcurrentTwinsWriteOnce sends one request many times at once: one
// writes; the others answer its answer, or 409 while it has none.
func TestConcurrentTwinsWriteOnce(t *testing.T) {
	g := newRig(t, "", false)
	const n = 12
	// Every twin reaches the handler before any writes, so that none is
	// answered from the stored key before it tries to write.
	var arrived sync.WaitGroup
	arrived.Add(n)
	g.started = func() { arrived.Done(); arrived.Wait() }
	answers := make([]*httptest.ResponseRecorder, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() { defer wg.Done(); answers[i] = g.post("k-1", `{"weight":82}`, "Practitioner/a") }()
	}
	wg.Wait()
	if w := g.writes.Load(); w != 1 {
		t.Fatalf("%d writes, want 1", w)
	}
	var created string
	for i, a := range answers {
		switch a.Code {
		case http.StatusCreated:
			if created != "" && a.Body.String() != created {
				t.Errorf("twin %d answered another creation: %s", i, a.Body)
			}
			created = a.Body.String()
		case http.StatusConflict:
			if a.Header().Get("Retry-After") == "" || !strings.Contains(a.Body.String(), "en cours") {
				t.Errorf("twin %d: 409 without Retry-After or \"en cours\": %v %s", i, a.Header(), a.Body)
			}
		default:
			t.Errorf("twin %d: %d %s", i, a.Code, a.Body)
		}
	}
	// Once answered, the key answers the creation to everyone.
	g.started = nil
	if w := g.post("k-1", `{"weight":82}`, "Practitioner/a"); w.Code != http.StatusCreated || (created != "" && w.Body.String() != created) {
		t.Errorf("after the race: %d %s", w.Code, w.Body)
	}
}

// TestKeySurvivesRestart: the key and its answer are in the database, not
// in the process.
func TestKeySurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "passerelle.db")
	g := newRig(t, path, false)
	first := g.post("k-1", `{"weight":82}`, "Practitioner/a")
	if first.Code != http.StatusCreated {
		t.Fatalf("first: %d", first.Code)
	}
	if err := g.st.Close(); err != nil {
		t.Fatal(err)
	}
	g2 := newRig(t, path, false)
	again := g2.post("k-1", `{"weight":82}`, "Practitioner/a")
	if again.Code != http.StatusCreated || again.Body.String() != first.Body.String() {
		t.Fatalf("after a restart: %d %s, want the first answer", again.Code, again.Body)
	}
	if n := g2.writes.Load(); n != 0 {
		t.Errorf("%d writes after the restart, want 0", n)
	}
}

// TestFormKey: a form carries its key as a hidden field, and a retry after
// a new login (another CSRF token) is the same request.
func TestFormKey(t *testing.T) {
	g := newRig(t, "", true)
	post := func(csrf, weight string) *httptest.ResponseRecorder {
		f := url.Values{"csrf_token": {csrf}, "weight-kg": {weight}, idempotency.FormField: {"visit-1"}}
		r := httptest.NewRequest(http.MethodPost, "/tasks/t1/visit", strings.NewReader(f.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		g.h.ServeHTTP(w, asActor(r, "Practitioner/a"))
		return w
	}
	if w := post("token-1", "82"); w.Code != http.StatusCreated {
		t.Fatalf("first: %d", w.Code)
	}
	if w := post("token-2", "82"); w.Code != http.StatusCreated || w.Header().Get(idempotency.ReplayedHeader) != "true" {
		t.Fatalf("same form, new CSRF token: %d %v, want the first answer replayed", w.Code, w.Header())
	}
	if w := post("token-2", "83"); w.Code != http.StatusUnprocessableEntity {
		t.Fatalf("same key, other weight: %d, want 422", w.Code)
	}
	if n := g.writes.Load(); n != 1 {
		t.Errorf("%d writes, want 1", n)
	}
}

// TestReplayKeepsNamedCookies: a page's answer is a redirect whose flash
// cookie says whether the action was refused; the replay carries it, and
// not the session's cookies.
func TestReplayKeepsNamedCookies(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "passerelle.db"))
	h := idempotency.Middleware(idempotency.Config{Store: st, Cookies: []string{"flash"}})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "session", Value: "s1"})
		http.SetCookie(w, &http.Cookie{Name: "flash", Value: "refused"})
		http.Redirect(w, r, "/worklist", http.StatusSeeOther)
	}))
	post := func() *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "/tasks/t1/action", strings.NewReader("action=accept"))
		r.Header.Set(idempotency.Header, "k-1")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, asActor(r, "Practitioner/a"))
		return w
	}
	post()
	again := post()
	if again.Header().Get(idempotency.ReplayedHeader) != "true" || again.Code != http.StatusSeeOther {
		t.Fatalf("not replayed: %d %v", again.Code, again.Header())
	}
	if got := again.Header().Values("Set-Cookie"); len(got) != 1 || !strings.HasPrefix(got[0], "flash=refused") {
		t.Errorf("replayed cookies %q, want the flash cookie alone", got)
	}
}

// BenchmarkWrite: what a key costs a write (one more row in its
// transaction, its answer stored after), and what a replay costs.
func BenchmarkWrite(b *testing.B) {
	for _, mode := range []string{"no-key", "key", "replay"} {
		b.Run(mode, func(b *testing.B) {
			st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "passerelle.db"), sqlite.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			h := idempotency.Middleware(idempotency.Config{Store: st})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				err := st.Tx(r.Context(), func(tx store.Tx) error {
					_, err := tx.Create(r.Context(), "demo", json.RawMessage(`{"resourceType":"Basic"}`))
					return err
				})
				if err != nil {
					w.WriteHeader(500)
					return
				}
				w.WriteHeader(http.StatusCreated)
			}))
			i := 0
			for b.Loop() {
				r := httptest.NewRequest(http.MethodPost, "/fhir/Basic", strings.NewReader(`{}`))
				switch mode {
				case "key":
					r.Header.Set(idempotency.Header, fmt.Sprint("k-", i))
				case "replay":
					r.Header.Set(idempotency.Header, "k")
				}
				i++
				w := httptest.NewRecorder()
				h.ServeHTTP(w, asActor(r, "Practitioner/a"))
				if w.Code != http.StatusCreated {
					b.Fatalf("%d", w.Code)
				}
			}
		})
	}
}
