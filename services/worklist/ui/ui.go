package ui

import (
	"bytes"
	"context"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/access"
	"github.com/passerelle-sante/passerelle/pkg/clock"
	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/fhir"
	"github.com/passerelle-sante/passerelle/pkg/fhirapi"
	"github.com/passerelle-sante/passerelle/pkg/idempotency"
	"github.com/passerelle-sante/passerelle/pkg/store"
	"github.com/passerelle-sante/passerelle/services/worklist"
)

// Actions are the worklist's domain changes made from the pages.
type Actions interface {
	// Transition moves a task along its state machine: action is accept,
	// decline, start, complete or fail; ifMatch the version the page showed.
	Transition(ctx context.Context, actor directory.Actor, taskID string, ifMatch int64, action, reason string) (store.Resource, error)
	// RecordVisit records a visit form; it returns what it wrote
	// (Observations, and a Flag when it raised an alert at once).
	RecordVisit(ctx context.Context, actor directory.Actor, v worklist.Visit) ([]store.Resource, error)
	// Acknowledge marks an alert (Flag) as seen by its recipient.
	Acknowledge(ctx context.Context, actor directory.Actor, flagID string) error
	// Review completes an alert's review task with a decision
	// (worklist.ReviewDecisions) and a note.
	Review(ctx context.Context, actor directory.Actor, taskID string, ifMatch int64, decision, note string) (store.Resource, error)
}

// Sessions authenticates people (OIDC login, session cookie) and guards
// forms against cross-site requests.
type Sessions interface {
	// Middleware puts the logged-in actor in the request's context
	// (access.WithActor); requests without a session pass through without one.
	Middleware(next http.Handler) http.Handler
	// CSRFToken is the value the session's forms carry.
	CSRFToken(r *http.Request) string
	// CheckCSRF refuses a form that does not carry the session's token.
	CheckCSRF(r *http.Request) error
}

// Reassigner gives a task to another member (the teams service owns
// Task.owner).
type Reassigner interface {
	Reassign(ctx context.Context, actor directory.Actor, taskID, toPractitionerRole string) error
}

// Intake takes a hospital message Bundle as $process-message does and
// answers the response Bundle, or a *fhir.Error.
type Intake interface {
	ProcessMessage(ctx context.Context, actor directory.Actor, bundle []byte) (response []byte, err error)
}

// Event tells a page that something it shows changed.
type Event struct {
	// Kind is "task" (a new or changed task) or "alert" (a new alert).
	Kind string
	// Resource is "Task/<id>" or "Flag/<id>".
	Resource string
	// Owners are the PractitionerRoles the event is for
	// ("PractitionerRole/<id>"): only they receive it.
	Owners []string
}

// Feed delivers events as they happen.
type Feed interface {
	// Subscribe returns the events from now on, until cancel is called or
	// ctx ends.
	Subscribe(ctx context.Context, actor directory.Actor) (events <-chan Event, cancel func())
}

// Deps are what the UI needs. Store, Actions and Sessions are required;
// without Feed the pages are refreshed by hand, without Reassigner or
// Intake their forms answer 501.
type Deps struct {
	Store      store.Store
	Actions    Actions
	Sessions   Sessions
	Feed       Feed
	Reassigner Reassigner
	Intake     Intake
	Outcomes   Outcomes
	Clock      clock.Clock
	Log        *slog.Logger
	// LoginURL starts the OIDC login (default /login); the page to come
	// back to is passed as ?next=. LogoutURL ends the session (a POST
	// carrying the CSRF token; default /logout).
	LoginURL, LogoutURL string
	// CSRFField is the form field CheckCSRF reads (default csrf_token).
	CSRFField string
	// PageSize is the number of tasks per worklist page (default 50).
	PageSize int
	// Heartbeat is the interval of the SSE keep-alive comments (default 25 s).
	Heartbeat time.Duration
	// AccessTTL is how long the access policy's answer about one patient
	// is reused for the lists (default 30 s, as the directory's cache;
	// negative: asked every time). A task page, a visit or a document
	// always asks.
	AccessTTL time.Duration
	// WeightGain and WeightDays draw the weight alert threshold: a gain of
	// WeightGain kg over WeightDays days (default 2 kg over 3 days).
	WeightGain float64
	WeightDays int
}

// UI serves the web pages.
type UI struct {
	d      Deps
	pages  map[string]*template.Template
	files  fs.FS
	tasks  taskCache
	access accessCache
	kept   keptForms
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// New parses the templates: a broken template fails here, at start-up.
func New(d Deps) *UI {
	if d.Clock == nil {
		d.Clock = clock.System{}
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	d.Log = d.Log.With("service", "worklist-ui")
	if d.LoginURL == "" {
		d.LoginURL = "/login"
	}
	if d.LogoutURL == "" {
		d.LogoutURL = "/logout"
	}
	if d.CSRFField == "" {
		d.CSRFField = "csrf_token"
	}
	if d.PageSize <= 0 {
		d.PageSize = 50
	}
	if d.Heartbeat <= 0 {
		d.Heartbeat = 25 * time.Second
	}
	if d.AccessTTL == 0 {
		d.AccessTTL = 30 * time.Second
	}
	if d.WeightGain <= 0 {
		d.WeightGain = 2
	}
	if d.WeightDays <= 0 {
		d.WeightDays = 3
	}
	u := &UI{d: d, pages: map[string]*template.Template{}}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		panic(err)
	}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		t := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n))
		u.pages[base] = t
	}
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		panic(err)
	}
	u.files = sub
	return u
}

// policy is the access policy judging care relationships at the UI's time.
func (u *UI) policy() access.Policy { return access.Policy{Now: u.d.Clock.Now} }

// Register adds the UI's routes to mux.
func (u *UI) Register(mux *http.ServeMux) {
	// A form's Idempotency-Key (header, or hidden field) makes its post
	// safe to send again: the phone's queue retries until acknowledged.
	idem := idempotency.Middleware(idempotency.Config{Store: u.d.Store, Form: true, Unhashed: []string{u.d.CSRFField},
		Cookies: []string{flashCookie}, Now: u.d.Clock.Now, Log: u.d.Log})
	page := func(pattern string, h func(w http.ResponseWriter, r *http.Request, p *page)) {
		var next http.Handler = u.wrap(h)
		if strings.HasPrefix(pattern, "POST ") {
			next = idem(next)
		}
		mux.Handle(pattern, u.d.Sessions.Middleware(next))
	}
	page("GET /{$}", u.home)
	page("GET /worklist", u.worklist)
	page("GET /tasks/{id}", u.task)
	page("POST /tasks/{id}/action", u.transition)
	page("POST /tasks/{id}/visit", u.visit)
	page("POST /tasks/{id}/reassign", u.reassign)
	page("GET /documents/{id}", u.document)
	page("GET /alerts", u.alerts)
	page("POST /alerts/{id}/ack", u.acknowledge)
	page("GET /coordination", u.coordination)
	page("GET /directory", u.directory)
	page("GET /templates", u.templates)
	page("GET /outcomes", u.outcomes)
	page("GET /discharge", u.dischargeForm)
	page("POST /discharge", u.discharge)
	mux.Handle("GET /events", u.d.Sessions.Middleware(http.HandlerFunc(u.events)))
	// The service worker is served from the root so that its scope covers
	// every page; it is checked at every load (no-cache) so that a new
	// version replaces the old at once.
	files := newCompressedFiles(u.files)
	mux.Handle("GET /sw.js", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		files.serve(w, r, "sw.js")
	}))
	mux.Handle("GET /static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.serve(w, r, strings.TrimPrefix(r.URL.Path, "/static/"))
	}))
}

// page is what every template receives.
type page struct {
	Lang      string
	Title     string
	Actor     directory.Actor
	LoggedIn  bool
	CSRF      string
	CSRFField string
	Path      string
	Flash     *flash
	LogoutURL string
	LoginURL  string
	// Live marks a page whose list the script refreshes on events.
	Live bool
	Now  time.Time
	Data any
}

// T translates a message key into the page's language.
func (p *page) T(key string) string { return translate(p.Lang, key) }

// Coordinates tells whether the actor sees the whole CPTS.
func (p *page) Coordinates() bool {
	return p.Actor.Has(directory.RoleCoordinator) || p.Actor.Has(directory.RoleCoordinatingNurse)
}

// LangURL is the current page in the other language.
func (p *page) LangURL(lang string) string { return p.Path + "?lang=" + lang }

// flash is a message carried across a redirect in a short-lived cookie.
type flash struct {
	Error bool     `json:"e,omitempty"`
	FR    string   `json:"fr"`
	EN    string   `json:"en"`
	Where []string `json:"w,omitempty"`
	// Task, with Where, is the task whose form the field belongs to on a
	// list, so that the message shows next to that field.
	Task string `json:"t,omitempty"`
}

// Text is the message in lang.
func (f *flash) Text(lang string) string {
	if lang == "en" && f.EN != "" {
		return f.EN
	}
	return f.FR
}

const flashCookie = "passerelle_flash"

func (u *UI) wrap(h func(w http.ResponseWriter, r *http.Request, p *page)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lang := language(w, r)
		p := &page{Lang: lang, CSRFField: u.d.CSRFField, Path: r.URL.Path, LogoutURL: u.d.LogoutURL,
			LoginURL: u.d.LoginURL + "?next=" + url.QueryEscape(r.URL.RequestURI()), Now: u.d.Clock.Now()}
		a, ok := access.ActorFrom(r.Context())
		if ok {
			p.Actor, p.LoggedIn = a, true
			p.CSRF = u.d.Sessions.CSRFToken(r)
		}
		if c, err := r.Cookie(flashCookie); err == nil {
			if b, err := base64.RawURLEncoding.DecodeString(c.Value); err == nil {
				var f flash
				if json.Unmarshal(b, &f) == nil {
					p.Flash = &f
				}
			}
			http.SetCookie(w, &http.Cookie{Name: flashCookie, Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode})
		}
		if r.URL.Path != "/" && !ok {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, p.LoginURL, http.StatusSeeOther)
				return
			}
			if u.keep(w, r) {
				return
			}
			u.fail(w, r, p, http.StatusUnauthorized, "err_login", nil)
			return
		}
		if r.Method == http.MethodPost {
			if err := r.ParseForm(); err != nil {
				u.fail(w, r, p, http.StatusBadRequest, "err_form", err)
				return
			}
			if err := u.d.Sessions.CheckCSRF(r); err != nil {
				u.fail(w, r, p, http.StatusForbidden, "err_csrf", err)
				return
			}
		}
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "same-origin")
		h(w, r, p)
	})
}

// render writes a page with its status.
func (u *UI) render(w http.ResponseWriter, r *http.Request, p *page, status int, name string) {
	t, ok := u.pages[name]
	if !ok {
		panic("ui: no template " + name)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, p); err != nil {
		u.d.Log.ErrorContext(r.Context(), "render page", "page", name, "error", err)
		http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Language", p.Lang)
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// fail shows an error page: a message key of this package, or, when err is
// a *fhir.Error, its own texts.
func (u *UI) fail(w http.ResponseWriter, r *http.Request, p *page, status int, key string, err error) {
	f := &flash{Error: true, FR: translate("fr", key), EN: translate("en", key)}
	if err != nil {
		var fe *fhir.Error
		if errors.As(err, &fe) {
			f = fromFHIR(fe)
			if status == 0 {
				status = fhirapi.Status(fe.Kind)
			}
		} else {
			u.d.Log.ErrorContext(r.Context(), "page failed", "path", r.URL.Path, "error", err)
		}
	}
	if status == 0 {
		status = http.StatusInternalServerError
	}
	p.Flash = f
	p.Title = p.T("error")
	u.render(w, r, p, status, "error")
}

// failErr shows an error from the store or a domain method.
func (u *UI) failErr(w http.ResponseWriter, r *http.Request, p *page, err error) {
	fe := fhir.FromError(err)
	if fhirapi.ServerFault(fe.Kind) {
		u.d.Log.ErrorContext(r.Context(), "page failed", "path", r.URL.Path, "error", err)
	}
	p.Flash = fromFHIR(fe)
	p.Title = p.T("error")
	u.render(w, r, p, fhirapi.Status(fe.Kind), "error")
}

func fromFHIR(fe *fhir.Error) *flash {
	f := &flash{Error: true}
	for i, is := range fe.Issues {
		if i > 0 {
			f.FR += " ; "
			f.EN += "; "
		}
		f.FR += is.FR
		f.EN += is.EN
		f.Where = append(f.Where, is.Expression...)
	}
	if f.FR == "" {
		f.FR, f.EN = translate("fr", "err_internal"), translate("en", "err_internal")
	}
	return f
}

// back redirects (303) to the local page named by the form's "back" field,
// or to fallback, carrying a message when f is not nil.
func (u *UI) back(w http.ResponseWriter, r *http.Request, fallback string, f *flash) {
	to := r.PostFormValue("back")
	if !localPath(to) {
		to = fallback
	}
	if f != nil {
		b, _ := json.Marshal(f)
		http.SetCookie(w, &http.Cookie{Name: flashCookie, Value: base64.RawURLEncoding.EncodeToString(b), Path: "/",
			MaxAge: 120, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// backErr redirects back with err's message (a *fhir.Error's texts, or a
// generic one, logged, for anything else).
func (u *UI) backErr(w http.ResponseWriter, r *http.Request, fallback string, err error) {
	fe := fhir.FromError(err)
	if fhirapi.ServerFault(fe.Kind) {
		u.d.Log.ErrorContext(r.Context(), "action failed", "path", r.URL.Path, "error", err)
	}
	u.back(w, r, fallback, fromFHIR(fe))
}

// localPath accepts only a path of this site: no scheme, no host, no "//".
func localPath(s string) bool {
	if s == "" || !strings.HasPrefix(s, "/") || strings.HasPrefix(s, "//") || strings.ContainsAny(s, "\\\r\n") {
		return false
	}
	p, err := url.Parse(s)
	return err == nil && p.Scheme == "" && p.Host == ""
}

func (u *UI) home(w http.ResponseWriter, r *http.Request, p *page) {
	if p.LoggedIn && p.Actor.System == "" {
		http.Redirect(w, r, "/worklist", http.StatusSeeOther)
		return
	}
	p.Title = "Passerelle"
	u.render(w, r, p, http.StatusOK, "home")
}

// audit records that the actor saw these patients' data on a page, one
// record per patient, as the FHIR API does for a read or a search.
func (u *UI) audit(r *http.Request, p *page, action, entity string, patients []string) {
	if len(patients) == 0 {
		return
	}
	err := u.d.Store.Tx(context.WithoutCancel(r.Context()), func(tx store.Tx) error {
		for _, pt := range patients {
			if err := tx.Audit(r.Context(), store.AuditRecord{Tenant: p.Actor.Tenant, Time: p.Now, Agent: p.Actor.Reference(),
				Action: action, Entity: entity, Patient: pt, Outcome: "0", Detail: "web"}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		u.d.Log.ErrorContext(r.Context(), "audit append failed", "path", r.URL.Path, "error", err)
	}
}

func msg(key string, args ...any) *flash {
	return &flash{FR: fmt.Sprintf(translate("fr", key), args...), EN: fmt.Sprintf(translate("en", key), args...)}
}

func msgErr(key string, where ...string) *flash {
	f := msg(key)
	f.Error, f.Where = true, where
	return f
}
